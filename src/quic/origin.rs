//! Origin keys bound to QUIC certificates (features `quic` and `signing`).
//!
//! A node whose certificate holds an Ed25519 key signs its broadcasts with that key, and accepts
//! another origin's key only from a certificate that the cluster's CA issued for that origin's
//! id. So the CA's binding of ids to keys, which TLS already relies on, binds signing too: a
//! node can sign only as the id its certificate names, and no configuration mistake can hand one
//! origin's id another's key.

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};

use super::tls::{QuicTls, TlsError, names};
use crate::{NodeId, OriginKeys};

impl QuicTls {
    /// This node's [`OriginKeys`]: it signs with its certificate's key, and accepts its own
    /// broadcasts. Add each other origin with
    /// [`certified_origin_key`](Self::certified_origin_key).
    ///
    /// # Errors
    /// [`TlsError::WrongName`] if the certificate does not name `local`;
    /// [`TlsError::NotEd25519`] if its key is not an Ed25519 key ([`ClusterCa`](super::ClusterCa)
    /// issues Ed25519 keys; docs/quic.md shows how to make them with openssl).
    ///
    /// # Examples
    /// ```
    /// use memberlist_plumtree::ClusterCa;
    ///
    /// let ca = ClusterCa::generate()?;
    /// let (one, two) = (ca.node_tls(&1u64)?, ca.issue(&2u64)?);
    /// let keys = one
    ///     .origin_keys(1u64)?
    ///     .with_origin(2, one.certified_origin_key(&2u64, &two.cert_pem)?)
    ///     .expect("a certified key is a valid key");
    /// // Node 2's certificate does not name node 3: it cannot be taken as node 3's key.
    /// assert!(one.certified_origin_key(&3u64, &two.cert_pem).is_err());
    /// # let _ = keys;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn origin_keys<I: NodeId>(&self, local: I) -> Result<OriginKeys<I>, TlsError> {
        self.check_names(&local)?;
        let secret = ed25519_dalek::SigningKey::from_pkcs8_der(self.key.secret_der())
            .map_err(|_| TlsError::NotEd25519)?;
        Ok(OriginKeys::new(local, secret.to_bytes()))
    }

    /// The signing key of `origin`, from its certificate (PEM, the node certificate first, then
    /// any intermediates), once the certificate is checked: issued by this node's CA (now
    /// valid, for client or server use) and naming `origin`. For
    /// [`OriginKeys::with_origin`].
    ///
    /// # Errors
    /// [`TlsError::Pem`] or [`TlsError::NoCertificate`] for unreadable input;
    /// [`TlsError::Untrusted`] if the CA did not issue it (or it expired);
    /// [`TlsError::WrongName`] if it names another node; [`TlsError::NotEd25519`] if its key
    /// is not Ed25519.
    pub fn certified_origin_key<I: NodeId>(
        &self,
        origin: &I,
        chain_pem: &str,
    ) -> Result<[u8; 32], TlsError> {
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem {
                what: "origin certificate",
                reason: e.to_string(),
            })?;
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or(TlsError::NoCertificate("origin certificate"))?;
        let cert = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| TlsError::Untrusted(e.to_string()))?;
        let algorithms = Self::provider().signature_verification_algorithms.all;
        let trusted = |usage| {
            cert.verify_for_usage(
                algorithms,
                &self.roots.roots,
                intermediates,
                UnixTime::now(),
                usage,
                None,
                None,
            )
            .map(|_| ())
        };
        trusted(webpki::KeyUsage::client_auth())
            .or_else(|_| trusted(webpki::KeyUsage::server_auth()))
            .map_err(|e| TlsError::Untrusted(e.to_string()))?;
        if !names(leaf, origin) {
            return Err(TlsError::WrongName {
                expected: super::certificate_name(origin)?,
            });
        }
        let key = ed25519_dalek::VerifyingKey::from_public_key_der(
            cert.subject_public_key_info().as_ref(),
        )
        .map_err(|_| TlsError::NotEd25519)?;
        Ok(key.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClusterCa;

    #[test]
    fn keys_come_from_certificates_of_the_cluster_ca_only() {
        let ca = ClusterCa::generate().unwrap();
        let one = ca.node_tls(&1u64).unwrap();
        let two = ca.issue(&2u64).unwrap();
        let keys = one.origin_keys(1u64).unwrap();
        assert!(matches!(
            one.origin_keys(9u64),
            Err(TlsError::WrongName { .. })
        ));
        // Node 2's key from its certificate is the key node 2 signs with.
        let two_tls = QuicTls::from_pem(&ca.cert_pem(), &two.cert_pem, &two.key_pem).unwrap();
        let two_keys = two_tls.origin_keys(2u64).unwrap();
        let certified = one.certified_origin_key(&2u64, &two.cert_pem).unwrap();
        assert_eq!(certified, two_keys.public_key());
        assert_ne!(certified, keys.public_key());
        // Named for another node, or from another CA: refused.
        assert!(matches!(
            one.certified_origin_key(&3u64, &two.cert_pem),
            Err(TlsError::WrongName { .. })
        ));
        let stranger = ClusterCa::generate().unwrap().issue(&2u64).unwrap();
        assert!(matches!(
            one.certified_origin_key(&2u64, &stranger.cert_pem),
            Err(TlsError::Untrusted(_))
        ));
        assert!(matches!(
            one.certified_origin_key(&2u64, ""),
            Err(TlsError::NoCertificate(_))
        ));
    }

    #[test]
    fn a_node_key_that_is_not_ed25519_cannot_sign() {
        // A P-256 node certificate from our CA, as other CAs issue them.
        let ca = ClusterCa::generate().unwrap();
        let files = ca
            .issue_with_key(&4u64, &rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap();
        let tls = QuicTls::from_pem(&ca.cert_pem(), &files.cert_pem, &files.key_pem).unwrap();
        assert!(matches!(tls.origin_keys(4u64), Err(TlsError::NotEd25519)));
        let one = ca.node_tls(&1u64).unwrap();
        assert!(matches!(
            one.certified_origin_key(&4u64, &files.cert_pem),
            Err(TlsError::NotEd25519)
        ));
    }
}
