//! [`StackBuilder`]: a working node in a few lines, for the common case of memberlist over
//! UDP+TCP with Plumtree frames riding on memberlist.

use std::net::SocketAddr;
use std::sync::Arc;

use memberlist::Options;
use memberlist::delegate::VoidDelegate;
use memberlist::net::NetTransportOptions;
use memberlist::proto::Data;
use memberlist::proto::{EncryptionAlgorithm, SecretKey};
use memberlist::tokio::{TokioNetTransport, TokioSocketAddrResolver, TokioTcp};
use memberlist::transport::{Id, Transport as MlTransport};

use super::bridge::BridgeConfig;
use super::delegate::PlumtreeNodeDelegate;
use super::guard::{Guarded, GuardedOptions, Shared, StreamGuard};
use super::stack::{MemberlistStack, StackError};
use crate::runtime::{PlumtreeDelegate, RuntimeConfig};
use crate::{NodeId, NoopDelegate, PlumtreeConfig, PlumtreeMemberlist};

/// memberlist's UDP+TCP transport on tokio, addressed by socket address, its streams read
/// within a [`StreamGuard`]'s limits.
pub type TcpTransport<I> = TokioNetTransport<I, TokioSocketAddrResolver, Guarded<TokioTcp>>;

/// The stack [`StackBuilder`] builds: memberlist over UDP+TCP, no memberlist delegate of the
/// application's own.
pub type TcpStack<I, PD> = MemberlistStack<I, PD, TcpTransport<I>, VoidDelegate<I, SocketAddr>>;

/// Builds a [`TcpStack`]: binds memberlist, starts the Plumtree node with a
/// [`MemberlistTransport`](super::MemberlistTransport), and joins the seeds.
///
/// # Examples
/// ```no_run
/// use memberlist_plumtree::{MemberlistStack, NoopDelegate, PlumtreeConfig};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let stack = MemberlistStack::builder(7u64)
///     .bind("0.0.0.0:7946".parse()?)
///     .seeds(["10.0.0.1:7946".parse()?])
///     .config(PlumtreeConfig::lan())
///     .build(NoopDelegate)
///     .await?;
/// stack.broadcast(&b"hello"[..]).await?;
/// # Ok(()) }
/// # let _ = run;
/// ```
#[derive(Debug)]
pub struct StackBuilder<I> {
    id: I,
    bind: SocketAddr,
    seeds: Vec<SocketAddr>,
    config: PlumtreeConfig,
    runtime: RuntimeConfig,
    bridge: BridgeConfig,
    memberlist: Options,
    guard: StreamGuard,
    /// The primary key and the older keys still accepted.
    keyring: Option<(SecretKey, Vec<SecretKey>)>,
    #[cfg(feature = "quic")]
    quic: Option<crate::QuicTransport<I>>,
    #[cfg(feature = "signing")]
    origin_keys: Option<crate::OriginKeys<I>>,
}

impl<I: NodeId + Id + Data> TcpStack<I, NoopDelegate> {
    /// Starts building a node called `id`: by default bound to `127.0.0.1:0`, no seeds,
    /// `PlumtreeConfig::default()`, memberlist's `Options::lan()`.
    #[must_use]
    pub fn builder(id: I) -> StackBuilder<I> {
        StackBuilder {
            id,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            seeds: Vec::new(),
            config: PlumtreeConfig::default(),
            runtime: RuntimeConfig::default(),
            bridge: BridgeConfig::default(),
            memberlist: Options::lan(),
            guard: StreamGuard::default(),
            keyring: None,
            #[cfg(feature = "quic")]
            quic: None,
            #[cfg(feature = "signing")]
            origin_keys: None,
        }
    }
}

setters! { impl<I> StackBuilder<I>;
    /// The address memberlist binds (UDP and TCP); port 0 picks a free one, which
    /// [`MemberlistStack::memberlist`] then reports as `advertise_address()`.
    bind: bind: SocketAddr;
    /// The Plumtree protocol config.
    config: config: PlumtreeConfig;
    /// The Plumtree node's queue sizes.
    runtime: runtime: RuntimeConfig;
    /// How membership maps to peers.
    bridge: bridge: BridgeConfig;
    /// memberlist's own options (probe and gossip intervals, suspicion, encryption...).
    memberlist_options: memberlist: Options;
    /// Limits on memberlist's TCP streams: message size, read timeout, open connections
    /// (see [`Guarded`]).
    stream_guard: guard: StreamGuard;
}

