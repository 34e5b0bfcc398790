//! Frames from the core's messages: heads cut from shared blocks, and a message sent to several
//! peers in one turn encoded once.

use bytes::BytesMut;

use crate::message::{Gossip, IHave};
use crate::{Envelope, Frame, Message, NodeId, TopicId};

/// Bytes in one block that frame heads are cut from.
const FRAME_BLOCK: usize = 16 * 1024;

/// Encodes the frames of a protocol task.
///
/// Heads are cut from blocks of `FRAME_BLOCK` bytes: heads of one block share its allocation
/// and its reference count, so a frame costs no allocation of its own and a frame sent to
/// several peers costs an atomic increment per copy. A block is freed when its last head is;
/// heads larger than a block (large IHave batches) get one of their own. A Gossip's payload is
/// the frame's second part, never a copy (see [`Frame`]).
#[derive(Debug)]
pub(crate) struct Encoder<I> {
    /// Written in front of every envelope (nothing for the default topic).
    topic: TopicId,
    block: BytesMut,
    /// The last payload and the last IHave of this turn, with their frames. A payload pushed to
    /// the eager peers goes out once per peer, and so, while the lazy neighbours' batches fill
    /// in step (they do while the tree is stable), does each IHave batch; the two interleave,
    /// hence one of each.
    gossip: Option<(Gossip<I>, Frame)>,
    ihave: Option<(IHave, Frame)>,
}

impl<I> Encoder<I> {
    /// An encoder of `topic`'s frames.
    pub(crate) fn new(topic: TopicId) -> Self {
        Self {
            topic,
            block: BytesMut::new(),
            gossip: None,
            ihave: None,
        }
    }
}

impl<I: NodeId> Encoder<I> {
    /// The frame of `envelope`: the one just sent if its message was, else a new one.
    /// Payloads are not compared byte by byte: one id, round and path weight is one frame.
    pub(crate) fn frame(&mut self, envelope: &Envelope<I>) -> Frame {
        let recent = match (&envelope.message, &self.gossip, &self.ihave) {
            (Message::Gossip(g), Some((last, frame)), _)
                if g.id == last.id && g.round == last.round && g.heaviest == last.heaviest =>
            {
                Some(frame)
            }
            (Message::IHave(i), _, Some((last, frame))) if i.entries == last.entries => Some(frame),
            _ => None,
        };
        if let Some(frame) = recent {
            return frame.clone();
        }
        let len = self.topic.prefix_len() + envelope.head_len();
        if self.block.capacity() < len {
            self.block = BytesMut::with_capacity(len.max(FRAME_BLOCK));
        }
        self.topic.put_prefix(&mut self.block);
        envelope.encode_frame(&mut self.block)
    }

    /// `message` left as `frame`: the next copy of it in this turn reuses the frame.
    pub(crate) fn sent(&mut self, message: Message<I>, frame: Frame) {
        match message {
            Message::Gossip(g) => self.gossip = Some((g, frame)),
            Message::IHave(i) => self.ihave = Some((i, frame)),
            Message::Graft(_)
            | Message::Prune
            | Message::Digest(_)
            | Message::Want(_)
            | Message::Repair(_) => {}
        }
    }

    /// The turn is over: later messages are not compared with this turn's.
    pub(crate) fn end_turn(&mut self) {
        self.gossip = None;
        self.ihave = None;
    }
}
