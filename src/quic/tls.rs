//! TLS for the QUIC transport: every node proves its id with a certificate, both ways.
//!
//! A node's certificate names its id as a DNS name ([`certificate_name`]). A dialer asks for that
//! name, so it only ever talks to the node it meant; an acceptor requires a client certificate
//! from the same CA and checks every frame's claimed sender against it. There is no mode that
//! skips verification.

use std::sync::Arc;

use bytes::BytesMut;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::NodeId;

/// The ALPN protocol both ends of a Plumtree connection must offer: a QUIC endpoint of another
/// service is refused during the handshake.
pub(crate) const ALPN: &[u8] = b"memberlist-plumtree/1";

/// The DNS name every node certificate carries besides its own (see [`ClusterCa`]): the name
/// memberlist's QUIC transport asks for, since it dials members by address, not by id.
pub const MEMBERS_NAME: &str = "members.plumtree";

/// Longest encoded node id that fits in a certificate name, in bytes.
pub const MAX_CERTIFICATE_ID_LEN: usize = 100;

const NAME_SUFFIX: &str = "node.plumtree";
/// DNS labels are at most 63 characters.
const LABEL_LEN: usize = 60;

/// What went wrong loading or making certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM input held no certificate.
    #[error("no certificate in the {0} PEM")]
    NoCertificate(&'static str),
    /// A PEM input could not be read.
    #[error("invalid {what} PEM: {reason}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// The node certificate does not name the node id it is used for.
    #[error("the certificate does not name this node (expected DNS name {expected})")]
    WrongName {
        /// The name [`certificate_name`] gives for the node's id.
        expected: String,
    },
    /// The id is too long to be written as a certificate name.
    #[error(
        "node id of {len} bytes is too long for a certificate name (at most {MAX_CERTIFICATE_ID_LEN})"
    )]
    IdTooLong {
        /// The encoded id's length.
        len: usize,
    },
    /// Generating a certificate failed.
    #[error("generating a certificate: {0}")]
    Generate(String),
    /// rustls or quinn rejected the certificates or key.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// Origin signing needs an Ed25519 key, and this certificate (or key) holds another kind.
    #[error("not an Ed25519 key: origin signing needs Ed25519 node certificates")]
    NotEd25519,
    /// A certificate did not verify against the CA (another issuer, expired, wrong use).
    #[error("certificate not trusted: {0}")]
    Untrusted(String),
}

/// The DNS name a node's certificate must carry (as a subject alternative name) for `id`: its
/// encoded id in hex, in labels of at most 60 characters, under `node.plumtree`. Node 42 (`u64`)
/// is `000000000000002a.node.plumtree`.
///
/// # Errors
/// [`TlsError::IdTooLong`] for ids over [`MAX_CERTIFICATE_ID_LEN`] bytes.
pub fn certificate_name<I: NodeId>(id: &I) -> Result<String, TlsError> {
    let mut encoded = BytesMut::with_capacity(id.encoded_len());
    id.encode(&mut encoded);
    if encoded.len() > MAX_CERTIFICATE_ID_LEN {
        return Err(TlsError::IdTooLong { len: encoded.len() });
    }
    let hex: String = encoded.iter().map(|b| format!("{b:02x}")).collect();
    let mut name = String::with_capacity(hex.len() + hex.len() / LABEL_LEN + NAME_SUFFIX.len() + 2);
    for label in hex.as_bytes().chunks(LABEL_LEN) {
        name.push_str(std::str::from_utf8(label).expect("hex is ASCII"));
        name.push('.');
    }
    name.push_str(NAME_SUFFIX);
    Ok(name)
}

fn server_name<I: NodeId>(id: &I) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(certificate_name(id)?).map_err(config_error)
}

/// True if `cert` (already verified against the CA by the handshake) names `id`.
pub(crate) fn names<I: NodeId>(cert: &CertificateDer<'_>, id: &I) -> bool {
    let (Ok(end_entity), Ok(name)) = (webpki::EndEntityCert::try_from(cert), server_name(id))
    else {
        return false;
    };
    end_entity.verify_is_valid_for_subject_name(&name).is_ok()
}

