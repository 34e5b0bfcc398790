//! [`QuicTransport`]: the public handle, binding, and the sending side.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::QuicConfig;
use super::inbound;
use super::link::{Lane, Link};
use super::stats::{Counters, QuicStats};
use super::tls::{ALPN, QuicTls, TlsError, certificate_name};
use crate::runtime::{NodeInputs, Transport, TransportError};
use crate::{ConfigError, Frame, NodeId};

/// Application error codes we close QUIC connections with.
pub(crate) mod close_code {
    /// The node shut down.
    pub(crate) const SHUTDOWN: u32 = 0;
    /// The peer declared a frame longer than our `max_frame_size`.
    pub(crate) const FRAME_TOO_LARGE: u32 = 1;
    /// A frame's sender was not the node the peer's certificate names.
    pub(crate) const SPOOFED_SENDER: u32 = 2;
    /// A stream or frame was not in our format.
    pub(crate) const MALFORMED: u32 = 3;
}

/// Why a [`QuicTransport`] could not be bound.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuicError {
    /// The [`QuicConfig`] did not validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The certificates or key are unusable, or do not name this node.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The UDP socket could not be bound.
    #[error("binding the QUIC endpoint: {0}")]
    Bind(#[source] std::io::Error),
    /// Not called inside a tokio runtime.
    #[error("QuicTransport::bind must be called inside a tokio runtime")]
    NoRuntime,
}

/// Why a dial did not give a connection.
#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error("{0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("{0}")]
    Handshake(#[from] quinn::ConnectionError),
}

impl DialError {
    /// A refusal that retrying will not fix: certificates, names or protocols that do not match
    /// (worth a warning), as opposed to a peer that is down or slow.
    fn is_configuration(&self) -> bool {
        match self {
            Self::Connect(_) => true,
            Self::Handshake(error) => matches!(
                error,
                quinn::ConnectionError::TransportError(_)
                    | quinn::ConnectionError::ConnectionClosed(_)
                    | quinn::ConnectionError::VersionMismatch
            ),
        }
    }
}

type Resolver<I> = Arc<dyn Fn(&I) -> Option<SocketAddr> + Send + Sync>;

/// Plumtree frames over QUIC (quinn and rustls): one persistent, mutually authenticated
/// connection per peer.
///
/// - Each connection carries two long-lived streams per direction, one for control frames
///   (IHave, Graft, Prune) and one for payloads, so control never waits behind a large payload;
///   the control stream also has the higher send priority.
/// - A connection that a peer opened to us is used to send back to it too, when we have none of
///   our own to it.
/// - A broken connection is re-dialled on the next frame; a failed dial waits
///   [`reconnect_min`](QuicConfig::reconnect_min), doubling to
///   [`reconnect_max`](QuicConfig::reconnect_max), and frames for the peer fail at once
///   meanwhile (the protocol repairs them once the peer is back).
/// - Received frames are refused, and the connection closed, when their declared length is over
///   [`max_frame_size`](QuicConfig::max_frame_size) (before anything is allocated for them) or
///   their sender is not the node the peer's certificate names ([`QuicStats`] counts both).
///
/// Peers are found by id through the resolver ([`set_resolver`](Self::set_resolver));
/// [`MemberlistStack`](crate::MemberlistStack) resolves them from node metadata. The transport
/// starts receiving when the node starts with it, and stops when the node shuts down or
/// [`close`](Self::close) is called. docs/quic.md covers certificates and tuning.
///
/// # Examples
/// ```
/// use std::collections::HashMap;
/// use memberlist_plumtree::{ClusterCa, NoopDelegate, PlumtreeConfig, PlumtreeMemberlist, QuicConfig, QuicTransport};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let ca = ClusterCa::generate()?;
/// let quic = QuicTransport::bind(1u64, "127.0.0.1:0".parse()?, QuicConfig::lan(), &ca.node_tls(&1u64)?)?;
/// // Where peers listen: from your service discovery (MemberlistStack does this for you).
/// let addresses = HashMap::from([(2u64, "127.0.0.1:7002".parse()?)]);
/// quic.set_resolver(move |peer| addresses.get(peer).copied());
/// let node = PlumtreeMemberlist::new(1u64, PlumtreeConfig::lan(), NoopDelegate)?;
/// node.start(quic.clone())?;
/// println!("listening on {}", quic.local_addr());
/// node.shutdown().await;
/// quic.close().await;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct QuicTransport<I> {
    shared: Arc<Shared<I>>,
}

