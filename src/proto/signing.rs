//! [`OriginKeys`]: signed origins (the `signing` feature). The origin of a broadcast signs it
//! with Ed25519 and every node that holds origin keys checks the signature before it delivers
//! or passes the payload on, so a relay cannot alter a payload or pass its own off as another
//! node's: the altered copy is dropped and counted at the next hop.
//!
//! What is signed is the SHA-512 digest of a domain tag, the origin's id as it is encoded on
//! the wire, the message id, the payload's encoding and the payload as it travels (compressed
//! or not): a relay can check it without decompressing, and cannot rewrite any of them. The
//! In a topic other than the default, the topic's id is signed too (under another domain tag),
//! so a payload cannot be moved from one topic to another. The
//! hop count and the path weight change at every hop and are not signed. A replayed copy keeps
//! its id and is a duplicate like any other.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha512};

use crate::message::{Encoding, MessageId, Signature};
use crate::{NodeId, TopicId};

/// Most keys accepted from one origin: enough for a rotation (the old key and the new one) with
/// room to spare; adding another drops the oldest.
pub const MAX_KEYS_PER_ORIGIN: usize = 4;

/// Separates these signatures from any other use of the same keys.
const DOMAIN: &[u8] = b"memberlist-plumtree origin signature v1";

/// The same for a topic other than the default, whose id follows: a payload signed for one
/// topic does not hold in another.
const TOPIC_DOMAIN: &[u8] = b"memberlist-plumtree topic origin signature v1";

/// This node's signing key and the public keys of the origins whose broadcasts it accepts.
///
/// # Examples
/// ```
/// use memberlist_plumtree::{OriginKeys, Plumtree, PlumtreeConfig};
///
/// // In a real cluster each secret comes from the node's own key store.
/// let a_keys = OriginKeys::new(1u64, [1; 32]);
/// let b_keys = OriginKeys::new(2u64, [2; 32]);
/// let a = OriginKeys::new(1u64, [1; 32]).with_origin(2, b_keys.public_key())?;
/// let core = Plumtree::new(1u64, PlumtreeConfig::default())?.with_origin_keys(a)?;
/// # let _ = (core, a_keys);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct OriginKeys<I> {
    local: I,
    /// The topic whose payloads these keys sign and check.
    topic: TopicId,
    secret: SigningKey,
    /// Per origin, the keys its signatures may be made with, newest last (at most
    /// [`MAX_KEYS_PER_ORIGIN`]): more than one while the origin rotates its key.
    origins: BTreeMap<I, Vec<VerifyingKey>>,
}

/// A public key that is not a valid Ed25519 point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid Ed25519 public key")]
pub struct InvalidKey;

/// Why a received payload's signature did not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SignatureError {
    #[error("unsigned payload")]
    Missing,
    #[error("no key for its origin")]
    UnknownOrigin,
    #[error("signature does not match")]
    Mismatch,
}

impl<I: NodeId> OriginKeys<I> {
    /// The keys of node `local`, signing with the Ed25519 secret key `secret` (32 bytes, from
    /// the node's key store). It accepts its own broadcasts; add every other origin with
    /// [`with_origin`](Self::with_origin).
    pub fn new(local: I, secret: [u8; 32]) -> Self {
        let secret = SigningKey::from_bytes(&secret);
        let origins = BTreeMap::from([(local.clone(), vec![secret.verifying_key()])]);
        Self {
            local,
            topic: TopicId::DEFAULT,
            secret,
            origins,
        }
    }

    /// This node's public key, for the others' [`with_origin`](Self::with_origin).
    pub fn public_key(&self) -> [u8; 32] {
        self.secret.verifying_key().to_bytes()
    }

    /// Accepts broadcasts from `origin` signed by the secret of `public_key`, besides those
    /// signed with the keys already given for it: to rotate a key, give every node the new
    /// public key as well, then switch the origin to the new secret, then drop the old key at
    /// the nodes' next restart (docs/security.md, "Rotating keys"). At most
    /// [`MAX_KEYS_PER_ORIGIN`] keys are kept per origin; another drops the oldest.
    ///
    /// # Errors
    /// [`InvalidKey`] when the bytes are not a public key.
    pub fn with_origin(mut self, origin: I, public_key: [u8; 32]) -> Result<Self, InvalidKey> {
        let key = VerifyingKey::from_bytes(&public_key).map_err(|_| InvalidKey)?;
        let keys = self.origins.entry(origin).or_default();
        if !keys.contains(&key) {
            if keys.len() == MAX_KEYS_PER_ORIGIN {
                keys.remove(0);
            }
            keys.push(key);
        }
        Ok(self)
    }

