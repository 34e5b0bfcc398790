//! [`QuicTransport`]: Plumtree frames over persistent QUIC connections (quinn, rustls) with
//! mutual TLS. Feature `quic`.
//!
//! Every node holds a certificate that names its id ([`certificate_name`]), signed by a CA all
//! nodes trust: [`ClusterCa`] makes one for development, [`QuicTls::from_pem`] loads yours for
//! production. Dialers verify the peer they asked for; acceptors verify the client certificate
//! and check each frame's sender against it. docs/quic.md walks through setup and tuning.
//!
//! Layout: `config` (timeouts, limits, presets), `tls` (identities and rustls configs), `link`
//! (our sending side of a connection), `framing` (the frames of a received stream), `inbound`
//! (accepting and reading), `transport` (the handle and dialling), `stats` (counters and
//! metrics).

mod config;
mod framing;
mod inbound;
mod link;
#[cfg(feature = "signing")]
mod origin;
mod stats;
mod tls;
mod transport;

#[cfg(test)]
mod tests;

#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing {
    pub(crate) use super::framing::read_all;
}

pub use config::{MAX_FRAME_SIZE_LIMIT, QuicConfig};
pub use stats::{QuicStats, RejectReason};
pub use tls::{
    ClusterCa, MAX_CERTIFICATE_ID_LEN, MEMBERS_NAME, NodeCertificate, QuicTls, TlsError,
    certificate_name,
};
pub use transport::{QuicError, QuicTransport};
