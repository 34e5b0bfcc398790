//! The binary wire format: encoding and validating decoding of [`Envelope`]s.
//!
//! ```text
//! envelope := version:u8  sender:NodeId  kind:u8  body
//! gossip   := id:24B  origin:NodeId  round:varint  heaviest:u32  [flags:u8]  [plain:varint]
//!             [signature:64B]  len:varint  payload                                     (kind 1)
//! ihave    := runs:varint  runs * (id:24B  round:varint  count:varint  held)        (kind 2)
//!             count = 2 * more + same;  held = held_ms:varint if same, else (more + 1) of them
//! graft    := 0x00 | 0x01 id:24B                                                      (kind 3)
//! prune    := (empty)                                                                 (kind 4)
//! digest   := runs, each with an age (src/message/runs.rs)                            (kind 5)
//! want     := runs (src/message/runs.rs)                                              (kind 6)
//! repair   := as gossip                                                               (kind 7)
//! ```
//!
//! Kinds 1, 3 and 4 are written as version 3, kinds 5 to 7 (anti-entropy) as version 4,
//! IHave (kind 2) as version 5, and a Gossip or Repair whose payload is compressed as version 6,
//! and every version from 3 is read; an IHave of version 3 or 4 has no `held_ms` fields (read
//! as 0). A version 6 Gossip or Repair has the `plain` field: its payload is an LZ4 block
//! of `plain` bytes ([`Encoding::Lz4`](super::Encoding)), at most the payload limit and more
//! than `len`. A build without the `compression` feature refuses a compressed payload as
//! unsupported. A signed Gossip or Repair is version 7: a `flags` byte (bit 0: compressed, so
//! `plain` follows; bit 1: signed, always set) and the origin's
//! [`Signature`](super::Signature) before the payload's length. Every build reads signed
//! frames and passes the signature on; only a node with origin keys checks it. A node of an
//! older release refuses what it does not know, with [`DecodeError::UnsupportedVersion`],
//! which it counts and skips: during a rolling
//! upgrade, old nodes still receive every payload pushed to them and every digest, but not the
//! new nodes' announcements (docs/architecture.md, "Upgrades").
//!
//! An IHave run announces `more + 1` payloads: `id` and the `more` ids that follow it (same origin
//! and incarnation, the next sequence numbers), all at the same round, then how many
//! milliseconds each of them waited at the announcer before this frame left: one value for the
//! whole run when `same` is 1 (they all waited as long, as under load), one per id otherwise. A
//! node announces what it received in order, so a batch of 16 announcements from one origin is
//! usually one run of 27 bytes and at most 16 short varints instead of 16 entries of 26. (In
//! versions 3 and 4, `count` is `more` and no held times follow.)
//!
//! Version 8 is not an envelope: it marks a topic's frame, whose envelope follows the topic id
//! (src/message/topic.rs); decoding one as an envelope is [`DecodeError::TopicPrefix`].
//!
//! Integers in ids and fixed-size integers are big-endian; lengths, counts and rounds are LEB128
//! varints. Kinds 8 and up are reserved for later message types: a node that does not know one
//! returns [`DecodeError::UnknownKind`] so that the caller can skip the frame.
//!
//! Decoding never panics, allocates at most in proportion to the input (an IHave's entries: to
//! [`DecodeLimits::max_announcements`], and never past
//! [`MAX_IHAVE_BATCH_SIZE`](crate::MAX_IHAVE_BATCH_SIZE)), and rejects what the encoder would never produce: an
//! unknown version, a payload over the limit, an IHave over the batch limit or whose run passes
//! the last sequence number, overlong varints, trailing bytes.

use bytes::{BufMut, Bytes, BytesMut};

use super::runs::{Digest, IdRuns};
use super::types::{Announcement, Encoding, Envelope, Gossip, Graft, IHave, Message, Signature};
use super::{MESSAGE_ID_LEN, MessageId, varint};
use crate::NodeId;

/// The newest wire format version this build writes and reads (see the module docs for which
/// messages carry which version).
pub const WIRE_VERSION: u8 = super::topic::TOPIC_VERSION;

/// The version of Gossip, Graft and Prune, which nodes of every earlier release read too.
pub(super) const PLUMTREE_VERSION: u8 = 3;

/// The version that introduced anti-entropy's messages.
const ANTI_ENTROPY_VERSION: u8 = 4;

/// The version of IHave, whose announcements carry how long they waited.
const HELD_VERSION: u8 = 5;

/// The version of a Gossip or Repair with a compressed payload.
const COMPRESSED_VERSION: u8 = 6;

/// The version of a signed Gossip or Repair.
const SIGNED_VERSION: u8 = 7;

const FLAG_COMPRESSED: u8 = 1;
const FLAG_SIGNED: u8 = 2;