    /// The same keys, signing and checking the payloads of `topic` (a node's topics each get
    /// them so).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn for_topic(&self, topic: TopicId) -> Self {
        Self {
            topic,
            ..self.clone()
        }
    }

    pub(crate) fn local(&self) -> &I {
        &self.local
    }

    /// Signs a broadcast of this node.
    pub(crate) fn sign(&self, id: &MessageId, encoding: Encoding, payload: &Bytes) -> Signature {
        let digest = digest(self.topic, &self.local, id, encoding, payload);
        Signature::from_bytes(self.secret.sign(&digest).to_bytes())
    }

    /// Checks a received payload's signature against its origin's key.
    pub(crate) fn verify(
        &self,
        origin: &I,
        id: &MessageId,
        encoding: Encoding,
        payload: &Bytes,
        signature: Option<&Signature>,
    ) -> Result<(), SignatureError> {
        let signature = signature.ok_or(SignatureError::Missing)?;
        let keys = self
            .origins
            .get(origin)
            .ok_or(SignatureError::UnknownOrigin)?;
        let signature = ed25519_dalek::Signature::from_bytes(signature.as_bytes());
        let digest = digest(self.topic, origin, id, encoding, payload);
        // Newest first: after a rotation, most payloads are signed with the new key.
        keys.iter()
            .rev()
            .any(|key| key.verify_strict(&digest, &signature).is_ok())
            .then_some(())
            .ok_or(SignatureError::Mismatch)
    }
}

