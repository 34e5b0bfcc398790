//! [`MessageId`]: the fixed-size name of one broadcast.

use std::fmt;

/// Size of a [`MessageId`] on the wire, in bytes.
pub const MESSAGE_ID_LEN: usize = 24;

/// Names one broadcast, cluster-wide, without coordination.
///
/// Three 64-bit parts: the origin's [`tag`](crate::NodeId::tag), the origin's *incarnation* (a
/// random number drawn when its [`Plumtree`](crate::Plumtree) is created, so a restarted node
/// never reuses the ids of its previous life) and a per-incarnation sequence number that starts at
/// 1 and grows by one per broadcast. Anti-entropy can therefore ask "what came after sequence `n`
/// of this origin".
///
/// Ids order by origin, then incarnation, then sequence.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MessageId {
    origin: u64,
    incarnation: u64,
    seq: u64,
}

impl MessageId {
    /// Builds an id from its parts.
    pub const fn new(origin: u64, incarnation: u64, seq: u64) -> Self {
        Self {
            origin,
            incarnation,
            seq,
        }
    }

    /// The origin node's tag (see [`NodeId::tag`](crate::NodeId::tag)).
    pub const fn origin(&self) -> u64 {
        self.origin
    }

    /// The origin's incarnation: random per start of a node.
    pub const fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Position of this broadcast among the origin's broadcasts in this incarnation, from 1.
    pub const fn seq(&self) -> u64 {
        self.seq
    }

    /// The id `k` broadcasts after this one from the same origin and incarnation, if its
    /// sequence number fits. Runs of consecutive ids (IHave runs on the wire, waiting
    /// announcements) are kept as a first id and a count.
    pub(crate) const fn after(&self, k: u64) -> Option<Self> {
        match self.seq.checked_add(k) {
            Some(seq) => Some(Self::new(self.origin, self.incarnation, seq)),
            None => None,
        }
    }

    /// The wire form: the three parts, big-endian.
    pub fn to_bytes(&self) -> [u8; MESSAGE_ID_LEN] {
        let mut out = [0; MESSAGE_ID_LEN];
        out[..8].copy_from_slice(&self.origin.to_be_bytes());
        out[8..16].copy_from_slice(&self.incarnation.to_be_bytes());
        out[16..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// Reads the wire form written by [`to_bytes`](Self::to_bytes). Every 24-byte value is valid.
    pub fn from_bytes(bytes: &[u8; MESSAGE_ID_LEN]) -> Self {
        let part = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        Self {
            origin: part(0),
            incarnation: part(8),
            seq: part(16),
        }
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `origin-incarnation-seq`, origin and incarnation in hex: `000000000000002a-9f3c01d2e4a5b6c7-17`.
impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:016x}-{:016x}-{}",
            self.origin, self.incarnation, self.seq
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_display() {
        let id = MessageId::new(42, 0x9f3c_01d2_e4a5_b6c7, 17);
        assert_eq!(MessageId::from_bytes(&id.to_bytes()), id);
        assert_eq!(id.to_string(), "000000000000002a-9f3c01d2e4a5b6c7-17");
        assert_eq!(std::mem::size_of::<MessageId>(), MESSAGE_ID_LEN);
    }
}