const KIND_GOSSIP: u8 = 1;
const KIND_IHAVE: u8 = 2;
const KIND_GRAFT: u8 = 3;
const KIND_PRUNE: u8 = 4;
const KIND_DIGEST: u8 = 5;
const KIND_WANT: u8 = 6;
const KIND_REPAIR: u8 = 7;

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
    /// The frame belongs to a topic other than the default: its envelope follows a topic
    /// prefix, which the node's topic routing strips ([`Frame::topic`](super::Frame::topic)).
    #[error("a topic frame: its envelope follows the topic prefix")]
    TopicPrefix,
    /// A message kind this build does not know (perhaps a newer one).
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// A varint was overlong or exceeded its type.
    #[error("invalid varint")]
    InvalidVarint,
    /// A node id's bytes were not a valid id.
    #[error("invalid node id")]
    InvalidNodeId,
    /// A Gossip payload was larger than the configured maximum (for a compressed payload: once
    /// decompressed).
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
    /// An announcement's held time did not fit in 32 bits.
    #[error("held time out of range")]
    HeldOutOfRange,
    /// A Digest or Want carried more runs than the configured maximum.
    #[error("{count} runs exceed the limit of {max}")]
    TooManyRuns {
        /// The declared run count.
        count: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A run of ids named no id.
    #[error("empty run of ids")]
    EmptyRun,
    /// A compressed payload was not shorter than its decompressed length (the encoder
    /// compresses only what shrinks).
    #[error("compressed payload of {len} bytes for {plain} bytes")]
    CompressedTooLong {
        /// The compressed length.
        len: u64,
        /// The declared decompressed length.
        plain: u64,
    },
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
    /// Most runs accepted in one anti-entropy Digest or Want.
    pub max_runs: usize,
}

impl DecodeLimits {
    /// The longest frame a node with these limits sends or accepts: a Gossip with the largest
    /// payload (signed, its plain length given), or an IHave with the most announcements, none of them in runs, whichever is
    /// longer. Node ids count at their largest ([`MAX_NODE_ID_LEN`](crate::MAX_NODE_ID_LEN) and
    /// a length prefix).
    #[cfg_attr(not(feature = "memberlist"), allow(dead_code))]
    pub(crate) fn max_frame_len(&self) -> usize {
        const ID: usize = crate::MAX_NODE_ID_LEN + 2;
        const VARINT_32: usize = 5;
        const VARINT_64: usize = 10;
        // A topic's prefix, the version and kind bytes, then the sender.
        let envelope = super::topic::MAX_PREFIX_LEN + 2 + ID;
        // Flags, a compressed payload's plain length and a signature at most.
        let extras = 1 + VARINT_32 + Signature::LEN;
        let gossip = MESSAGE_ID_LEN + ID + VARINT_32 + 4 + extras + VARINT_64 + self.max_payload;
        let announcement = MESSAGE_ID_LEN + VARINT_32 + VARINT_64 + VARINT_32;
        let ihave = VARINT_64 + self.max_announcements.saturating_mul(announcement);
        let runs = VARINT_64 + self.max_runs.saturating_mul(MESSAGE_ID_LEN + 2 * VARINT_64);
        envelope.saturating_add(gossip.max(ihave).max(runs))
    }
}

impl<I: NodeId> Envelope<I> {
    /// Number of bytes [`encode`](Self::encode) appends.
    pub fn encoded_len(&self) -> usize {
        let body = match &self.message {
            Message::Gossip(g) | Message::Repair(g) => {
                MESSAGE_ID_LEN
                    + g.origin.encoded_len()
                    + varint::len(g.round.into())
                    + 4
                    + usize::from(g.signature.is_some())
                    + g.signature.as_ref().map_or(0, |_| Signature::LEN)
                    + plain_field(g.encoding).map_or(0, |plain| varint::len(plain.into()))
                    + varint::len(g.payload.len() as u64)
                    + g.payload.len()
            }
            Message::IHave(ihave) => {
                let (count, bytes) = runs(&ihave.entries).fold((0u64, 0), |(n, len), run| {
                    let (count, held) = run_header(run);
                    let held: usize = held.iter().map(|a| varint::len(a.held_ms.into())).sum();
                    let head =
                        MESSAGE_ID_LEN + varint::len(run[0].round.into()) + varint::len(count);
                    (n + 1, len + head + held)
                });
                varint::len(count) + bytes
            }
            Message::Graft(Graft { id }) => 1 + id.map_or(0, |_| MESSAGE_ID_LEN),
            Message::Prune => 0,
            Message::Digest(digest) => digest.encoded_len(),
            Message::Want(runs) => runs.encoded_len(),
        };
        1 + self.sender.encoded_len() + 1 + body
    }

