//! [`Frame`]: an encoded envelope as the runtime hands it to a transport, in up to two parts so
//! that a payload is sent on without being copied.

use bytes::{BufMut, Bytes, BytesMut};

use super::DecodeLimits;
use super::codec::DecodeError;
use super::types::{Envelope, Message};
use crate::NodeId;

/// One encoded [`Envelope`]: a head and, for a Gossip, the payload that follows it on the wire.
///
/// A node forwards a payload it received with a head of its own (its id as sender, the next
/// round). Keeping the payload as a second part lets the frame share the payload's memory with
/// the frame it arrived in, the message cache and the deliveries, instead of copying it into
/// every frame sent on: a relay's cost no longer grows with the payload, and in one process (a
/// [`LocalNetwork`](crate::LocalNetwork)) all nodes hold one copy of each payload.
///
/// The wire form is the head followed by the payload. A transport that writes several buffers at
/// once sends [`into_parts`](Self::into_parts) as they are; one that needs a single buffer takes
/// [`to_bytes`](Self::to_bytes). A frame received from the network is one part:
/// `Frame::from(bytes)`.
///
/// # Examples
/// ```
/// use memberlist_plumtree::{Envelope, Frame, Message};
///
/// /// How a stream transport might write a frame: its length, then its parts.
/// fn write(frame: Frame, out: &mut Vec<u8>) {
///     out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
///     let (head, payload) = frame.into_parts();
///     out.extend_from_slice(&head);
///     out.extend_from_slice(&payload);
/// }
///
/// let wire = Envelope { sender: 7u64, message: Message::Prune }.to_bytes();
/// let mut out = Vec::new();
/// write(Frame::from(wire.clone()), &mut out); // as received: one part
/// assert_eq!(&out[4..], &wire[..]);
/// ```
#[derive(Clone, Debug)]
pub struct Frame {
    head: Bytes,
    payload: Bytes,
    urgent: bool,
}

impl Frame {
    /// Its length on the wire, in bytes.
    pub fn len(&self) -> usize {
        self.head.len() + self.payload.len()
    }

    /// Whether it has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it must not wait behind pushed payloads: the core's
    /// [`Transmit::urgent`](crate::Transmit::urgent), carried to the transport. A transport with
    /// lanes sends urgent frames ahead (QUIC: on its control stream). False for a frame built
    /// from bytes.
    pub fn is_urgent(&self) -> bool {
        self.urgent
    }

    /// The same frame, marked urgent or not (see [`is_urgent`](Self::is_urgent)).
    #[must_use]
    pub fn with_urgent(self, urgent: bool) -> Self {
        Self { urgent, ..self }
    }

    /// The byte at `index` of the wire form.
    pub fn get(&self, index: usize) -> Option<u8> {
        match index.checked_sub(self.head.len()) {
            None => self.head.get(index).copied(),
            Some(index) => self.payload.get(index).copied(),
        }
    }

    /// The head and the payload, to be written one after the other (the payload is empty for
    /// anything but a Gossip, and for frames built from one buffer).
    pub fn into_parts(self) -> (Bytes, Bytes) {
        (self.head, self.payload)
    }

    /// The head and the payload, borrowed.
    #[cfg_attr(not(feature = "memberlist"), allow(dead_code))]
    pub(crate) fn parts(&self) -> (&Bytes, &Bytes) {
        (&self.head, &self.payload)
    }

    /// The wire form in one buffer: free for a frame of one part, a copy otherwise.
    pub fn to_bytes(&self) -> Bytes {
        if self.payload.is_empty() {
            return self.head.clone();
        }
        let mut buf = BytesMut::with_capacity(self.len());
        buf.put_slice(&self.head);
        buf.put_slice(&self.payload);
        buf.freeze()
    }
}

impl Frame {
    /// A frame of the given parts.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn from_parts(head: Bytes, payload: Bytes, urgent: bool) -> Self {
        Self {
            head,
            payload,
            urgent,
        }
    }
}

impl From<Bytes> for Frame {
    /// A frame of one part: the whole wire form, as received from the network.
    fn from(bytes: Bytes) -> Self {
        Self {
            head: bytes,
            payload: Bytes::new(),
            urgent: false,
        }
    }
}

// Frames are built and read by the runtime only.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
impl<I: NodeId> Envelope<I> {
    /// Bytes [`encode_frame`](Self::encode_frame) writes into its buffer: all but a Gossip's
    /// payload.
    pub(crate) fn head_len(&self) -> usize {
        match &self.message {
            Message::Gossip(g) | Message::Repair(g) => self.encoded_len() - g.payload.len(),
            _ => self.encoded_len(),
        }
    }