impl<I> Clone for QuicTransport<I> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<I: std::fmt::Debug> std::fmt::Debug for QuicTransport<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicTransport")
            .field("local", &self.shared.local)
            .field("addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

/// What one peer's outbound side is: a usable link, or how long to wait before dialling again.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub(crate) link: Option<Arc<Link>>,
    failures: u32,
    retry_at: Option<Instant>,
    /// Whether any connection to this peer ever worked, so that the next one is a reconnect.
    was_up: bool,
}

impl Slot {
    /// Installs a working link and clears the failures; counts a reconnect if an earlier
    /// connection to this peer had worked.
    pub(crate) fn up(&mut self, link: Arc<Link>, counters: &Counters) {
        if self.was_up {
            counters.reconnected();
        }
        *self = Self {
            link: Some(link),
            was_up: true,
            ..Self::default()
        };
    }
}

/// State shared by the handle and every task of one transport.
pub(crate) struct Shared<I> {
    local: I,
    local_addr: SocketAddr,
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) config: QuicConfig,
    pub(crate) links: Mutex<HashMap<I, Slot>>,
    resolver: RwLock<Option<Resolver<I>>>,
    pub(crate) counters: Counters,
    pub(crate) tasks: TaskTracker,
    pub(crate) shutdown: CancellationToken,
    /// The node's inputs, once it has started with this transport.
    pub(crate) node: OnceLock<NodeInputs<I>>,
}

impl<I: NodeId> QuicTransport<I> {
    /// Binds a QUIC endpoint for node `local` on `addr` (port 0 picks a free port: see
    /// [`local_addr`](Self::local_addr)). Nothing is received until a node is started with it.
    ///
    /// # Errors
    /// [`QuicError`] for a bad config, certificates that do not name `local`, a socket that
    /// cannot be bound, or no tokio runtime.
    pub fn bind(
        local: I,
        addr: SocketAddr,
        config: QuicConfig,
        tls: &QuicTls,
    ) -> Result<Self, QuicError> {
        config.validate()?;
        tls.check_names(&local)?;
        tokio::runtime::Handle::try_current().map_err(|_| QuicError::NoRuntime)?;
        let transport_config = config.transport_config();
        let server = tls.server_config(Arc::clone(&transport_config), ALPN)?;
        let client = tls.client_config(transport_config, ALPN)?;
        let mut endpoint = quinn::Endpoint::server(server, addr).map_err(QuicError::Bind)?;
        endpoint.set_default_client_config(client);
        let local_addr = endpoint.local_addr().map_err(QuicError::Bind)?;
        Ok(Self {
            shared: Arc::new(Shared {
                counters: Counters::new(format!("{local:?}")),
                local,
                local_addr,
                endpoint,
                config,
                links: Mutex::default(),
                resolver: RwLock::new(None),
                tasks: TaskTracker::new(),
                shutdown: CancellationToken::new(),
                node: OnceLock::new(),
            }),
        })
    }

    /// The address the endpoint listens on: publish it to the other nodes.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// How to find a peer's QUIC address by its id; `None` means unknown (frames to it fail
    /// with [`TransportError::Unreachable`] unless it has connected to us). Replaces any earlier
    /// resolver. A resolver is called on every dial, so it should be quick and must not block.
    pub fn set_resolver(&self, resolve: impl Fn(&I) -> Option<SocketAddr> + Send + Sync + 'static) {
        *self
            .shared
            .resolver
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(resolve));
    }

    /// The transport's counters.
    pub fn stats(&self) -> QuicStats {
        self.shared.counters.snapshot()
    }

    /// Closes every connection and the endpoint, and waits for the transport's tasks to end.
    /// Shutting down the node it was started with does the same, except the wait.
    ///
    /// # Cancel safety
    /// Cancel safe: everything is closed before the first wait.
    pub async fn close(&self) {
        self.shared.stop();
        self.shared.tasks.wait().await;
    }
}

#[cfg(test)]
impl<I> QuicTransport<I> {
    /// Waits for the transport's tasks without closing anything.
    pub(crate) async fn shared_tasks_wait(&self) {
        self.shared.tasks.wait().await;
    }
}