impl<I: NodeId + Id + Data> StackBuilder<I> {
    /// Members to join through at build time (any one reachable is enough).
    #[must_use]
    pub fn seeds(mut self, seeds: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.seeds = seeds.into_iter().collect();
        self
    }

    /// Encrypts and authenticates every memberlist message with `key` (AES-GCM; a 16, 24 or
    /// 32-byte key): membership gossip, probes, state exchanges and the Plumtree frames that ride
    /// on memberlist. Messages not sealed with a key of the keyring are refused, so a node
    /// without the key can neither join nor broadcast. Every member needs the same key; see
    /// [`keyring`](Self::keyring) to rotate it and docs/security.md for what it covers.
    ///
    /// # Examples
    /// ```no_run
    /// use memberlist_plumtree::memberlist::proto::SecretKey;
    /// use memberlist_plumtree::{MemberlistStack, NoopDelegate};
    ///
    /// # async fn run(key: [u8; 32]) -> Result<(), Box<dyn std::error::Error>> {
    /// let stack = MemberlistStack::builder(7u64)
    ///     .bind("10.0.0.7:7946".parse()?)
    ///     .secret_key(SecretKey::Aes256(key))
    ///     .build(NoopDelegate)
    ///     .await?;
    /// assert!(stack.memberlist().encryption_enabled());
    /// # Ok(()) }
    /// # let _ = run;
    /// ```
    #[must_use]
    pub fn secret_key(self, key: SecretKey) -> Self {
        self.keyring(key, [])
    }

    /// As [`secret_key`](Self::secret_key), with older keys that are still accepted (never used
    /// to seal): the keyring during a rotation. Rotate a running cluster through
    /// `stack.memberlist().keyring()`: insert the new key on every member, then make it primary
    /// (`use_key`) on every member, then remove the old one.
    #[must_use]
    pub fn keyring(
        mut self,
        primary: SecretKey,
        older: impl IntoIterator<Item = SecretKey>,
    ) -> Self {
        self.keyring = Some((primary, older.into_iter().collect()));
        self
    }

    /// Sends Plumtree frames over `quic` instead of memberlist's own messages: its address is
    /// published in node metadata (unless [`BridgeConfig::transport_addr`] is set, say to an
    /// address behind NAT) and peers are resolved from theirs. A transport bound to an
    /// unspecified address (`0.0.0.0`) publishes memberlist's bind address with its own port.
    #[cfg(feature = "quic")]
    #[must_use]
    pub fn quic(mut self, quic: crate::QuicTransport<I>) -> Self {
        self.quic = Some(quic);
        self
    }

    /// Signs this node's broadcasts and delivers only payloads signed by an origin in `keys`
    /// (see [`Plumtree::with_origin_keys`](crate::Plumtree::with_origin_keys)): every node of
    /// the cluster needs keys and every origin's public key.
    #[cfg(feature = "signing")]
    #[must_use]
    pub fn origin_keys(mut self, keys: crate::OriginKeys<I>) -> Self {
        self.origin_keys = Some(keys);
        self
    }

