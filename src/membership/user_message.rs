//! The memberlist user message that carries Plumtree frames: a tag byte, then each frame as a
//! 4-byte big-endian length and the frame. The tag tells ours from the application's own user
//! messages. Several frames go in one message because each reliable user message costs
//! memberlist a connection, and memberlist's own `send_many_reliable` cannot carry several (its
//! stream reader decodes one and drops the rest).

use bytes::{BufMut, Bytes, BytesMut};

use crate::Frame;

/// First byte of a user message that carries Plumtree frames.
const FRAMES_TAG: u8 = 0xB7;

/// Whether a user message carries Plumtree frames (otherwise it is the application's).
pub(crate) fn carries_frames(message: &[u8]) -> bool {
    message.first() == Some(&FRAMES_TAG)
}

/// Bytes of a message before its frames (the tag).
pub(crate) const HEADER: usize = 1;

/// Bytes one frame takes in a message (its length prefix and itself).
pub(crate) fn cost(frame: &Frame) -> usize {
    4 + frame.len()
}

/// Bytes [`encode`] writes for `frames`.
pub(crate) fn encoded_len(frames: &[Frame]) -> usize {
    HEADER + frames.iter().map(cost).sum::<usize>()
}

/// One user message carrying `frames`.
pub(crate) fn encode(frames: &[Frame]) -> Bytes {
    let mut message = BytesMut::with_capacity(encoded_len(frames));
    message.put_u8(FRAMES_TAG);
    for frame in frames {
        // Frames are bounded by max_message_size (at most 16 MiB), far below u32::MAX.
        message.put_u32(frame.len() as u32);
        let (head, payload) = frame.parts();
        message.put_slice(head);
        message.put_slice(payload);
    }
    message.freeze()
}

/// The frames of a message [`carries_frames`] accepted, as views of it (no copy); stops at the
/// first malformed length. Never panics: lengths are checked against what is left.
pub(crate) fn decode(message: Bytes) -> impl Iterator<Item = Bytes> {
    let mut body = message.slice(HEADER.min(message.len())..);
    std::iter::from_fn(move || {
        let (len, rest) = body.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if len > rest.len() {
            body.clear();
            return None;
        }
        let frame = body.slice(4..4 + len);
        body = body.slice(4 + len..);
        Some(frame)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_garbage_ends_the_list() {
        let frames = [&b"ab"[..], b"", b"c"].map(|f| Frame::from(Bytes::from_static(f)));
        let message = encode(&frames);
        assert!(carries_frames(&message) && message.len() == encoded_len(&frames));
        let decoded: Vec<Bytes> = decode(message).collect();
        assert_eq!(decoded, [&b"ab"[..], b"", b"c"]);
        // A length past the end, or a truncated length, ends the list without panicking.
        let tagged = |body: &[u8]| Bytes::from([&[FRAMES_TAG][..], body].concat());
        assert_eq!(decode(tagged(&[0, 0, 0, 9, 1])).count(), 0);
        assert_eq!(decode(tagged(&[0, 0, 0, 1, 7, 0, 0])).count(), 1);
        assert_eq!(decode(Bytes::new()).count(), 0);
    }
}
