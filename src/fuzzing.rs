//! Entry points for the fuzz targets in `fuzz/` and for the test that replays their corpus
//! (feature `fuzzing`; not part of the API and not covered by semver).
//!
//! Each function runs one decoder that reads bytes from peers on arbitrary input and checks what
//! that decoder promises beyond not panicking: that what it accepts encodes back to something
//! it accepts again as the same value, and that it never claims more than the input holds.

use bytes::Bytes;

use crate::PlumtreeConfig;
use crate::message::{DecodeLimits, Envelope, Frame};

/// Limits small enough that fuzzed inputs reach every limit check.
fn tight_limits() -> DecodeLimits {
    PlumtreeConfig::default()
        .with_max_message_size(64)
        .with_ihave_batch_size(4)
        .with_anti_entropy_max_runs(4)
        .decode_limits()
}

/// Plumtree's envelope and every message kind (IHave runs, anti-entropy digests and wants),
/// with `u64` and `String` senders, under the default and under tight limits; the whole-buffer
/// decoder and the frame decoder must agree.
/// A topic's frame is read as the runtime's routing reads it: the prefix stripped, then the
/// envelope behind it.
pub fn envelope(data: &[u8]) {
    let wire = Bytes::copy_from_slice(data);
    let frame = Frame::from(wire.clone());
    let inner = match frame.split_topic() {
        Ok((topic, len)) if !topic.is_default() => Some(frame.without_prefix(len).to_bytes()),
        _ => None,
    };
    for limits in [PlumtreeConfig::default().decode_limits(), tight_limits()] {
        for wire in std::iter::once(&wire).chain(&inner) {
            round_trip::<u64>(wire, &limits);
            round_trip::<String>(wire, &limits);
        }
    }
}

fn round_trip<I: crate::NodeId + PartialEq>(wire: &Bytes, limits: &DecodeLimits) {
    let decoded = Envelope::<I>::decode(wire, limits);
    let framed = Envelope::<I>::decode_frame(&Frame::from(wire.clone()), limits);
    assert_eq!(decoded, framed, "the two decoders disagree");
    if let Ok(envelope) = decoded {
        let again = envelope.to_bytes();
        assert_eq!(again.len(), envelope.encoded_len());
        assert_eq!(
            Envelope::<I>::decode(&again, limits).as_ref(),
            Ok(&envelope),
            "re-encoded envelope did not decode to itself"
        );
    }
}

/// The Plumtree metadata a member publishes in memberlist.
#[cfg(feature = "memberlist")]
pub fn node_meta(data: &[u8]) {
    use crate::NodeMeta;
    if let Ok(meta) = NodeMeta::decode(data) {
        let again = meta.encode();
        assert_eq!(NodeMeta::decode(&again).as_ref(), Ok(&meta));
    }
}

/// A memberlist user message carrying Plumtree frames: every frame is a slice of the input.
#[cfg(feature = "memberlist")]
pub fn user_message(data: &[u8]) {
    let message = Bytes::copy_from_slice(data);
    let mut taken = 0usize;
    for frame in crate::membership::fuzzing::user_message_frames(message) {
        taken += 4 + frame.len();
        assert!(
            taken <= data.len(),
            "frames claim more bytes than the message holds"
        );
    }
}

/// The header of a memberlist stream message, as the stream guard reads it before memberlist.
#[cfg(feature = "memberlist")]
pub fn stream_header(data: &[u8]) {
    crate::membership::fuzzing::stream_header(data);
}

/// A received QUIC stream: header, then length-prefixed frames within the frame limit.
#[cfg(feature = "quic")]
pub fn quic_stream(data: &[u8]) {
    for max in [16, crate::QuicConfig::default().max_frame_size] {
        let (frames, _) = crate::quic::fuzzing::read_all(data, max);
        let mut taken = 4usize;
        for frame in &frames {
            assert!(!frame.is_empty() && frame.len() <= max);
            taken += 4 + frame.len();
        }
        assert!(frames.is_empty() || taken <= data.len());
    }
}
