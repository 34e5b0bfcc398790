//! [`NodeMeta`]: what a node publishes in its memberlist metadata.
//!
//! memberlist carries at most [`META_MAX_SIZE`] (512) bytes of metadata per node and panics on
//! more, so the encoded form is small and its length is checked before memberlist sees it.
//!
//! Layout: a marker byte, a version byte, a flags byte, then (if flag bit 0) the Plumtree
//! transport's socket address, then (if flag bit 1) the topics the node joined (a count byte
//! and that many varint topic ids), then the application's own metadata to the end. A node of
//! an earlier release, which knows no topics, reads the metadata of a node in a topic as
//! malformed and does not peer with it: upgrade every node before joining topics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};

use crate::TopicId;
use crate::message::{put_varint, read_varint, varint_len};

/// Largest metadata memberlist accepts for one node, in bytes.
pub const META_MAX_SIZE: usize = 512;

/// First byte of our metadata: tells Plumtree nodes from other members of the same memberlist.
const MARKER: u8 = 0xB7;
const VERSION: u8 = 1;
const HAS_ADDR: u8 = 1;
const HAS_TOPICS: u8 = 2;

/// Why a member's metadata is not ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// The metadata does not start with our marker: the member does not run Plumtree (or an
    /// incompatible version of it).
    #[error("not Plumtree metadata")]
    NotPlumtree,
    /// Marked as ours but malformed.
    #[error("malformed Plumtree metadata")]
    Malformed,
}

/// A node's published metadata: where its Plumtree transport listens (if it is not the
/// memberlist address) and the application's own bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeMeta {
    /// The address Plumtree frames are sent to, for transports that do not ride on memberlist.
    /// An IPv6 address travels without its flow label and scope id, which mean nothing on
    /// another host.
    pub transport_addr: Option<SocketAddr>,
    /// The topics the node joined (see `MemberlistStack::join_topic`); at most 255 are
    /// published, never the default topic.
    pub topics: Vec<TopicId>,
    /// The application's metadata, from the wrapped memberlist delegate's `node_meta`.
    pub app: Bytes,
}

impl NodeMeta {
    /// Bytes taken by everything but [`app`](Self::app).
    pub(crate) fn header_len(transport_addr: Option<SocketAddr>, topics: &[TopicId]) -> usize {
        let addr = transport_addr.map_or(0, |addr| match addr {
            SocketAddr::V4(_) => 1 + 4 + 2,
            SocketAddr::V6(_) => 1 + 16 + 2,
        });
        let topics = if topics.is_empty() {
            0
        } else {
            1 + topics.iter().map(|t| varint_len(t.get())).sum::<usize>()
        };
        3 + addr + topics
    }

    /// The encoded form; its length is `header_len + app.len()`.
    pub fn encode(&self) -> Bytes {
        // The default topic is never published (every node is in it), and a count byte holds
        // at most 255.
        let topics: Vec<TopicId> = self
            .topics
            .iter()
            .copied()
            .filter(|topic| !topic.is_default())
            .take(usize::from(u8::MAX))
            .collect();
        let topics = &topics[..];
        let mut buf =
            BytesMut::with_capacity(Self::header_len(self.transport_addr, topics) + self.app.len());
        buf.put_u8(MARKER);
        buf.put_u8(VERSION);
        let mut flags = 0;
        if self.transport_addr.is_some() {
            flags |= HAS_ADDR;
        }
        if !topics.is_empty() {
            flags |= HAS_TOPICS;
        }
        buf.put_u8(flags);
        if let Some(addr) = self.transport_addr {
            match addr.ip() {
                IpAddr::V4(ip) => {
                    buf.put_u8(4);
                    buf.put_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    buf.put_u8(6);
                    buf.put_slice(&ip.octets());
                }
            }
            buf.put_u16(addr.port());
        }
        if !topics.is_empty() {
            buf.put_u8(topics.len() as u8);
            for topic in topics {
                put_varint(&mut buf, topic.get());
            }
        }
        buf.put_slice(&self.app);
        buf.freeze()
    }

