//! [`MemberlistTransport`]: Plumtree frames as memberlist reliable user messages, for a node that
//! wants one port for everything.

use std::sync::Arc;

use memberlist::Memberlist;
use memberlist::delegate::Delegate;
use memberlist::transport::Transport as MlTransport;

use super::bridge::PeerBook;
use super::delegate::PlumtreeNodeDelegate;
use super::user_message;
use crate::runtime::{Transport, TransportError};
use crate::{Frame, NodeId};

/// Bytes memberlist adds around a user message on a stream: tag and length, a label (at most
/// 257 bytes) and encryption (34 bytes with AES-GCM).
pub(super) const MEMBERLIST_FRAMING: usize = 1024;

/// Checks that the longest frame `config` allows, in a user message, fits in `limit` (the
/// receivers' `StreamGuard::max_message_size`): a longer one would be refused at every hop.
pub(super) fn check_frames_fit(
    config: &crate::PlumtreeConfig,
    limit: usize,
) -> Result<(), crate::ConfigError> {
    let room = config
        .decode_limits()
        .max_frame_len()
        .saturating_add(MEMBERLIST_FRAMING);
    if room > limit {
        return Err(crate::ConfigError::Inconsistent(
            "the config's longest frame (max_message_size, ihave_batch_size) does not fit in StreamGuard::max_message_size",
        ));
    }
    Ok(())
}

/// Sends Plumtree frames with memberlist's `send_reliable`, to the address memberlist knows for
/// the peer; the receiving [`PlumtreeNodeDelegate`] hands them to its node.
///
/// Get one from [`MemberlistStack::memberlist_transport`](super::MemberlistStack::memberlist_transport).
///
/// Over memberlist's TCP transport each frame opens its own connection (memberlist does not
/// keep streams), so this suits control-plane rates; a dedicated transport carries more.
/// Plumtree repairs what a failed send loses: the peer hears the id in an IHave and grafts it.
pub struct MemberlistTransport<T: MlTransport, D>
where
    T::Id: NodeId,
    D: Delegate<Id = T::Id, Address = T::ResolvedAddress>,
{
    memberlist: Memberlist<T, PlumtreeNodeDelegate<T::Id, T::ResolvedAddress, D>>,
    book: Arc<PeerBook<T::Id, T::ResolvedAddress>>,
    /// Most bytes of frames in one user message: what the receiver's stream guard accepts,
    /// less room for memberlist's framing.
    batch_bytes: usize,
}

impl<T: MlTransport, D> std::fmt::Debug for MemberlistTransport<T, D>
where
    T::Id: NodeId,
    D: Delegate<Id = T::Id, Address = T::ResolvedAddress>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberlistTransport")
            .field("local", self.memberlist.local_id())
            .finish_non_exhaustive()
    }
}

impl<T: MlTransport, D> MemberlistTransport<T, D>
where
    T::Id: NodeId,
    D: Delegate<Id = T::Id, Address = T::ResolvedAddress>,
{
    pub(crate) fn new(
        memberlist: Memberlist<T, PlumtreeNodeDelegate<T::Id, T::ResolvedAddress, D>>,
        book: Arc<PeerBook<T::Id, T::ResolvedAddress>>,
        message_limit: usize,
    ) -> Self {
        Self {
            memberlist,
            book,
            batch_bytes: message_limit.saturating_sub(MEMBERLIST_FRAMING),
        }
    }

    /// Sends `frames` as one user message.
    async fn send_message(
        &self,
        address: &T::ResolvedAddress,
        frames: &[Frame],
    ) -> Result<(), TransportError> {
        self.memberlist
            .send_reliable(address, user_message::encode(frames))
            .await
            .map_err(|e| TransportError::Other(e.to_string()))
    }
}

impl<T: MlTransport, D> Transport<T::Id> for MemberlistTransport<T, D>
where
    T::Id: NodeId,
    D: Delegate<Id = T::Id, Address = T::ResolvedAddress>,
{
    /// Each user message costs memberlist a TCP connection: carry up to 64 frames in one.
    const MAX_BATCH: usize = 64;

    async fn send(&self, to: &T::Id, frame: Frame) -> Result<(), TransportError> {
        self.send_batch(to, vec![frame]).await
    }

    /// The frames in as few user messages as the receiver's message limit allows: one
    /// connection each instead of one per frame.
    async fn send_batch(&self, to: &T::Id, frames: Vec<Frame>) -> Result<(), TransportError> {
        let address = self.book.address(to).ok_or(TransportError::Unreachable)?;
        let mut start = 0;
        let mut bytes = user_message::HEADER;
        for (i, frame) in frames.iter().enumerate() {
            let cost = user_message::cost(frame);
            if i > start && bytes + cost > self.batch_bytes {
                self.send_message(&address, &frames[start..i]).await?;
                (start, bytes) = (i, user_message::HEADER);
            }
            bytes += cost;
        }
        self.send_message(&address, &frames[start..]).await
    }
}