    /// Encodes the head into `buf`, which must hold nothing else (it is cut off whole), and
    /// makes a Gossip's payload the second part without copying it.
    pub(crate) fn encode_frame(&self, buf: &mut BytesMut) -> Frame {
        self.encode_head(buf);
        let payload = match &self.message {
            Message::Gossip(g) | Message::Repair(g) => g.payload.clone(),
            _ => Bytes::new(),
        };
        Frame {
            head: buf.split().freeze(),
            payload,
            urgent: false,
        }
    }

    /// Decodes a frame as [`decode`](Self::decode) decodes its wire form. A frame this crate
    /// encoded is read in place; one split anywhere else (which this crate never builds) is
    /// joined and read again, so that the answer is the same either way.
    pub(crate) fn decode_frame(frame: &Frame, limits: &DecodeLimits) -> Result<Self, DecodeError> {
        if frame.payload.is_empty() {
            return Self::decode(&frame.head, limits);
        }
        Self::decode_split(&frame.head, &frame.payload, limits)
            .or_else(|_| Self::decode(&frame.to_bytes(), limits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Gossip, Graft, MessageId};

    fn limits() -> DecodeLimits {
        DecodeLimits {
            max_payload: 1 << 20,
            max_announcements: 64,
            max_runs: 4,
        }
    }

    fn gossip(payload: impl Into<Bytes>) -> Envelope<u64> {
        Envelope {
            sender: 3,
            message: Message::Gossip(Gossip {
                id: MessageId::new(1, 2, 3),
                origin: 1,
                round: 4,
                heaviest: 5,
                payload: payload.into(),
                encoding: Default::default(),
                signature: None,
            }),
        }
    }

    #[test]
    fn a_gossip_frame_shares_its_payload_and_reads_as_its_wire_form() {
        let envelope = gossip("a payload of some length");
        let frame = envelope.encode_frame(&mut BytesMut::new());
        let (head, payload) = frame.clone().into_parts();
        // The payload part is the payload itself, not a copy of it.
        let Message::Gossip(g) = &envelope.message else {
            unreachable!()
        };
        assert_eq!(payload.as_ptr(), g.payload.as_ptr());
        assert_eq!(frame.to_bytes(), envelope.to_bytes());
        assert_eq!(frame.len(), envelope.encoded_len());
        assert_eq!(frame.get(head.len()), Some(b'a'));
        assert_eq!(frame.get(frame.len()), None);
        let decoded = Envelope::<u64>::decode_frame(&frame, &limits()).unwrap();
        assert_eq!(decoded, envelope);
        // Read in place: the decoded payload is the same memory again.
        let Message::Gossip(d) = &decoded.message else {
            unreachable!()
        };
        assert_eq!(d.payload.as_ptr(), g.payload.as_ptr());
    }

    #[test]
    fn other_messages_are_one_part() {
        let envelope = Envelope {
            sender: 3u64,
            message: Message::Graft(Graft {
                id: Some(MessageId::new(1, 2, 3)),
            }),
        };
        let frame = envelope.encode_frame(&mut BytesMut::new());
        assert!(frame.clone().into_parts().1.is_empty());
        assert_eq!(frame.to_bytes(), envelope.to_bytes());
        assert_eq!(Envelope::decode_frame(&frame, &limits()), Ok(envelope));
    }

    #[test]
    fn any_split_decodes_as_the_joined_bytes() {
        let wire = gossip("0123456789").to_bytes();
        for at in 0..=wire.len() {
            let frame = Frame {
                head: wire.slice(..at),
                payload: wire.slice(at..),
                urgent: false,
            };
            assert_eq!(frame.to_bytes(), wire);
            for limits in [
                limits(),
                DecodeLimits {
                    max_payload: 4,
                    ..limits()
                },
            ] {
                assert_eq!(
                    Envelope::<u64>::decode_frame(&frame, &limits),
                    Envelope::decode(&wire, &limits),
                    "split at {at}"
                );
            }
        }
    }

    proptest::proptest! {
        /// A frame in two parts, however damaged and wherever cut, decodes (or fails) exactly as
        /// its wire form does, and never panics.
        #[test]
        fn a_split_frame_decodes_as_its_wire_form(
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            damage in proptest::option::of((0usize..80, 1u8..=255)),
            extra in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3),
            cut in 0usize..100,
        ) {
            let mut wire = BytesMut::new();
            gossip(payload).encode(&mut wire);
            wire.extend_from_slice(&extra);
            if let Some((at, bits)) = damage {
                let at = at % wire.len();
                wire[at] ^= bits;
            }
            let wire = wire.freeze();
            let at = cut % (wire.len() + 1);
            let frame = Frame {
                head: wire.slice(..at),
                payload: wire.slice(at..),
                urgent: false,
            };
            proptest::prop_assert_eq!(
                Envelope::<u64>::decode_frame(&frame, &limits()),
                Envelope::decode(&wire, &limits())
            );
        }
    }
}
