//! The binary wire format: encoding and validating decoding of [`Envelope`]s.
//!
//! ```text
//! envelope := version:u8  sender:NodeId  kind:u8  body
//! gossip   := id:24B  origin:NodeId  round:varint  heaviest:u32  len:varint  payload   (kind 1)
//! ihave    := runs:varint  runs * (id:24B  round:varint  more:varint)               (kind 2)
//! graft    := 0x00 | 0x01 id:24B                                                      (kind 3)
//! prune    := (empty)                                                                 (kind 4)
//! ```
//!
//! An IHave run announces `more + 1` payloads: `id` and the `more` ids that follow it (same origin
//! and incarnation, the next sequence numbers), all at the same round. A node announces what it
//! received in order, so a batch of 16 announcements from one origin is usually one run of 26
//! bytes instead of 16 entries of 25.
//!
//! Integers in ids and fixed-size integers are big-endian; lengths, counts and rounds are LEB128 varints. Kinds 5 and up
//! are reserved for later message types: a node that does not know one returns
//! [`DecodeError::UnknownKind`] so that the caller can skip the frame.
//!
//! Decoding never panics, allocates at most in proportion to the input (an IHave's entries: to
//! [`DecodeLimits::max_announcements`], and never past
//! [`MAX_IHAVE_BATCH_SIZE`](crate::MAX_IHAVE_BATCH_SIZE)), and rejects what the encoder would never produce: an
//! unknown version, a payload over the limit, an IHave over the batch limit or whose run passes
//! the last sequence number, overlong varints, trailing bytes.

use bytes::{BufMut, Bytes, BytesMut};

use super::types::{Announcement, Envelope, Gossip, Graft, IHave, Message};
use super::{MESSAGE_ID_LEN, MessageId, varint};
use crate::NodeId;

/// The wire format version this build writes and reads.
pub const WIRE_VERSION: u8 = 3;

/// The kind byte of a Gossip, which transports read to put payloads on their own lane.
pub(crate) const KIND_GOSSIP: u8 = 1;
const KIND_IHAVE: u8 = 2;
const KIND_GRAFT: u8 = 3;
const KIND_PRUNE: u8 = 4;

/// Why a frame could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame ended in the middle of a field.
    #[error("frame is truncated")]
    Truncated,
    /// The frame was written by an incompatible version of the wire format.
    #[error("unsupported wire version {0} (this build speaks {WIRE_VERSION})")]
    UnsupportedVersion(u8),
    /// A message kind this build does not know (perhaps a newer one).
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// A varint was overlong or exceeded its type.
    #[error("invalid varint")]
    InvalidVarint,
    /// A node id's bytes were not a valid id.
    #[error("invalid node id")]
    InvalidNodeId,
    /// A Gossip payload was larger than the configured maximum.
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    PayloadTooLarge {
        /// The declared payload length.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// An IHave carried more entries than the configured batch size.
    #[error("IHave with {count} entries exceeds the batch limit of {max}")]
    TooManyAnnouncements {
        /// The declared entry count.
        count: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A Graft's presence flag was neither 0 nor 1.
    #[error("invalid graft flag {0}")]
    InvalidFlag(u8),
    /// An IHave run went past the largest sequence number.
    #[error("IHave run past the last sequence number")]
    RunOverflow,
    /// A hop count did not fit in 32 bits.
    #[error("round out of range")]
    RoundOutOfRange,
    /// Bytes remained after the message ended.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
}

/// The limits a decoder enforces; build them from the config with
/// [`PlumtreeConfig::decode_limits`](crate::PlumtreeConfig::decode_limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest Gossip payload accepted, in bytes.
    pub max_payload: usize,
    /// Most entries accepted in one IHave.
    pub max_announcements: usize,
}

impl DecodeLimits {
    /// The longest frame a node with these limits sends or accepts: a Gossip with the largest
    /// payload, or an IHave with the most announcements, none of them in runs, whichever is
    /// longer. Node ids count at their largest ([`MAX_NODE_ID_LEN`](crate::MAX_NODE_ID_LEN) and
    /// a length prefix).
    #[cfg_attr(not(feature = "memberlist"), allow(dead_code))]
    pub(crate) fn max_frame_len(&self) -> usize {
        const ID: usize = crate::MAX_NODE_ID_LEN + 2;
        const VARINT_32: usize = 5;
        const VARINT_64: usize = 10;
        // Version and kind bytes, then the sender.
        let envelope = 2 + ID;
        let gossip = MESSAGE_ID_LEN + ID + VARINT_32 + 4 + VARINT_64 + self.max_payload;
        let announcement = MESSAGE_ID_LEN + VARINT_32 + VARINT_64;
        let ihave = VARINT_64 + self.max_announcements.saturating_mul(announcement);
        envelope.saturating_add(gossip.max(ihave))
    }
}

