//! The [`NodeId`] trait: what a type needs to name a node on the wire.

use std::fmt::Debug;
use std::hash::Hash;
use std::net::SocketAddr;

use bytes::{BufMut, BytesMut};

use crate::message::DecodeError;

/// Longest encoded node id accepted from the network, in bytes.
///
/// Ids travel in every envelope, so a peer must not be able to make us allocate a large one.
pub const MAX_NODE_ID_LEN: usize = 255;

/// A node's identity, as used by the protocol core and carried in every envelope.
///
/// Ids are ordered (`Ord`) so that peer sets iterate in a fixed order: with a fixed RNG seed the
/// whole protocol is deterministic. Implementations exist for `u32`, `u64`, `u128`, `String` and
/// `SocketAddr`.
///
/// # Implementer notes
/// `decode` reads from untrusted bytes: it must check lengths before reading, return
/// [`DecodeError`] instead of panicking, and never accept an encoding longer than
/// [`MAX_NODE_ID_LEN`]. `encode` followed by `decode` must give back an equal id, and
/// `encoded_len` must equal the number of bytes `encode` writes.
pub trait NodeId: Clone + Ord + Hash + Debug + Send + Sync + 'static {
    /// Number of bytes [`encode`](Self::encode) appends.
    fn encoded_len(&self) -> usize;

    /// Appends the wire form of this id.
    fn encode(&self, buf: &mut BytesMut);

    /// Reads an id from the front of `input`, advancing it past the id.
    ///
    /// # Errors
    /// [`DecodeError`] when the bytes are truncated or not a valid id.
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError>;

    /// A 64-bit tag for this id, placed in every [`MessageId`](crate::MessageId) it originates.
    ///
    /// The default is the 64-bit FNV-1a hash of the encoded id, which is stable across builds and
    /// platforms; integer ids override it with their own value.
    fn tag(&self) -> u64 {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut buf);
        fnv1a(&buf)
    }
}

/// 64-bit FNV-1a: tiny, stable by specification, and good enough to tell node ids apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn take<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], DecodeError> {
    let (head, rest) = input
        .split_first_chunk::<N>()
        .ok_or(DecodeError::Truncated)?;
    *input = rest;
    Ok(*head)
}

impl NodeId for u32 {
    fn encoded_len(&self) -> usize {
        4
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32(*self);
    }
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        take::<4>(input).map(u32::from_be_bytes)
    }
    fn tag(&self) -> u64 {
        u64::from(*self)
    }
}

impl NodeId for u64 {
    fn encoded_len(&self) -> usize {
        8
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u64(*self);
    }
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        take::<8>(input).map(u64::from_be_bytes)
    }
    fn tag(&self) -> u64 {
        *self
    }
}

impl NodeId for u128 {
    fn encoded_len(&self) -> usize {
        16
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u128(*self);
    }
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        take::<16>(input).map(u128::from_be_bytes)
    }
}

impl NodeId for String {
    fn encoded_len(&self) -> usize {
        1 + self.len()
    }
    /// One length byte, then the UTF-8 bytes.
    ///
    /// # Panics
    /// If the string is longer than [`MAX_NODE_ID_LEN`] bytes: such an id could never be decoded,
    /// so it is a programming error to use one.
    fn encode(&self, buf: &mut BytesMut) {
        let len = u8::try_from(self.len()).expect("node id longer than MAX_NODE_ID_LEN");
        buf.put_u8(len);
        buf.put_slice(self.as_bytes());
    }
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let [len] = take::<1>(input)?;
        let len = usize::from(len);
        if input.len() < len {
            return Err(DecodeError::Truncated);
        }
        let (text, rest) = input.split_at(len);
        let id = std::str::from_utf8(text).map_err(|_| DecodeError::InvalidNodeId)?;
        *input = rest;
        Ok(id.to_owned())
    }
}

impl NodeId for SocketAddr {
    fn encoded_len(&self) -> usize {
        match self {
            SocketAddr::V4(_) => 1 + 4 + 2,
            SocketAddr::V6(_) => 1 + 16 + 2,
        }
    }
    fn encode(&self, buf: &mut BytesMut) {
        match self {
            SocketAddr::V4(a) => {
                buf.put_u8(4);
                buf.put_slice(&a.ip().octets());
            }
            SocketAddr::V6(a) => {
                buf.put_u8(6);
                buf.put_slice(&a.ip().octets());
            }
        }
        buf.put_u16(self.port());
    }
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let ip: std::net::IpAddr = match take::<1>(input)? {
            [4] => take::<4>(input)?.into(),
            [6] => take::<16>(input)?.into(),
            _ => return Err(DecodeError::InvalidNodeId),
        };
        let port = take::<2>(input).map(u16::from_be_bytes)?;
        Ok(SocketAddr::new(ip, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<I: NodeId>(id: I) {
        let mut buf = BytesMut::new();
        id.encode(&mut buf);
        assert_eq!(buf.len(), id.encoded_len());
        let mut input = &buf[..];
        assert_eq!(I::decode(&mut input).unwrap(), id);
        assert!(input.is_empty());
    }

    #[test]
    fn ids_round_trip() {
        round_trip(7u32);
        round_trip(u64::MAX);
        round_trip(1u128 << 100);
        round_trip(String::from("node-a"));
        round_trip(String::new());
        round_trip("127.0.0.1:7946".parse::<SocketAddr>().unwrap());
        round_trip("[::1]:7946".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn truncated_ids_are_errors() {
        assert_eq!(
            u64::decode(&mut &[1, 2, 3][..]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            String::decode(&mut &[5, b'a'][..]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            String::decode(&mut &[1, 0xff][..]),
            Err(DecodeError::InvalidNodeId)
        );
        assert_eq!(
            SocketAddr::decode(&mut &[9][..]),
            Err(DecodeError::InvalidNodeId)
        );
    }

    #[test]
    fn tags_are_stable() {
        assert_eq!(42u64.tag(), 42);
        // FNV-1a of [0x00] after the length byte: fixed by the specification, not by this build.
        assert_eq!(String::new().tag(), 0xaf63_bd4c_8601_b7df);
    }
}