/// A node's TLS identity: the CA every node trusts, and this node's certificate chain and key.
///
/// Load one per node with [`from_pem`](Self::from_pem) (production: certificates from your CA,
/// docs/quic.md shows how to make them), or get one from a [`ClusterCa`] (development).
#[derive(Clone)]
pub struct QuicTls {
    pub(super) roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    pub(super) key: Arc<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for QuicTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicTls")
            .field("roots", &self.roots.len())
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl QuicTls {
    /// From PEM text: the CA certificate(s) to trust, this node's certificate chain (its own
    /// certificate first) and its private key (PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    /// [`TlsError`] if an input holds nothing usable or the CA is not a valid trust anchor.
    pub fn from_pem(ca: &str, chain: &str, key: &str) -> Result<Self, TlsError> {
        let certs = |what: &'static str, pem: &str| {
            let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::Pem {
                    what,
                    reason: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(TlsError::NoCertificate(what));
            }
            Ok(certs)
        };
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| TlsError::Pem {
            what: "private key",
            reason: e.to_string(),
        })?;
        Self::from_der(certs("CA", ca)?, certs("node certificate", chain)?, key)
    }

    /// From DER: as [`from_pem`](Self::from_pem).
    ///
    /// # Errors
    /// [`TlsError`] if a list is empty or the CA is not a valid trust anchor.
    pub fn from_der(
        ca: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        if ca.is_empty() {
            return Err(TlsError::NoCertificate("CA"));
        }
        if chain.is_empty() {
            return Err(TlsError::NoCertificate("node certificate"));
        }
        let mut roots = RootCertStore::empty();
        for cert in ca {
            roots
                .add(cert)
                .map_err(|e| TlsError::Config(format!("CA certificate: {e}")))?;
        }
        Ok(Self {
            roots: Arc::new(roots),
            chain,
            key: Arc::new(key),
        })
    }

    /// Checks that this identity's certificate names `id`, so that a misissued certificate fails
    /// at startup rather than at every peer's handshake.
    pub(crate) fn check_names<I: NodeId>(&self, id: &I) -> Result<(), TlsError> {
        if names(&self.chain[0], id) {
            Ok(())
        } else {
            Err(TlsError::WrongName {
                expected: certificate_name(id)?,
            })
        }
    }

    pub(super) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// rustls's server side: TLS 1.3 only, a client certificate from our CA required.
    pub(crate) fn rustls_server_config(
        &self,
        alpn: &[u8],
    ) -> Result<rustls::ServerConfig, TlsError> {
        let provider = Self::provider();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::clone(&self.roots),
            Arc::clone(&provider),
        )
        .build()
        .map_err(config_error)?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config_error)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(config_error)?;
        tls.alpn_protocols = vec![alpn.to_vec()];
        Ok(tls)
    }

    /// rustls's client side: the server must prove the name we dial; we present our certificate.
    pub(crate) fn rustls_client_config(
        &self,
        alpn: &[u8],
    ) -> Result<rustls::ClientConfig, TlsError> {
        let mut tls = rustls::ClientConfig::builder_with_provider(Self::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config_error)?
            .with_root_certificates(Arc::clone(&self.roots))
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(config_error)?;
        tls.alpn_protocols = vec![alpn.to_vec()];
        Ok(tls)
    }

    /// quinn's server side: [`rustls_server_config`](Self::rustls_server_config) over QUIC.
    pub(crate) fn server_config(
        &self,
        transport: Arc<quinn::TransportConfig>,
        alpn: &[u8],
    ) -> Result<quinn::ServerConfig, TlsError> {
        let tls = self.rustls_server_config(alpn)?;
        let crypto =
            quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(config_error)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(transport);
        Ok(server)
    }

    /// quinn's client side: [`rustls_client_config`](Self::rustls_client_config) over QUIC.
    pub(crate) fn client_config(
        &self,
        transport: Arc<quinn::TransportConfig>,
        alpn: &[u8],
    ) -> Result<quinn::ClientConfig, TlsError> {
        let tls = self.rustls_client_config(alpn)?;
        let crypto =
            quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(config_error)?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(transport);
        Ok(client)
    }
}

/// A throwaway certificate authority for development clusters and tests.
///
/// It signs one certificate per node id, naming the id ([`certificate_name`]) and
/// [`MEMBERS_NAME`], for a fresh Ed25519 key (so the node can also sign its broadcasts with it:
/// [`QuicTls::origin_keys`]); every node trusts the CA, and verification stays on, so a development
/// cluster runs the same checks as production. The CA's key lives only in
/// this value: for nodes in several processes, [`issue`](Self::issue) their certificates once
/// and hand each process its files (docs/quic.md).
///
/// # Examples
/// ```
/// use memberlist_plumtree::ClusterCa;
///
/// let ca = ClusterCa::generate()?;
/// let node_7 = ca.node_tls(&7u64)?; // ready for QuicTransport::bind
/// let files = ca.issue(&8u64)?;     // PEM text, for another process
/// assert!(files.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
/// # let _ = node_7;
/// # Ok::<(), memberlist_plumtree::TlsError>(())
/// ```
pub struct ClusterCa {
    cert: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

/// A node certificate and its private key, as PEM text.
#[derive(Clone)]
#[non_exhaustive]
pub struct NodeCertificate {
    /// The certificate, naming the node's id.
    pub cert_pem: String,
    /// Its private key (PKCS#8). Keep it secret.
    pub key_pem: String,
}

impl std::fmt::Debug for NodeCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCertificate")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// rustls and quinn refuse configurations with errors of several types; all become `Config`.
fn config_error(e: impl std::fmt::Display) -> TlsError {
    TlsError::Config(e.to_string())
}

fn generate_error(e: rcgen::Error) -> TlsError {
    TlsError::Generate(e.to_string())
}

impl ClusterCa {
    /// A new CA with a fresh ECDSA P-256 key.
    ///
    /// # Errors
    /// [`TlsError::Generate`] if key generation fails.
    pub fn generate() -> Result<Self, TlsError> {
        let key = rcgen::KeyPair::generate().map_err(generate_error)?;
        let mut params = rcgen::CertificateParams::default();
        // A name of its own, so that a certificate from another throwaway CA fails as "unknown
        // issuer" rather than as a bad signature from a namesake.
        let name = format!(
            "memberlist-plumtree development CA {:016x}",
            fastrand::u64(..)
        );
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).map_err(generate_error)?;
        Ok(Self {
            cert,
            issuer: rcgen::Issuer::new(params, key),
        })
    }

