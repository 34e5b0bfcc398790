//! memberlist itself over QUIC, authenticated by the same certificates as
//! [`QuicTransport`](crate::QuicTransport): [`QuicStack`] and the options behind it.

use std::net::SocketAddr;

use memberlist::delegate::VoidDelegate;
use memberlist::quic::stream_layer::quinn::Options as QuinnOptions;
use memberlist::tokio::{TokioQuicTransport, TokioQuinn, TokioSocketAddrResolver};

use super::guard::GuardedQuic;
use super::stack::MemberlistStack;
use crate::{MEMBERS_NAME, QuicConfig, QuicTls, TlsError};

/// memberlist's QUIC transport on tokio (quinn), addressed by socket address, its streams read
/// within a [`StreamGuard`](super::StreamGuard)'s limits.
pub type QuicMemberlistTransport<I> =
    TokioQuicTransport<I, TokioSocketAddrResolver, GuardedQuic<TokioQuinn>>;

/// The stack [`StackBuilder::build_quic`](super::StackBuilder::build_quic) builds: memberlist over
/// QUIC with mutual TLS, no memberlist delegate of the application's own.
pub type QuicStack<I, PD> =
    MemberlistStack<I, PD, QuicMemberlistTransport<I>, VoidDelegate<I, SocketAddr>>;

/// ALPN of memberlist's own QUIC connections, distinct from Plumtree's so that neither endpoint
/// can be mistaken for the other.
const MEMBERLIST_ALPN: &[u8] = b"memberlist-plumtree-swim/1";

impl QuicTls {
    /// Options for memberlist's QUIC stream layer from this identity: TLS 1.3, certificates
    /// checked both ways against the CA. memberlist dials members by address, so every node
    /// certificate must also carry the DNS name [`MEMBERS_NAME`] (certificates from
    /// [`ClusterCa`](crate::ClusterCa) do). Timeouts follow `config`; the rest is memberlist's.
    ///
    /// # Errors
    /// [`TlsError::Config`] if rustls rejects the certificates or key.
    pub fn memberlist_quinn_options(&self, config: &QuicConfig) -> Result<QuinnOptions, TlsError> {
        // memberlist replaces these transport parameters with its own; the TLS part is ours.
        let transport = config.transport_config();
        let server = self.server_config(transport.clone(), MEMBERLIST_ALPN)?;
        let client = self.client_config(transport, MEMBERLIST_ALPN)?;
        Ok(QuinnOptions::new(
            MEMBERS_NAME,
            server,
            client,
            quinn::EndpointConfig::default(),
        )
        .with_connect_timeout(config.connect_timeout)
        .with_keep_alive_interval(config.keep_alive)
        .with_max_idle_timeout(u32::try_from(config.idle_timeout.as_millis()).unwrap_or(u32::MAX)))
    }
}