    /// Appends the wire form of this envelope to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(self.encoded_len());
        self.encode_head(buf);
        if let Message::Gossip(g) | Message::Repair(g) = &self.message {
            buf.put_slice(&g.payload);
        }
    }

    /// Appends the wire form up to a Gossip's payload (all of it for other messages).
    pub(super) fn encode_head(&self, buf: &mut BytesMut) {
        let version = match &self.message {
            Message::Gossip(g) | Message::Repair(g) if g.signature.is_some() => SIGNED_VERSION,
            Message::Gossip(g) | Message::Repair(g) if plain_field(g.encoding).is_some() => {
                COMPRESSED_VERSION
            }
            Message::IHave(_) => HELD_VERSION,
            Message::Digest(_) | Message::Want(_) | Message::Repair(_) => ANTI_ENTROPY_VERSION,
            Message::Gossip(_) | Message::Graft(_) | Message::Prune => PLUMTREE_VERSION,
        };
        buf.put_u8(version);
        self.sender.encode(buf);
        match &self.message {
            Message::Gossip(g) | Message::Repair(g) => {
                let kind = match self.message {
                    Message::Repair(_) => KIND_REPAIR,
                    _ => KIND_GOSSIP,
                };
                buf.put_u8(kind);
                buf.put_slice(&g.id.to_bytes());
                g.origin.encode(buf);
                varint::put(buf, g.round.into());
                buf.put_u32(g.heaviest);
                let plain = plain_field(g.encoding);
                if g.signature.is_some() {
                    let compressed = if plain.is_some() { FLAG_COMPRESSED } else { 0 };
                    buf.put_u8(FLAG_SIGNED | compressed);
                }
                if let Some(plain) = plain {
                    varint::put(buf, plain.into());
                }
                if let Some(signature) = &g.signature {
                    buf.put_slice(signature.as_bytes());
                }
                varint::put(buf, g.payload.len() as u64);
            }
            Message::IHave(ihave) => {
                buf.put_u8(KIND_IHAVE);
                varint::put(buf, runs(&ihave.entries).count() as u64);
                for run in runs(&ihave.entries) {
                    let (count, held) = run_header(run);
                    buf.put_slice(&run[0].id.to_bytes());
                    varint::put(buf, run[0].round.into());
                    varint::put(buf, count);
                    for entry in held {
                        varint::put(buf, entry.held_ms.into());
                    }
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
            Message::Digest(digest) => {
                buf.put_u8(KIND_DIGEST);
                digest.encode(buf);
            }
            Message::Want(runs) => {
                buf.put_u8(KIND_WANT);
                runs.encode(buf);
            }
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
        if version == super::topic::TOPIC_VERSION {
            return Err(DecodeError::TopicPrefix);
        }
        if !(PLUMTREE_VERSION..=SIGNED_VERSION).contains(&version) {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let sender = I::decode(&mut input)?;
        let [kind] = take::<1>(&mut input)?;
        if kind >= KIND_DIGEST && version < ANTI_ENTROPY_VERSION {
            return Err(DecodeError::UnknownKind(kind));
        }
        let message = match kind {
            KIND_GOSSIP | KIND_REPAIR => {
                let id = message_id(&mut input)?;
                let origin = I::decode(&mut input)?;
                let round = round(&mut input)?;
                let heaviest = u32::from_be_bytes(take::<4>(&mut input)?);
                let too_large = |len| DecodeError::PayloadTooLarge {
                    len,
                    max: limits.max_payload,
                };
                let flags = match version {
                    SIGNED_VERSION => match take::<1>(&mut input)? {
                        [f] if f & !(FLAG_COMPRESSED | FLAG_SIGNED) == 0
                            && f & FLAG_SIGNED != 0 =>
                        {
                            f
                        }
                        [f] => return Err(DecodeError::InvalidFlag(f)),
                    },
                    COMPRESSED_VERSION => FLAG_COMPRESSED,
                    _ => 0,
                };
                let encoding = if flags & FLAG_COMPRESSED != 0 {
                    if !cfg!(feature = "compression") {
                        return Err(DecodeError::UnsupportedVersion(version));
                    }
                    // Checked before anything is allocated for it: a few bytes may claim any
                    // length.
                    let plain = varint::get(&mut input)?;
                    match u32::try_from(plain) {
                        Ok(len) if plain <= limits.max_payload as u64 => Encoding::Lz4 { len },
                        _ => return Err(too_large(plain)),
                    }
                } else {
                    Encoding::Plain
                };
                let signature = if flags & FLAG_SIGNED != 0 {
                    Some(Signature::from_bytes(take::<{ Signature::LEN }>(
                        &mut input,
                    )?))
                } else {
                    None
                };
                let len = varint::get(&mut input)?;
                if len > limits.max_payload as u64 {
                    return Err(too_large(len));
                }
                if let Encoding::Lz4 { len: plain } = encoding
                    && len >= plain.into()
                {
                    return Err(DecodeError::CompressedTooLong {
                        len,
                        plain: plain.into(),
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
                let gossip = Gossip {
                    id,
                    origin,
                    round,
                    heaviest,
                    payload,
                    encoding,
                    signature,
                };
                if kind == KIND_REPAIR {
                    Message::Repair(gossip)
                } else {
                    Message::Gossip(gossip)
                }
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
                let held = version >= HELD_VERSION;
                let mut count = 0u64;
                let mut scan = input;
                for _ in 0..runs {
                    let (id, _, more, same) = run(&mut scan, held)?;
                    count = count.saturating_add(more).saturating_add(1);
                    if count > max as u64 {
                        return Err(too_many(count));
                    }
                    id.after(more).ok_or(DecodeError::RunOverflow)?;
                    if held {
                        for _ in 0..if same { 1 } else { more + 1 } {
                            held_ms(&mut scan)?;
                        }
                    }
                }
                // At most `max` entries: within `MAX_IHAVE_BATCH_SIZE`.
                let mut entries = Vec::with_capacity(count as usize);
                for _ in 0..runs {
                    let (id, round, more, same) = run(&mut input, held)?;
                    // Checked above: every id of the run exists, and every held time reads.
                    let mut shared = None;
                    for id in (0..=more).filter_map(|k| id.after(k)) {
                        let held_ms = match (held, shared) {
                            (false, _) => 0,
                            (true, Some(value)) => value,
                            (true, None) => {
                                let value = held_ms(&mut input)?;
                                shared = same.then_some(value);
                                value
                            }
                        };
                        entries.push(Announcement { id, round, held_ms });
                    }
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
            KIND_DIGEST => Message::Digest(Digest::decode(&mut input, limits.max_runs)?),
            KIND_WANT => Message::Want(IdRuns::decode(&mut input, limits.max_runs)?),
            other => return Err(DecodeError::UnknownKind(other)),
        };
        let carries_payload = kind == KIND_GOSSIP || kind == KIND_REPAIR;
        if !input.is_empty() || (!carries_payload && !payload.is_empty()) {
            return Err(DecodeError::TrailingBytes(input.len() + payload.len()));
        }
        Ok(Envelope { sender, message })
    }
}

/// The `plain` field a payload of this encoding is written with, if any.
fn plain_field(encoding: Encoding) -> Option<u32> {
    match encoding {
        Encoding::Plain => None,
        Encoding::Lz4 { len } => Some(len),
    }
}

fn take<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], DecodeError> {
    let (head, rest) = input
        .split_first_chunk::<N>()
        .ok_or(DecodeError::Truncated)?;
    *input = rest;
    Ok(*head)
}

/// `entries` as runs, each a slice whose entries after the first continue it (same origin and
/// incarnation, the next sequence number, the same round).
fn runs(entries: &[Announcement]) -> impl Iterator<Item = &[Announcement]> + '_ {
    let mut rest = entries;
    std::iter::from_fn(move || {
        let (first, tail) = rest.split_first()?;
        let more = tail
            .iter()
            .zip(1u64..)
            .take_while(|(a, k)| a.round == first.round && first.id.after(*k) == Some(a.id))
            .count();
        let (run, after) = rest.split_at(more + 1);
        rest = after;
        Some(run)
    })
}

/// A run's count field (`2 * more + same`) and the entries whose held times follow it: the
/// first alone when every entry waited as long (under load a batch fills within a millisecond,
/// so this is the common case), else all of them.
fn run_header(run: &[Announcement]) -> (u64, &[Announcement]) {
    let more = (run.len() - 1) as u64;
    if run.iter().all(|entry| entry.held_ms == run[0].held_ms) {
        (more << 1 | 1, &run[..1])
    } else {
        (more << 1, run)
    }
}

/// One IHave run: its first id, round, how many ids follow, and (from version 5, where the
/// count's lowest bit says so) whether one held time stands for all of them.
fn run(input: &mut &[u8], held: bool) -> Result<(MessageId, u32, u64, bool), DecodeError> {
    let (id, round, more) = (message_id(input)?, round(input)?, varint::get(input)?);
    Ok(if held {
        (id, round, more >> 1, more & 1 == 1)
    } else {
        (id, round, more, false)
    })
}

pub(super) fn message_id(input: &mut &[u8]) -> Result<MessageId, DecodeError> {
    take::<MESSAGE_ID_LEN>(input).map(|b| MessageId::from_bytes(&b))
}

fn round(input: &mut &[u8]) -> Result<u32, DecodeError> {
    u32::try_from(varint::get(input)?).map_err(|_| DecodeError::RoundOutOfRange)
}

fn held_ms(input: &mut &[u8]) -> Result<u32, DecodeError> {
    u32::try_from(varint::get(input)?).map_err(|_| DecodeError::HeldOutOfRange)
}

#[cfg(test)]
mod tests;