impl<I: NodeId> Shared<I> {
    pub(crate) fn lock_links(&self) -> MutexGuard<'_, HashMap<I, Slot>> {
        self.links.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends everything: tasks see the token, connections and the endpoint close.
    pub(crate) fn stop(&self) {
        self.shutdown.cancel();
        self.endpoint
            .close(close_code::SHUTDOWN.into(), b"shutdown");
        self.tasks.close();
        self.lock_links().clear();
    }

    fn resolve(&self, peer: &I) -> Option<SocketAddr> {
        let resolver = self
            .resolver
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        resolver(peer)
    }

    /// An open link to `peer`: the one we have, or a new dial (unless the last failure asks us
    /// to wait).
    async fn link(self: &Arc<Self>, peer: &I) -> Result<Arc<Link>, TransportError> {
        {
            let links = self.lock_links();
            match links.get(peer) {
                Some(Slot {
                    link: Some(link), ..
                }) if link.is_open() => return Ok(Arc::clone(link)),
                Some(slot) if slot.retry_at.is_some_and(|at| Instant::now() < at) => {
                    return Err(TransportError::Unreachable);
                }
                _ => {}
            }
        }
        if self.shutdown.is_cancelled() {
            return Err(TransportError::Closed);
        }
        let addr = self.resolve(peer).ok_or(TransportError::Unreachable)?;
        let name = certificate_name(peer).map_err(|e| TransportError::Other(e.to_string()))?;
        let dialed = match self.endpoint.connect(addr, &name) {
            Ok(connecting) => tokio::time::timeout(self.config.connect_timeout, connecting)
                .await
                .unwrap_or(Err(quinn::ConnectionError::TimedOut))
                .map_err(DialError::Handshake),
            Err(e) => Err(DialError::Connect(e)),
        };
        let mut links = self.lock_links();
        let slot = links.entry(peer.clone()).or_default();
        match dialed {
            Ok(connection) => {
                self.counters.dialed();
                let link = Link::new(connection.clone());
                slot.up(Arc::clone(&link), &self.counters);
                drop(links);
                inbound::spawn_serve(self, connection, Some(peer.clone()));
                Ok(link)
            }
            Err(error) => {
                self.counters.handshake_failed();
                slot.link = None;
                slot.failures = slot.failures.saturating_add(1);
                slot.retry_at = Some(Instant::now() + self.config.backoff(slot.failures));
                drop(links);
                if error.is_configuration() {
                    tracing::warn!(?peer, %addr, %error, "QUIC dial refused: check certificates");
                } else {
                    tracing::debug!(?peer, %addr, %error, "QUIC dial failed");
                }
                Err(TransportError::Unreachable)
            }
        }
    }

    /// Forgets `link` for `peer` if it is still the current one.
    fn drop_link(&self, peer: &I, link: &Arc<Link>) {
        let mut links = self.lock_links();
        if let Some(slot) = links.get_mut(peer) {
            if slot.link.as_ref().is_some_and(|l| Arc::ptr_eq(l, link)) {
                slot.link = None;
            }
        }
    }
}

impl<I: NodeId> Transport<I> for QuicTransport<I> {
    fn attach(&self, node: NodeInputs<I>) {
        if self.shared.node.set(node.clone()).is_ok() {
            let shared = Arc::clone(&self.shared);
            self.shared.tasks.spawn(inbound::accept(shared, node));
        }
    }

    async fn send(&self, to: &I, frame: Frame) -> Result<(), TransportError> {
        let shared = &self.shared;
        if frame.len() > shared.config.max_frame_size {
            // The peer would close the connection on it (same config assumed on every node).
            return Err(TransportError::Other(format!(
                "frame of {} bytes exceeds max_frame_size",
                frame.len()
            )));
        }
        let lane = if frame.is_urgent() {
            Lane::Control
        } else {
            Lane::Payload
        };
        // A link can die between frames (the peer restarted); one fresh dial is worth trying
        // before the frame is given up.
        let mut last = TransportError::Unreachable;
        for _ in 0..2 {
            let link = shared.link(to).await?;
            match link.write(lane, frame.clone()).await {
                Ok(()) => {
                    shared.counters.sent(frame.len());
                    return Ok(());
                }
                Err(error) => {
                    shared.drop_link(to, &link);
                    last = TransportError::Other(error.to_string());
                }
            }
        }
        Err(last)
    }
}