impl<I: NodeId> Envelope<I> {
    /// Number of bytes [`encode`](Self::encode) appends.
    pub fn encoded_len(&self) -> usize {
        let body = match &self.message {
            Message::Gossip(g) => {
                MESSAGE_ID_LEN
                    + g.origin.encoded_len()
                    + varint::len(g.round.into())
                    + 4
                    + varint::len(g.payload.len() as u64)
                    + g.payload.len()
            }
            Message::IHave(ihave) => {
                let (count, bytes) = runs(&ihave.entries).fold((0u64, 0), |(n, len), (a, more)| {
                    let run = MESSAGE_ID_LEN + varint::len(a.round.into()) + varint::len(more);
                    (n + 1, len + run)
                });
                varint::len(count) + bytes
            }
            Message::Graft(Graft { id }) => 1 + id.map_or(0, |_| MESSAGE_ID_LEN),
            Message::Prune => 0,
        };
        1 + self.sender.encoded_len() + 1 + body
    }

    /// Appends the wire form of this envelope to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(self.encoded_len());
        self.encode_head(buf);
        if let Message::Gossip(g) = &self.message {
            buf.put_slice(&g.payload);
        }
    }

    /// Appends the wire form up to a Gossip's payload (all of it for other messages).
    pub(super) fn encode_head(&self, buf: &mut BytesMut) {
        buf.put_u8(WIRE_VERSION);
        self.sender.encode(buf);
        match &self.message {
            Message::Gossip(g) => {
                buf.put_u8(KIND_GOSSIP);
                buf.put_slice(&g.id.to_bytes());
                g.origin.encode(buf);
                varint::put(buf, g.round.into());
                buf.put_u32(g.heaviest);
                varint::put(buf, g.payload.len() as u64);
            }
            Message::IHave(ihave) => {
                buf.put_u8(KIND_IHAVE);
                varint::put(buf, runs(&ihave.entries).count() as u64);
                for (a, more) in runs(&ihave.entries) {
                    buf.put_slice(&a.id.to_bytes());
                    varint::put(buf, a.round.into());
                    varint::put(buf, more);
                }
            }
            Message::Graft(Graft { id }) => {
                buf.put_u8(KIND_GRAFT);
                match id {
                    None => buf.put_u8(0),
                    Some(id) => {
                        buf.put_u8(1);
                        buf.put_slice(&id.to_bytes());
                    }
                }
            }
            Message::Prune => buf.put_u8(KIND_PRUNE),
        }
    }

    /// Encodes into a fresh buffer of exactly the right size.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut buf);
        buf.freeze()
    }

    /// Decodes one whole frame. A Gossip payload is a zero-copy slice of `frame`.
    ///
    /// # Errors
    /// [`DecodeError`] for anything [`encode`](Self::encode) would not have written under these
    /// limits.
    pub fn decode(frame: &Bytes, limits: &DecodeLimits) -> Result<Self, DecodeError> {
        Self::decode_split(frame, &Bytes::new(), limits)
    }

    /// Decodes `frame` followed by `payload`, when `frame` ends exactly where a Gossip's payload
    /// starts and `payload` is all of it (as [`Frame`](super::Frame)s this crate encodes are);
    /// anything else is an error, though the joined bytes may decode.
    pub(super) fn decode_split(
        frame: &Bytes,
        payload: &Bytes,
        limits: &DecodeLimits,
    ) -> Result<Self, DecodeError> {
        let mut input: &[u8] = frame;
        let [version] = take::<1>(&mut input)?;
        if version != WIRE_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let sender = I::decode(&mut input)?;
        let [kind] = take::<1>(&mut input)?;
        let message = match kind {
            KIND_GOSSIP => {
                let id = message_id(&mut input)?;
                let origin = I::decode(&mut input)?;
                let round = round(&mut input)?;
                let heaviest = u32::from_be_bytes(take::<4>(&mut input)?);
                let len = varint::get(&mut input)?;
                if len > limits.max_payload as u64 {
                    return Err(DecodeError::PayloadTooLarge {
                        len,
                        max: limits.max_payload,
                    });
                }
                let len = len as usize;
                let payload = if payload.is_empty() {
                    if input.len() < len {
                        return Err(DecodeError::Truncated);
                    }
                    let start = frame.len() - input.len();
                    input = &input[len..];
                    frame.slice(start..start + len)
                } else if input.is_empty() && payload.len() == len {
                    payload.clone()
                } else {
                    return Err(DecodeError::Truncated);
                };
                Message::Gossip(Gossip {
                    id,
                    origin,
                    round,
                    heaviest,
                    payload,
                })
            }
            KIND_IHAVE => {
                let runs = varint::get(&mut input)?;
                // Runs expand: a few bytes can declare any number of entries. Hand-built limits
                // may allow any count; no config allows more than `MAX_IHAVE_BATCH_SIZE`.
                let max = limits.max_announcements.min(crate::MAX_IHAVE_BATCH_SIZE);
                let too_many = |count: u64| DecodeError::TooManyAnnouncements { count, max };
                if runs > max as u64 {
                    return Err(too_many(runs));
                }
                // Read the runs twice: once to check them and count their entries, then to
                // expand them into a vector allocated once, at its final size.
                let mut count = 0u64;
                let mut scan = input;
                for _ in 0..runs {
                    let (id, _, more) = run(&mut scan)?;
                    count = count.saturating_add(more).saturating_add(1);
                    if count > max as u64 {
                        return Err(too_many(count));
                    }
                    id.after(more).ok_or(DecodeError::RunOverflow)?;
                }
                // At most `max` entries: within `MAX_IHAVE_BATCH_SIZE`.
                let mut entries = Vec::with_capacity(count as usize);
                for _ in 0..runs {
                    let (id, round, more) = run(&mut input)?;
                    // Checked above: every id of the run exists.
                    entries.extend(
                        (0..=more)
                            .filter_map(|k| id.after(k))
                            .map(|id| Announcement { id, round }),
                    );
                }
                Message::IHave(IHave { entries })
            }
            KIND_GRAFT => match take::<1>(&mut input)? {
                [0] => Message::Graft(Graft { id: None }),
                [1] => Message::Graft(Graft {
                    id: Some(message_id(&mut input)?),
                }),
                [flag] => return Err(DecodeError::InvalidFlag(flag)),
            },
            KIND_PRUNE => Message::Prune,
            other => return Err(DecodeError::UnknownKind(other)),
        };
        if !input.is_empty() || (kind != KIND_GOSSIP && !payload.is_empty()) {
            return Err(DecodeError::TrailingBytes(input.len() + payload.len()));
        }
        Ok(Envelope { sender, message })
    }
}

