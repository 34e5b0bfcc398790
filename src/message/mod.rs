//! What travels on the wire: [`MessageId`], the protocol messages inside an [`Envelope`], and
//! their binary encoding.

mod codec;
pub(crate) mod compress;
mod frame;
mod id;
mod runs;
mod types;
mod varint;

pub use codec::{DecodeError, DecodeLimits, WIRE_VERSION};
pub use frame::Frame;
pub use id::{MESSAGE_ID_LEN, MessageId};
pub use types::{
    Announcement, Digest, Encoding, Envelope, Gossip, Graft, IHave, IdRun, IdRuns, Message,
    MessageKind, Offer, Signature,
};
