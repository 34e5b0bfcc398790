//! The receiving side: accepting connections, reading framed streams, and checking that each
//! frame's sender is the node the peer's certificate names.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::CertificateDer;

use super::framing::{FrameReader, Read};
use super::link::Link;
use super::stats::RejectReason;
use super::tls;
use super::transport::{Shared, close_code};
use crate::NodeId;
use crate::runtime::NodeInputs;

/// How often each connection reports its round-trip estimate to the node.
const RTT_SAMPLE: Duration = Duration::from_secs(1);

/// Accepts connections until the node or the transport shuts down, then stops the transport.
pub(crate) async fn accept<I: NodeId>(shared: Arc<Shared<I>>, node: NodeInputs<I>) {
    loop {
        let incoming = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            () = node.closed() => break,
            incoming = shared.endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => break,
            },
        };
        let handshake = Arc::clone(&shared);
        shared.tasks.spawn(async move {
            let timeout = handshake.config.connect_timeout;
            match tokio::time::timeout(timeout, incoming).await {
                Ok(Ok(connection)) => serve(handshake, connection, None).await,
                Ok(Err(error)) => {
                    handshake.counters.handshake_failed();
                    tracing::warn!(%error, "QUIC connection refused during the handshake");
                }
                Err(_) => handshake.counters.handshake_failed(),
            }
        });
    }
    shared.stop();
}

/// Runs [`serve`] for a connection we dialed to `peer`.
pub(crate) fn spawn_serve<I: NodeId>(
    shared: &Arc<Shared<I>>,
    connection: quinn::Connection,
    peer: Option<I>,
) {
    shared
        .tasks
        .spawn(serve(Arc::clone(shared), connection, peer));
}

/// Reads every stream the peer opens on `connection` until it closes. `peer` is known for
/// connections we dialed (the handshake checked the name we asked for); for accepted ones the
/// first frame names it and the certificate must agree.
async fn serve<I: NodeId>(shared: Arc<Shared<I>>, connection: quinn::Connection, peer: Option<I>) {
    shared.counters.opened();
    let identity = Arc::new(Identity::new(peer));
    let mut rtt_sample = tokio::time::interval(RTT_SAMPLE);
    loop {
        let stream = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            _ = rtt_sample.tick() => {
                // QUIC's own path estimate, for peer scoring.
                if let (Some(node), Some((peer, _))) = (shared.node.get(), identity.peer.get()) {
                    node.record_rtt(peer.clone(), connection.rtt());
                }
                continue;
            }
            stream = connection.accept_uni() => match stream {
                Ok(stream) => stream,
                Err(_) => break,
            },
        };
        // Streams only arrive once the node has started (peers learn of us from it).
        let Some(node) = shared.node.get().cloned() else {
            continue;
        };
        shared.tasks.spawn(read_stream(
            Arc::clone(&shared),
            connection.clone(),
            Arc::clone(&identity),
            stream,
            node,
        ));
    }
    shared.counters.closed();
    if let Some((peer, _)) = identity.peer.get() {
        let mut links = shared.lock_links();
        let ours = links
            .get(peer)
            .and_then(|slot| slot.link.as_ref())
            .is_some_and(|link| link.connection.stable_id() == connection.stable_id());
        if ours {
            // The slot stays, so that the next connection counts as a reconnect.
            if let Some(slot) = links.get_mut(peer) {
                slot.link = None;
            }
        }
    }
}