    /// The CA certificate, as PEM: what every node trusts.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// Signs a new certificate (and key) naming `id`, usable as both client and server.
    ///
    /// # Errors
    /// [`TlsError::IdTooLong`] or [`TlsError::Generate`].
    pub fn issue<I: NodeId>(&self, id: &I) -> Result<NodeCertificate, TlsError> {
        let (cert, key) = self.sign(id)?;
        Ok(NodeCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A ready [`QuicTls`] for node `id`: a fresh certificate from this CA, trusting this CA.
    ///
    /// # Errors
    /// As [`issue`](Self::issue).
    pub fn node_tls<I: NodeId>(&self, id: &I) -> Result<QuicTls, TlsError> {
        let (cert, key) = self.sign(id)?;
        let key = PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| TlsError::Generate(e.to_owned()))?;
        QuicTls::from_der(vec![self.cert.der().clone()], vec![cert.der().clone()], key)
    }

    /// [`issue`](Self::issue), with a key of another algorithm than Ed25519 (for tests of
    /// what such a key cannot do).
    #[cfg(all(test, feature = "signing"))]
    pub(crate) fn issue_with_key<I: NodeId>(
        &self,
        id: &I,
        algorithm: &'static rcgen::SignatureAlgorithm,
    ) -> Result<NodeCertificate, TlsError> {
        let (cert, key) = self.sign_with(id, algorithm)?;
        Ok(NodeCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    fn sign<I: NodeId>(&self, id: &I) -> Result<(rcgen::Certificate, rcgen::KeyPair), TlsError> {
        // Ed25519: the node's TLS key is also the key it can sign its broadcasts with
        // (`QuicTls::origin_keys`).
        self.sign_with(id, &rcgen::PKCS_ED25519)
    }

    fn sign_with<I: NodeId>(
        &self,
        id: &I,
        algorithm: &'static rcgen::SignatureAlgorithm,
    ) -> Result<(rcgen::Certificate, rcgen::KeyPair), TlsError> {
        let name = certificate_name(id)?;
        let mut params = rcgen::CertificateParams::new(vec![name.clone(), MEMBERS_NAME.to_owned()])
            .map_err(generate_error)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = rcgen::KeyPair::generate_for(algorithm).map_err(generate_error)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(generate_error)?;
        Ok((cert, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_hex_labels_under_the_suffix() {
        assert_eq!(
            certificate_name(&42u64).unwrap(),
            "000000000000002a.node.plumtree"
        );
        let long = "x".repeat(90);
        let name = certificate_name(&long).unwrap();
        assert!(name.split('.').all(|label| label.len() <= 63));
        assert!(ServerName::try_from(name).is_ok());
        let too_long = "x".repeat(MAX_CERTIFICATE_ID_LEN);
        assert!(matches!(
            certificate_name(&too_long),
            Err(TlsError::IdTooLong { .. })
        ));
    }

    #[test]
    fn issued_certificates_name_their_node_only() {
        let ca = ClusterCa::generate().unwrap();
        let tls = ca.node_tls(&7u64).unwrap();
        tls.check_names(&7u64).unwrap();
        assert!(matches!(
            tls.check_names(&8u64),
            Err(TlsError::WrongName { .. })
        ));
    }

    #[test]
    fn pem_round_trip_and_errors() {
        let ca = ClusterCa::generate().unwrap();
        let files = ca.issue(&3u64).unwrap();
        let tls = QuicTls::from_pem(&ca.cert_pem(), &files.cert_pem, &files.key_pem).unwrap();
        tls.check_names(&3u64).unwrap();
        assert!(matches!(
            QuicTls::from_pem("", &files.cert_pem, &files.key_pem),
            Err(TlsError::NoCertificate("CA"))
        ));
        assert!(matches!(
            QuicTls::from_pem(&ca.cert_pem(), &files.cert_pem, "garbage"),
            Err(TlsError::Pem { .. })
        ));
    }
}
