//! What travels on the wire: [`MessageId`], the protocol messages inside an [`Envelope`], and
//! their binary encoding.

mod codec;
pub(crate) mod compress;
mod frame;
mod id;
mod runs;
mod topic;
mod types;
mod varint;

pub use codec::{DecodeError, DecodeLimits, WIRE_VERSION};
pub use frame::Frame;
pub use id::{MESSAGE_ID_LEN, MessageId};
pub use topic::TopicId;

/// Reads a LEB128 varint, as the wire format writes them (for other small encodings).
#[cfg(feature = "memberlist")]
pub(crate) fn read_varint(input: &mut &[u8]) -> Result<u64, DecodeError> {
    varint::get(input)
}

/// Appends a LEB128 varint.
#[cfg(feature = "memberlist")]
pub(crate) fn put_varint(buf: &mut bytes::BytesMut, value: u64) {
    varint::put(buf, value);
}

/// Bytes a LEB128 varint of `value` takes.
#[cfg(feature = "memberlist")]
pub(crate) fn varint_len(value: u64) -> usize {
    varint::len(value)
}
pub use types::{
    Announcement, Digest, Encoding, Envelope, Gossip, Graft, IHave, IdRun, IdRuns, Message,
    MessageKind, Offer, Signature,
};