    /// Reads metadata published by another node. Never panics.
    ///
    /// # Errors
    /// [`MetaError`] when the bytes are not (well-formed) Plumtree metadata.
    pub fn decode(bytes: &[u8]) -> Result<Self, MetaError> {
        let [marker, version, flags, rest @ ..] = bytes else {
            return Err(MetaError::NotPlumtree);
        };
        if *marker != MARKER || *version != VERSION {
            return Err(MetaError::NotPlumtree);
        }
        if flags & !(HAS_ADDR | HAS_TOPICS) != 0 {
            return Err(MetaError::Malformed);
        }
        let (transport_addr, rest) = if flags & HAS_ADDR == 0 {
            (None, rest)
        } else {
            let (ip, rest): (IpAddr, &[u8]) = match rest {
                [4, rest @ ..] => match rest.split_first_chunk::<4>() {
                    Some((ip, rest)) => (Ipv4Addr::from(*ip).into(), rest),
                    None => return Err(MetaError::Malformed),
                },
                [6, rest @ ..] => match rest.split_first_chunk::<16>() {
                    Some((ip, rest)) => (Ipv6Addr::from(*ip).into(), rest),
                    None => return Err(MetaError::Malformed),
                },
                _ => return Err(MetaError::Malformed),
            };
            let [hi, lo, app @ ..] = rest else {
                return Err(MetaError::Malformed);
            };
            (
                Some(SocketAddr::new(ip, u16::from_be_bytes([*hi, *lo]))),
                app,
            )
        };
        let (topics, app) = if flags & HAS_TOPICS == 0 {
            (Vec::new(), rest)
        } else {
            let Some((count, mut rest)) = rest.split_first() else {
                return Err(MetaError::Malformed);
            };
            // At most 255 ids, each at least a byte of the input: bounded by the input.
            let mut topics = Vec::with_capacity(usize::from(*count).min(rest.len()));
            for _ in 0..*count {
                match read_varint(&mut rest) {
                    Ok(id) if id != 0 => topics.push(TopicId::new(id)),
                    _ => return Err(MetaError::Malformed),
                }
            }
            (topics, rest)
        };
        Ok(Self {
            transport_addr,
            topics,
            app: Bytes::copy_from_slice(app),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_address() {
        for addr in [
            None,
            Some("127.0.0.1:7000".parse().unwrap()),
            Some("[::1]:9".parse().unwrap()),
        ] {
            for topics in [vec![], vec![TopicId::new(1), TopicId::named("chat")]] {
                let meta = NodeMeta {
                    transport_addr: addr,
                    topics: topics.clone(),
                    app: Bytes::from_static(b"zone=a"),
                };
                let bytes = meta.encode();
                assert_eq!(bytes.len(), NodeMeta::header_len(addr, &topics) + 6);
                assert_eq!(NodeMeta::decode(&bytes), Ok(meta));
            }
        }
    }

    #[test]
    fn rejects_foreign_and_truncated_metadata() {
        assert_eq!(NodeMeta::decode(b""), Err(MetaError::NotPlumtree));
        assert_eq!(NodeMeta::decode(b"zone=a"), Err(MetaError::NotPlumtree));
        let full = NodeMeta {
            transport_addr: Some("[::1]:9".parse().unwrap()),
            topics: vec![TopicId::new(300)],
            app: Bytes::new(),
        }
        .encode();
        for len in 3..full.len() {
            assert_eq!(
                NodeMeta::decode(&full[..len]),
                Err(MetaError::Malformed),
                "{len}"
            );
        }
        assert_eq!(
            NodeMeta::decode(&[MARKER, VERSION, 0x80]),
            Err(MetaError::Malformed)
        );
        // A zero topic (the default one is never published) and a count past the end.
        assert_eq!(
            NodeMeta::decode(&[MARKER, VERSION, HAS_TOPICS, 1, 0]),
            Err(MetaError::Malformed)
        );
        assert_eq!(
            NodeMeta::decode(&[MARKER, VERSION, HAS_TOPICS, 3, 1, 2]),
            Err(MetaError::Malformed)
        );
    }
}