    /// Creates the node, binds memberlist (UDP+TCP), starts everything and joins the seeds.
    ///
    /// # Errors
    /// [`StackError::Config`] for a config that does not validate (or a QUIC transport whose
    /// address cannot be published: both it and memberlist bound to unspecified addresses and
    /// no `transport_addr` given; or, with frames over memberlist, a `PlumtreeConfig` whose
    /// longest frame (the largest payload, or the fullest IHave) does not fit in
    /// `StreamGuard::max_message_size`), [`StackError::Memberlist`] if memberlist cannot bind,
    /// [`StackError::Join`] if seeds were given and none answered (the node is shut down
    /// again), [`StackError::Start`] outside a tokio runtime.
    pub async fn build<PD: PlumtreeDelegate<I>>(
        self,
        delegate: PD,
    ) -> Result<TcpStack<I, PD>, StackError> {
        let layer = GuardedOptions::new((), self.guard.clone())?;
        if !self.bind.ip().is_loopback() && self.keyring.is_none() {
            tracing::warn!(
                bind = %self.bind,
                "memberlist over UDP+TCP without a keyring: anyone who reaches this address can join the cluster and broadcast; set StackBuilder::secret_key or use build_quic (docs/security.md)"
            );
        }
        let shared = std::sync::Arc::clone(layer.shared());
        let mut transport = NetTransportOptions::with_stream_layer_options(self.id.clone(), layer);
        transport.add_bind_address(self.bind);
        self.build_on(delegate, transport, Some(shared)).await
    }

    /// As [`build`](Self::build), with memberlist itself over QUIC: membership traffic is
    /// encrypted and every member authenticated by `tls` (its certificate must carry
    /// [`MEMBERS_NAME`](crate::MEMBERS_NAME), as [`ClusterCa`](crate::ClusterCa)'s do).
    /// Plumtree frames ride on memberlist's QUIC messages, or on a
    /// [`quic`](Self::quic) transport if one is given.
    ///
    /// # Errors
    /// As `build`, and [`StackError::Memberlist`] for certificates rustls rejects.
    #[cfg(feature = "quic")]
    pub async fn build_quic<PD: PlumtreeDelegate<I>>(
        self,
        delegate: PD,
        tls: &crate::QuicTls,
        config: &crate::QuicConfig,
    ) -> Result<super::QuicStack<I, PD>, StackError> {
        let quinn = tls
            .memberlist_quinn_options(config)
            .map_err(|e| StackError::Memberlist(e.to_string()))?;
        let layer = GuardedOptions::new(quinn, self.guard.clone())?;
        let shared = std::sync::Arc::clone(layer.shared());
        let mut transport = memberlist::quic::QuicTransportOptions::with_stream_layer_options(
            self.id.clone(),
            layer,
        );
        transport.add_bind_address(self.bind);
        self.build_on(delegate, transport, Some(shared)).await
    }

    /// As [`build`](Self::build), with memberlist's TCP streams over TLS 1.3: every stream
    /// (state exchanges, and the Plumtree frames that ride on memberlist) is encrypted and both
    /// ends are authenticated by `tls` (certificates must carry
    /// [`MEMBERS_NAME`](crate::MEMBERS_NAME), as [`ClusterCa`](crate::ClusterCa)'s do).
    /// memberlist's UDP probes and gossip stay outside TLS: add [`secret_key`](Self::secret_key)
    /// to cover them, or use [`build_quic`](Self::build_quic) (docs/security.md). Handshakes
    /// must finish within `config.connect_timeout`.
    ///
    /// # Errors
    /// As `build`, and [`StackError::Memberlist`] for certificates rustls rejects.
    #[cfg(feature = "quic")]
    pub async fn build_tls<PD: PlumtreeDelegate<I>>(
        self,
        delegate: PD,
        tls: &crate::QuicTls,
        config: &crate::QuicConfig,
    ) -> Result<super::TlsStack<I, PD>, StackError> {
        let options = tls
            .memberlist_tls_options(config)
            .map_err(|e| StackError::Memberlist(e.to_string()))?;
        if !self.bind.ip().is_loopback() && self.keyring.is_none() {
            tracing::warn!(
                bind = %self.bind,
                "memberlist's UDP probes and gossip travel outside TLS: without a keyring anyone who reaches this address can forge membership news; set StackBuilder::secret_key too (docs/security.md)"
            );
        }
        let layer = GuardedOptions::new(options, self.guard.clone())?;
        let shared = std::sync::Arc::clone(layer.shared());
        let mut transport = NetTransportOptions::with_stream_layer_options(self.id.clone(), layer);
        transport.add_bind_address(self.bind);
        self.build_on(delegate, transport, Some(shared)).await
    }

