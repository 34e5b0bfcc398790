//! The protocol messages (Plumtree's four and anti-entropy's three) and the envelope that
//! carries them.

use bytes::Bytes;

use super::MessageId;
pub use super::runs::{Digest, IdRun, IdRuns, Offer};

/// A frame as it travels between two nodes: who sent it, and what it says.
///
/// The transport below may not know who sent a frame (memberlist's `notify_message` does not
/// say), so the sender is part of every envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope<I> {
    /// The node that sent this frame (not the broadcast's origin).
    pub sender: I,
    /// The protocol message.
    pub message: Message<I>,
}

/// A Plumtree protocol message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message<I> {
    /// A payload, pushed along the tree.
    Gossip(Gossip<I>),
    /// Announcements of payloads the sender has, for a lazy peer.
    IHave(IHave),
    /// "Send me this payload, and push to me from now on."
    Graft(Graft),
    /// "Stop pushing payloads to me; announce them instead."
    Prune,
    /// Anti-entropy: runs of payloads the sender has delivered, with how many of each run it no
    /// longer caches, and its uptime.
    Digest(Digest),
    /// Anti-entropy: runs of payloads the sender lacks, asked of a peer whose digest offered
    /// them.
    Want(IdRuns),
    /// Anti-entropy: a payload sent in answer to a [`Want`](Message::Want). Laid out as a
    /// Gossip, but it changes no link's role and is not pushed on.
    Repair(Gossip<I>),
}

impl<I> Message<I> {
    /// The message's kind, for counting and logging.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Gossip(_) => MessageKind::Gossip,
            Message::IHave(_) => MessageKind::IHave,
            Message::Graft(_) => MessageKind::Graft,
            Message::Prune => MessageKind::Prune,
            Message::Digest(_) => MessageKind::Digest,
            Message::Want(_) => MessageKind::Want,
            Message::Repair(_) => MessageKind::Repair,
        }
    }
}

/// The kind of a [`Message`], without its contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum MessageKind {
    /// [`Message::Gossip`].
    Gossip,
    /// [`Message::IHave`].
    IHave,
    /// [`Message::Graft`].
    Graft,
    /// [`Message::Prune`].
    Prune,
    /// [`Message::Digest`].
    Digest,
    /// [`Message::Want`].
    Want,
    /// [`Message::Repair`].
    Repair,
}

impl MessageKind {
    /// Every kind, in wire-tag order.
    pub const ALL: [MessageKind; 7] = [
        MessageKind::Gossip,
        MessageKind::IHave,
        MessageKind::Graft,
        MessageKind::Prune,
        MessageKind::Digest,
        MessageKind::Want,
        MessageKind::Repair,
    ];

    /// Lower-case name, as used in metric labels: `gossip`, `ihave`, `graft`, `prune`,
    /// `digest`, `want`, `repair`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Gossip => "gossip",
            MessageKind::IHave => "ihave",
            MessageKind::Graft => "graft",
            MessageKind::Prune => "prune",
            MessageKind::Digest => "digest",
            MessageKind::Want => "want",
            MessageKind::Repair => "repair",
        }
    }
}

/// A payload on its way through the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gossip<I> {
    /// The broadcast's id.
    pub id: MessageId,
    /// The node that broadcast it.
    pub origin: I,
    /// Hops the payload had taken when the sender sent it: 0 when the sender is the origin.
    pub round: u32,
    /// The largest [link weight](crate::Plumtree) on the path the payload took to the sender (0
    /// when the sender is the origin). A node that receives the payload twice uses it to tell
    /// whether the link of the second copy is the heaviest of a cycle, which is safe to prune
    /// at once.
    pub heaviest: u32,
    /// The payload as it travels: the application's bytes, or those bytes compressed by the
    /// origin, as `encoding` says. Relays pass it on as it came.
    pub payload: Bytes,
    /// How `payload` is encoded.
    pub encoding: Encoding,
    /// The origin's signature over its id, the message id, the encoding and `payload`, when the
    /// origin signs (the `signing` feature); relays pass it on as it came.
    pub signature: Option<Signature>,
}

/// An origin's Ed25519 signature of a payload (64 bytes), shared by every copy of it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Signature(std::sync::Arc<[u8; Signature::LEN]>);

impl Signature {
    /// Bytes of a signature on the wire.
    pub const LEN: usize = 64;

    /// A signature from its bytes.
    pub fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        Self(std::sync::Arc::new(bytes))
    }

    /// Its bytes.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        *self.0
    }

    pub(crate) fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature(")?;
        for byte in &self.0[..4] {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "..)")
    }
}

/// How a [`Gossip`]'s payload travels. The origin chooses (with the `compression` feature and
/// [`compress_min_size`](crate::PlumtreeConfig::compress_min_size)); every node that delivers
/// it decodes it once, and relays forward and cache it as it came.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// The application's bytes, as they are.
    #[default]
    Plain,
    /// An LZ4 block of a payload of `len` bytes.
    Lz4 {
        /// The payload's length once decompressed.
        len: u32,
    },
}

/// A batch of announcements: "I have these payloads".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IHave {
    /// What the sender has; at most [`PlumtreeConfig::ihave_batch_size`](crate::PlumtreeConfig)
    /// entries.
    pub entries: Vec<Announcement>,
}

/// One entry of an [`IHave`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The payload on offer.
    pub id: MessageId,
    /// The announcer's own hop count for it (0 if it is the origin).
    pub round: u32,
    /// How long the announcer held this announcement before sending it, in milliseconds. The
    /// receiver's graft timer counts from when the announcer had the payload, so time spent
    /// waiting for a batch to fill is not waited twice.
    pub held_ms: u32,
}

/// A request to become an eager (push) link, and optionally for one payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Graft {
    /// The payload wanted, if any. `None` only repairs the link: it is sent when the tree is
    /// reshaped for shorter paths or after a failure.
    pub id: Option<MessageId>,
}