impl<I: std::fmt::Debug> std::fmt::Debug for OriginKeys<I> {
    /// Names the origins, never the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginKeys")
            .field("local", &self.local)
            .field("topic", &self.topic)
            .field("origins", &self.origins.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn digest<I: NodeId>(
    topic: TopicId,
    origin: &I,
    id: &MessageId,
    encoding: Encoding,
    payload: &Bytes,
) -> [u8; 64] {
    let mut origin_bytes = BytesMut::with_capacity(origin.encoded_len());
    origin.encode(&mut origin_bytes);
    let plain = match encoding {
        Encoding::Plain => [0; 5],
        Encoding::Lz4 { len } => {
            let [a, b, c, d] = len.to_be_bytes();
            [1, a, b, c, d]
        }
    };
    let domain = if topic.is_default() {
        Sha512::new().chain_update(DOMAIN)
    } else {
        Sha512::new()
            .chain_update(TOPIC_DOMAIN)
            .chain_update(topic.get().to_be_bytes())
    };
    domain
        .chain_update((origin_bytes.len() as u32).to_be_bytes())
        .chain_update(&origin_bytes)
        .chain_update(id.to_bytes())
        .chain_update(plain)
        .chain_update(payload)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_for_exactly_what_was_signed() {
        let a = OriginKeys::new(1u64, [1; 32]);
        let b = OriginKeys::new(2u64, [2; 32])
            .with_origin(1, a.public_key())
            .unwrap();
        let id = MessageId::new(1, 0, 7);
        let payload = Bytes::from_static(b"hello");
        let signature = a.sign(&id, Encoding::Plain, &payload);
        let check = |origin: u64, id: MessageId, encoding, payload: &[u8], sig: Option<&_>| {
            b.verify(
                &origin,
                &id,
                encoding,
                &Bytes::copy_from_slice(payload),
                sig,
            )
        };
        assert_eq!(
            check(1, id, Encoding::Plain, b"hello", Some(&signature)),
            Ok(())
        );
        let mismatch = Err(SignatureError::Mismatch);
        assert_eq!(
            check(1, id, Encoding::Plain, b"hellO", Some(&signature)),
            mismatch
        );
        let other_id = MessageId::new(1, 0, 8);
        assert_eq!(
            check(1, other_id, Encoding::Plain, b"hello", Some(&signature)),
            mismatch
        );
        let lz4 = Encoding::Lz4 { len: 5 };
        assert_eq!(check(1, id, lz4, b"hello", Some(&signature)), mismatch);
        assert_eq!(
            check(2, id, Encoding::Plain, b"hello", Some(&signature)),
            mismatch,
            "signed by 1, claimed by 2"
        );
        assert_eq!(
            check(3, id, Encoding::Plain, b"hello", Some(&signature)),
            Err(SignatureError::UnknownOrigin)
        );
        assert_eq!(
            check(1, id, Encoding::Plain, b"hello", None),
            Err(SignatureError::Missing)
        );
        let mut not_a_point = [0; 32]; // y = 2: no point of the curve has it
        not_a_point[0] = 2;
        assert_eq!(
            OriginKeys::new(1u64, [1; 32])
                .with_origin(2, not_a_point)
                .map(|_| ()),
            Err(InvalidKey)
        );
        assert!(
            !format!("{a:?}").contains("secret"),
            "the secret is not printed"
        );
    }

    #[test]
    fn a_signature_holds_in_its_own_topic_only() {
        let a = OriginKeys::new(1u64, [1; 32]);
        let b = OriginKeys::new(2u64, [2; 32])
            .with_origin(1, a.public_key())
            .unwrap();
        let (chat, alerts) = (TopicId::new(5), TopicId::new(6));
        let id = MessageId::new(1, 0, 7);
        let payload = Bytes::from_static(b"hello");
        let signed = a.for_topic(chat).sign(&id, Encoding::Plain, &payload);
        let check =
            |keys: &OriginKeys<u64>| keys.verify(&1, &id, Encoding::Plain, &payload, Some(&signed));
        assert_eq!(check(&b.for_topic(chat)), Ok(()));
        assert_eq!(check(&b.for_topic(alerts)), Err(SignatureError::Mismatch));
        assert_eq!(check(&b), Err(SignatureError::Mismatch));
        // The default topic's signatures are what they were before topics existed.
        let plain = a.sign(&id, Encoding::Plain, &payload);
        assert_eq!(
            b.verify(&1, &id, Encoding::Plain, &payload, Some(&plain)),
            Ok(())
        );
        assert_eq!(
            b.for_topic(chat)
                .verify(&1, &id, Encoding::Plain, &payload, Some(&plain)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_rotated_key_is_accepted_beside_the_old_one_within_the_bound() {
        let id = MessageId::new(1, 0, 7);
        let payload = Bytes::from_static(b"hello");
        let old = OriginKeys::new(1u64, [1; 32]);
        let new = OriginKeys::new(1u64, [9; 32]);
        let by_old = old.sign(&id, Encoding::Plain, &payload);
        let by_new = new.sign(&id, Encoding::Plain, &payload);
        let check = |keys: &OriginKeys<u64>, signature: &Signature| {
            keys.verify(&1, &id, Encoding::Plain, &payload, Some(signature))
        };
        let before = OriginKeys::new(2u64, [2; 32])
            .with_origin(1, old.public_key())
            .unwrap();
        assert_eq!(check(&before, &by_new), Err(SignatureError::Mismatch));
        // During the rotation both hold.
        let during = before.clone().with_origin(1, new.public_key()).unwrap();
        assert_eq!(check(&during, &by_old), Ok(()));
        assert_eq!(check(&during, &by_new), Ok(()));
        // The same key again takes no room; more keys than the bound drop the oldest.
        let during = during.with_origin(1, new.public_key()).unwrap();
        let crowded = (10..10 + MAX_KEYS_PER_ORIGIN as u8 - 2).fold(during, |keys, seed| {
            let public = OriginKeys::new(1u64, [seed; 32]).public_key();
            keys.with_origin(1, public).unwrap()
        });
        assert_eq!(check(&crowded, &by_old), Ok(()));
        let full = crowded
            .with_origin(1, OriginKeys::new(1u64, [99; 32]).public_key())
            .unwrap();
        assert_eq!(check(&full, &by_old), Err(SignatureError::Mismatch));
        assert_eq!(check(&full, &by_new), Ok(()));
    }
}