    fn frames_ride_on_memberlist(&self) -> bool {
        #[cfg(feature = "quic")]
        return self.quic.is_none();
        #[cfg(not(feature = "quic"))]
        true
    }

    async fn build_on<PD, T>(
        self,
        delegate: PD,
        transport: T::Options,
        guard: Option<Arc<Shared>>,
    ) -> Result<MemberlistStack<I, PD, T, VoidDelegate<I, SocketAddr>>, StackError>
    where
        PD: PlumtreeDelegate<I>,
        T: MlTransport<Id = I, Address = SocketAddr, ResolvedAddress = SocketAddr>,
    {
        tokio::runtime::Handle::try_current().map_err(|_| crate::StartError::NoRuntime)?;
        // Frames over memberlist's streams must fit in what the guard lets through; a topic
        // joined later is held to the same bound (`MemberlistStack::join_topic`).
        let frame_limit = self
            .frames_ride_on_memberlist()
            .then_some(self.guard.max_message_size);
        if let Some(limit) = frame_limit {
            super::transport::check_frames_fit(&self.config, limit)?;
        }
        let plumtree = PlumtreeMemberlist::with_runtime_config(
            self.id.clone(),
            self.config,
            self.runtime,
            delegate,
        )?;
        #[cfg(feature = "signing")]
        let plumtree = match self.origin_keys {
            Some(keys) => plumtree.with_origin_keys(keys)?,
            None => plumtree,
        };
        let plumtree = Arc::new(plumtree);
        #[cfg_attr(not(feature = "quic"), allow(unused_mut))]
        let mut bridge = self.bridge;
        #[cfg(feature = "quic")]
        if let Some(quic) = &self.quic {
            bridge.transport_addr = Some(advertised(
                bridge.transport_addr,
                quic.local_addr(),
                self.bind,
            )?);
        }
        let node_delegate =
            PlumtreeNodeDelegate::new(&plumtree, NoopDelegate).with_bridge(bridge)?;
        let mut options = self.memberlist;
        let older = match self.keyring {
            Some((primary, older)) => {
                options = options
                    .with_primary_key(primary)
                    .with_encryption_algo(EncryptionAlgorithm::NoPadding)
                    .with_gossip_verify_outgoing(true)
                    .with_gossip_verify_incoming(true);
                older
            }
            None => Vec::new(),
        };
        let memberlist = memberlist::Memberlist::with_delegate(node_delegate, transport, options)
            .await
            .map_err(|e| StackError::Memberlist(e.to_string()))?;
        if let Some(keyring) = memberlist.keyring() {
            for key in older {
                keyring.insert(key);
            }
        }
        let mut stack = MemberlistStack::new(plumtree, memberlist)?;
        if let Some(guard) = guard {
            stack.set_guard(guard);
        }
        stack.set_frame_limit(frame_limit);
        #[cfg(feature = "quic")]
        let started = match self.quic {
            Some(quic) => {
                quic.set_resolver(stack.transport_resolver());
                stack.start(quic)
            }
            None => stack.start(stack.memberlist_transport()),
        };
        #[cfg(not(feature = "quic"))]
        let started = stack.start(stack.memberlist_transport());
        started?;
        if let Err(error) = stack.join(&self.seeds).await {
            let _ = stack.shutdown().await;
            return Err(error);
        }
        Ok(stack)
    }
}

/// The QUIC address to publish: the one configured, else the transport's own, else (for a
/// transport on `0.0.0.0`) memberlist's bind address with the transport's port.
#[cfg(feature = "quic")]
fn advertised(
    configured: Option<SocketAddr>,
    local: SocketAddr,
    memberlist_bind: SocketAddr,
) -> Result<SocketAddr, crate::ConfigError> {
    if let Some(addr) = configured {
        return Ok(addr);
    }
    if !local.ip().is_unspecified() {
        return Ok(local);
    }
    if !memberlist_bind.ip().is_unspecified() {
        return Ok(SocketAddr::new(memberlist_bind.ip(), local.port()));
    }
    Err(crate::ConfigError::Inconsistent(
        "the QUIC transport and memberlist both listen on unspecified addresses: set BridgeConfig::transport_addr to one peers can reach",
    ))
}