/// Reads length-prefixed frames from one stream and hands them to the node.
async fn read_stream<I: NodeId>(
    shared: Arc<Shared<I>>,
    connection: quinn::Connection,
    identity: Arc<Identity<I>>,
    stream: quinn::RecvStream,
    node: NodeInputs<I>,
) {
    let reject = |reason: RejectReason, code: u32, why: &'static [u8]| {
        shared.counters.rejected(reason);
        tracing::warn!(
            remote = %connection.remote_address(),
            reason = reason.as_str(),
            "frame refused; closing the QUIC connection"
        );
        connection.close(code.into(), why);
    };
    let mut frames = FrameReader::new(stream, shared.config.max_frame_size);
    loop {
        let frame = match frames.next().await {
            Read::Frame(frame) => frame,
            Read::End => return,
            Read::BadHeader => {
                return reject(
                    RejectReason::Malformed,
                    close_code::MALFORMED,
                    b"bad stream header",
                );
            }
            Read::Oversize => {
                return reject(
                    RejectReason::Oversize,
                    close_code::FRAME_TOO_LARGE,
                    b"frame too large",
                );
            }
        };
        match identity.check(&frame, &connection) {
            Ok(None) => {}
            Ok(Some(peer)) => register(&shared, peer, &connection),
            Err(reason) => {
                let (code, why): (u32, &'static [u8]) = match reason {
                    RejectReason::SpoofedSender => (
                        close_code::SPOOFED_SENDER,
                        b"sender does not match certificate",
                    ),
                    _ => (close_code::MALFORMED, b"frame names no sender"),
                };
                return reject(reason, code, why);
            }
        }
        shared.counters.received(frame.len());
        // Waiting here is flow control: the stream's window fills and the peer's sends wait.
        if node.handle_frame(Bytes::from(frame)).await.is_err() {
            return;
        }
    }
}

/// A peer that connected to us gets its replies on that connection, the newest it opened. A
/// peer that dials while we hold a connection to it has either just dialled at the same time as
/// we did (then either connection serves, and each side keeps sending on the other's) or
/// restarted: then ours leads to a process that died without a word and looks open until its
/// idle timeout, and everything written into it is lost. The old connection is not closed here:
/// it ends by itself if dead, and in the first case the peer still sends on it.
fn register<I: NodeId>(shared: &Shared<I>, peer: I, connection: &quinn::Connection) {
    let mut links = shared.lock_links();
    let slot = links.entry(peer).or_default();
    let current = slot
        .link
        .as_ref()
        .is_some_and(|link| link.connection.stable_id() == connection.stable_id());
    if !current {
        slot.up(Link::new(connection.clone()), &shared.counters);
    }
}

/// Who is on the other end of a connection, once known, with its encoded id for cheap checks.
struct Identity<I> {
    peer: OnceLock<(I, Bytes)>,
}

impl<I: NodeId> Identity<I> {
    fn new(peer: Option<I>) -> Self {
        let known = OnceLock::new();
        if let Some(peer) = peer {
            let mut encoded = bytes::BytesMut::with_capacity(peer.encoded_len());
            peer.encode(&mut encoded);
            let _ = known.set((peer, encoded.freeze()));
        }
        Self { peer: known }
    }

    /// Checks the frame's sender (after its version byte). Returns the peer when this frame
    /// identified it for the first time.
    fn check(
        &self,
        frame: &[u8],
        connection: &quinn::Connection,
    ) -> Result<Option<I>, RejectReason> {
        if let Some((_, encoded)) = self.peer.get() {
            return if frame.get(1..1 + encoded.len()) == Some(&encoded[..]) {
                Ok(None)
            } else {
                Err(RejectReason::SpoofedSender)
            };
        }
        let mut rest = frame.get(1..).ok_or(RejectReason::Malformed)?;
        let claimed = I::decode(&mut rest).map_err(|_| RejectReason::Malformed)?;
        let certified = connection
            .peer_identity()
            .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
            .is_some_and(|chain| chain.first().is_some_and(|cert| tls::names(cert, &claimed)));
        if !certified {
            return Err(RejectReason::SpoofedSender);
        }
        let encoded = Bytes::copy_from_slice(&frame[1..frame.len() - rest.len()]);
        let _ = self.peer.set((claimed.clone(), encoded));
        Ok(Some(claimed))
    }
}