fn take<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], DecodeError> {
    let (head, rest) = input
        .split_first_chunk::<N>()
        .ok_or(DecodeError::Truncated)?;
    *input = rest;
    Ok(*head)
}

/// `entries` as runs: each first entry with how many of those after it continue it (same origin
/// and incarnation, the next sequence number, the same round).
fn runs(entries: &[Announcement]) -> impl Iterator<Item = (Announcement, u64)> + '_ {
    let mut rest = entries;
    std::iter::from_fn(move || {
        let (first, tail) = rest.split_first()?;
        let more = tail
            .iter()
            .zip(1u64..)
            .take_while(|(a, k)| a.round == first.round && first.id.after(*k) == Some(a.id))
            .count();
        rest = &tail[more..];
        Some((*first, more as u64))
    })
}

/// One IHave run: its first id, round, and how many ids follow.
fn run(input: &mut &[u8]) -> Result<(MessageId, u32, u64), DecodeError> {
    Ok((message_id(input)?, round(input)?, varint::get(input)?))
}

fn message_id(input: &mut &[u8]) -> Result<MessageId, DecodeError> {
    take::<MESSAGE_ID_LEN>(input).map(|b| MessageId::from_bytes(&b))
}

fn round(input: &mut &[u8]) -> Result<u32, DecodeError> {
    u32::try_from(varint::get(input)?).map_err(|_| DecodeError::RoundOutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: DecodeLimits = DecodeLimits {
        max_payload: 1024,
        max_announcements: 4,
    };

    fn id(seq: u64) -> MessageId {
        MessageId::new(1, 2, seq)
    }

    #[test]
    fn no_frame_is_longer_than_max_frame_len() {
        let long = "n".repeat(crate::MAX_NODE_ID_LEN);
        let limits = DecodeLimits {
            max_payload: 5000,
            max_announcements: 300,
        };
        let far = |i: u64| MessageId::new(u64::MAX - i, u64::MAX, u64::MAX - 2 * i);
        let gossip = Message::Gossip(Gossip {
            id: far(0),
            origin: long.clone(),
            round: u32::MAX,
            heaviest: u32::MAX,
            payload: Bytes::from(vec![0; limits.max_payload]),
        });
        // Every other sequence number: no two announcements form a run.
        let entries = (0..limits.max_announcements as u64)
            .map(|i| Announcement {
                id: far(i),
                round: u32::MAX,
            })
            .collect();
        for message in [gossip, Message::IHave(IHave { entries })] {
            let envelope = Envelope {
                sender: long.clone(),
                message,
            };
            assert!(envelope.encoded_len() <= limits.max_frame_len());
        }
    }

    fn samples() -> Vec<Envelope<u64>> {
        let gossip = Gossip {
            id: id(1),
            origin: 9,
            round: 300,
            heaviest: 0xdead_beef,
            payload: Bytes::from_static(b"hi"),
        };
        let entries = (0..4)
            .map(|i| Announcement {
                id: id(i),
                round: i as u32,
            })
            .collect();
        [
            Message::Gossip(gossip),
            Message::IHave(IHave { entries }),
            Message::IHave(IHave::default()),
            Message::Graft(Graft { id: Some(id(3)) }),
            Message::Graft(Graft { id: None }),
            Message::Prune,
        ]
        .into_iter()
        .map(|message| Envelope { sender: 5, message })
        .collect()
    }

    #[test]
    fn every_message_round_trips_with_exact_length() {
        for env in samples() {
            let bytes = env.to_bytes();
            assert_eq!(bytes.len(), env.encoded_len(), "{env:?}");
            assert_eq!(Envelope::decode(&bytes, &LIMITS).unwrap(), env);
        }
    }

    #[test]
    fn gossip_layout_is_as_documented() {
        let env = Envelope {
            sender: 5u64,
            message: Message::Gossip(Gossip {
                id: id(1),
                origin: 9u64,
                round: 1,
                heaviest: 0x0102_0304,
                payload: Bytes::from_static(b"x"),
            }),
        };
        let bytes = env.to_bytes();
        assert_eq!(bytes[0], WIRE_VERSION);
        assert_eq!(&bytes[1..9], &5u64.to_be_bytes());
        assert_eq!(bytes[9], KIND_GOSSIP);
        assert_eq!(&bytes[10..34], &id(1).to_bytes());
        assert_eq!(&bytes[34..42], &9u64.to_be_bytes());
        assert_eq!(&bytes[42..], &[1, 1, 2, 3, 4, 1, b'x']);
    }

    #[test]
    fn ihave_runs_are_as_documented() {
        let at = |seq, round| Announcement { id: id(seq), round };
        let env = Envelope {
            sender: 5u64,
            message: Message::IHave(IHave {
                entries: vec![at(1, 0), at(2, 0), at(3, 0), at(7, 0), at(8, 1)],
            }),
        };
        let bytes = env.to_bytes();
        let mut expected = vec![WIRE_VERSION];
        expected.extend(5u64.to_be_bytes());
        expected.extend([KIND_IHAVE, 3]);
        for (seq, round, more) in [(1, 0, 2), (7, 0, 0), (8, 1, 0)] {
            expected.extend(id(seq).to_bytes());
            expected.extend([round, more]);
        }
        assert_eq!(&bytes[..], &expected[..]);
        let limits = DecodeLimits {
            max_announcements: 5,
            ..LIMITS
        };
        assert_eq!(Envelope::decode(&bytes, &limits), Ok(env));
    }

    #[test]
    fn rejects_what_the_encoder_never_writes() {
        let prune = Envelope::<u64> {
            sender: 5,
            message: Message::Prune,
        }
        .to_bytes();
        let mut bad = prune.to_vec();
        bad[0] = WIRE_VERSION + 1;
        assert_eq!(
            Envelope::<u64>::decode(&bad.into(), &LIMITS),
            Err(DecodeError::UnsupportedVersion(WIRE_VERSION + 1))
        );
        let mut bad = prune.to_vec();
        bad[9] = 77;
        assert_eq!(
            Envelope::<u64>::decode(&bad.into(), &LIMITS),
            Err(DecodeError::UnknownKind(77))
        );
        let mut bad = prune.to_vec();
        bad.push(0);
        assert_eq!(
            Envelope::<u64>::decode(&bad.into(), &LIMITS),
            Err(DecodeError::TrailingBytes(1))
        );

        let big = Envelope {
            sender: 5u64,
            message: Message::Gossip(Gossip {
                id: id(1),
                origin: 5,
                round: 0,
                heaviest: 0,
                payload: Bytes::from(vec![0; 1025]),
            }),
        };
        assert_eq!(
            Envelope::<u64>::decode(&big.to_bytes(), &LIMITS),
            Err(DecodeError::PayloadTooLarge {
                len: 1025,
                max: 1024
            })
        );

        let entries = (0..5)
            .map(|i| Announcement {
                id: id(i),
                round: 0,
            })
            .collect();
        let many = Envelope::<u64> {
            sender: 5,
            message: Message::IHave(IHave { entries }),
        };
        assert_eq!(
            Envelope::<u64>::decode(&many.to_bytes(), &LIMITS),
            Err(DecodeError::TooManyAnnouncements { count: 5, max: 4 })
        );

        // One run of three from the last sequence number would wrap around.
        let run = |seq: u64, more: u8| {
            let mut frame = vec![WIRE_VERSION];
            frame.extend(5u64.to_be_bytes());
            frame.extend([KIND_IHAVE, 1]);
            frame.extend(MessageId::new(1, 2, seq).to_bytes());
            frame.extend([0, more]);
            Bytes::from(frame)
        };
        assert_eq!(
            Envelope::<u64>::decode(&run(u64::MAX - 1, 2), &LIMITS),
            Err(DecodeError::RunOverflow)
        );
        assert_eq!(
            Envelope::<u64>::decode(&run(1, 9), &LIMITS),
            Err(DecodeError::TooManyAnnouncements { count: 10, max: 4 })
        );
        assert!(Envelope::<u64>::decode(&run(u64::MAX - 1, 1), &LIMITS).is_ok());

        let graft = Envelope::<u64> {
            sender: 5,
            message: Message::Graft(Graft { id: None }),
        };
        let mut bad = graft.to_bytes().to_vec();
        bad[10] = 2;
        assert_eq!(
            Envelope::<u64>::decode(&bad.into(), &LIMITS),
            Err(DecodeError::InvalidFlag(2))
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        for env in samples() {
            let bytes = env.to_bytes();
            for cut in 0..bytes.len() {
                assert!(
                    Envelope::<u64>::decode(&bytes.slice(..cut), &LIMITS).is_err(),
                    "cut {cut} of {env:?}"
                );
            }
        }
    }

    #[test]
    fn huge_declared_ihave_count_does_not_allocate() {
        // A count within the limit but far beyond the bytes present fails before reserving.
        let limits = DecodeLimits {
            max_payload: 16,
            max_announcements: usize::MAX,
        };
        let mut buf = BytesMut::new();
        buf.put_u8(WIRE_VERSION);
        5u64.encode(&mut buf);
        buf.put_u8(KIND_IHAVE);
        varint::put(&mut buf, crate::MAX_IHAVE_BATCH_SIZE as u64);
        assert_eq!(
            Envelope::<u64>::decode(&buf.freeze(), &limits),
            Err(DecodeError::Truncated)
        );

        // One run of 2^40 ids in 37 bytes: refused before expanding, whatever the limits say.
        let mut buf = BytesMut::new();
        buf.put_u8(WIRE_VERSION);
        5u64.encode(&mut buf);
        buf.put_u8(KIND_IHAVE);
        varint::put(&mut buf, 1);
        buf.put_slice(&id(1).to_bytes());
        varint::put(&mut buf, 0);
        varint::put(&mut buf, 1 << 40);
        assert_eq!(
            Envelope::<u64>::decode(&buf.freeze(), &limits),
            Err(DecodeError::TooManyAnnouncements {
                count: (1 << 40) + 1,
                max: crate::MAX_IHAVE_BATCH_SIZE
            })
        );
    }
}
