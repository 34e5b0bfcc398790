//! [`TopicId`]: which broadcast group a frame belongs to, and the prefix that carries it.
//!
//! ```text
//! frame       := envelope                                  (the default topic)
//!              | 8:u8  topic:varint (non-zero)  envelope   (any other topic)
//! ```
//!
//! A frame of the default topic is an envelope exactly as before topics existed, so a cluster
//! that uses none interoperates with older releases. Any other topic's frame puts the topic in
//! front of an envelope of its own: the receiving node routes the frame by its first bytes,
//! strips them, and hands the envelope to that topic's protocol core, which never sees topics.
//! A node of an older release refuses a topic frame as an unsupported version.

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::DecodeError;
use super::{Frame, varint};

/// The version byte that marks a topic frame.
pub(crate) const TOPIC_VERSION: u8 = 8;

/// Most bytes a topic prefix takes: the version byte and a 64-bit varint.
pub(crate) const MAX_PREFIX_LEN: usize = 1 + 10;

/// One independent broadcast group: its own tree among the members that joined it, its own
/// cache and its own deliveries.
///
/// [`TopicId::DEFAULT`] is the group every node is in (a node's own broadcasts); any other id
/// is a group nodes join and leave at run time. Ids are plain numbers; [`TopicId::named`] derives
/// one from a name, the same on every node and every release.
///
/// # Examples
/// ```
/// use memberlist_plumtree::TopicId;
///
/// let chat = TopicId::named("chat");
/// assert_eq!(chat, TopicId::named("chat"));
/// assert_ne!(chat, TopicId::DEFAULT);
/// assert_eq!(TopicId::new(7).get(), 7);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TopicId(u64);

impl TopicId {
    /// The group of a node's plain broadcasts, which every node is in.
    pub const DEFAULT: Self = Self(0);

    /// The topic numbered `id` (0 is [`DEFAULT`](Self::DEFAULT)).
    pub const fn new(id: u64) -> Self {
        Self(id)
    }

    /// A topic id derived from `name` (64-bit FNV-1a; never the default topic). Two names may
    /// share an id with a chance of about one in 2^64 per pair; use [`new`](Self::new) with
    /// ids you assign if that matters.
    pub const fn named(name: &str) -> Self {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let bytes = name.as_bytes();
        let mut hash = OFFSET;
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(PRIME);
            i += 1;
        }
        Self(if hash == 0 { 1 } else { hash })
    }

    /// Its number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Whether it is [`DEFAULT`](Self::DEFAULT).
    pub const fn is_default(self) -> bool {
        self.0 == 0
    }

    /// Bytes the prefix of this topic's frames takes (none for the default topic).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn prefix_len(self) -> usize {
        if self.is_default() {
            0
        } else {
            1 + varint::len(self.0)
        }
    }

    /// Appends the prefix of this topic's frames (nothing for the default topic).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn put_prefix(self, buf: &mut BytesMut) {
        if !self.is_default() {
            buf.put_u8(TOPIC_VERSION);
            varint::put(buf, self.0);
        }
    }
}

impl std::fmt::Display for TopicId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "topic {:#x}", self.0)
    }
}

impl Frame {
    /// The topic this frame belongs to, read from its first bytes.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] or [`DecodeError::InvalidVarint`] when a topic prefix is
    /// malformed (a zero topic in a prefix is invalid too: the default topic has none).
    pub fn topic(&self) -> Result<TopicId, DecodeError> {
        self.split_topic().map(|(topic, _)| topic)
    }

    /// The topic and the length of its prefix (0 for the default topic).
    pub(crate) fn split_topic(&self) -> Result<(TopicId, usize), DecodeError> {
        if self.get(0) != Some(TOPIC_VERSION) {
            return Ok((TopicId::DEFAULT, 0));
        }
        let mut head = [0u8; MAX_PREFIX_LEN];
        let mut len = 0;
        while len < MAX_PREFIX_LEN {
            match self.get(len) {
                Some(byte) => head[len] = byte,
                None => break,
            }
            len += 1;
        }
        let mut input = &head[1..len];
        let topic = varint::get(&mut input)?;
        if topic == 0 {
            return Err(DecodeError::InvalidVarint);
        }
        Ok((TopicId(topic), len - input.len()))
    }

    /// The frame without its first `len` bytes (a prefix [`split_topic`](Self::split_topic)
    /// measured), without copying unless the prefix spans both parts, which no encoder of this
    /// crate produces.
    #[cfg_attr(not(any(feature = "tokio", feature = "fuzzing")), allow(dead_code))]
    pub(crate) fn without_prefix(self, len: usize) -> Frame {
        if len == 0 {
            return self;
        }
        let urgent = self.is_urgent();
        let (head, payload) = if self.parts().0.len() >= len {
            self.into_parts()
        } else {
            (self.to_bytes(), Bytes::new())
        };
        Frame::from_parts(head.slice(len..), payload, urgent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Envelope, Message};

    /// The topic and the envelope behind its prefix, as routing takes them.
    fn strip(frame: Frame) -> Result<(TopicId, Frame), DecodeError> {
        let (topic, len) = frame.split_topic()?;
        Ok((topic, frame.without_prefix(len)))
    }

    fn prefixed(topic: TopicId) -> Frame {
        let mut buf = BytesMut::new();
        topic.put_prefix(&mut buf);
        Envelope {
            sender: 3u64,
            message: Message::Prune,
        }
        .encode(&mut buf);
        Frame::from(buf.freeze())
    }

    #[test]
    fn a_prefix_is_read_back_and_stripped_to_the_envelope() {
        for id in [1, 127, 128, u64::MAX] {
            let topic = TopicId::new(id);
            let frame = prefixed(topic);
            assert_eq!(
                frame.len(),
                topic.prefix_len() + prefixed(TopicId::DEFAULT).len()
            );
            assert_eq!(frame.topic(), Ok(topic));
            let (got, inner) = strip(frame).unwrap();
            assert_eq!(got, topic);
            assert_eq!(inner.to_bytes(), prefixed(TopicId::DEFAULT).to_bytes());
        }
    }

    #[test]
    fn default_topic_frames_have_no_prefix() {
        let frame = prefixed(TopicId::DEFAULT);
        assert_eq!(frame.get(0), Some(crate::message::codec::PLUMTREE_VERSION));
        assert_eq!(frame.topic(), Ok(TopicId::DEFAULT));
        assert_eq!(Frame::from(Bytes::new()).topic(), Ok(TopicId::DEFAULT));
    }

    #[test]
    fn malformed_prefixes_are_errors() {
        let cases: [&[u8]; 4] = [&[8], &[8, 0x80], &[8, 0], &[8, 0x80, 0]];
        for bytes in cases {
            let frame = Frame::from(Bytes::copy_from_slice(bytes));
            assert!(frame.topic().is_err(), "{bytes:?}");
        }
    }

    proptest::proptest! {
        /// Frames come from the network: reading and stripping any bytes' topic never panics,
        /// and a prefix that reads back is exactly what was stripped.
        #[test]
        fn any_bytes_read_as_a_topic_or_an_error(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..24),
            split in 0usize..24,
        ) {
            let bytes = Bytes::from(bytes);
            let split = split.min(bytes.len());
            let frame = Frame::from_parts(bytes.slice(..split), bytes.slice(split..), false);
            match strip(frame.clone()) {
                Ok((topic, inner)) => {
                    proptest::prop_assert_eq!(frame.topic(), Ok(topic));
                    proptest::prop_assert_eq!(inner.len() + topic.prefix_len(), bytes.len());
                    proptest::prop_assert_eq!(&inner.to_bytes()[..], &bytes[topic.prefix_len()..]);
                }
                Err(error) => proptest::prop_assert_eq!(frame.topic(), Err(error)),
            }
        }
    }

    #[test]
    fn named_topics_are_stable_and_never_default() {
        // FNV-1a 64 of "" is the offset basis; of "a" a published test vector.
        assert_eq!(TopicId::named("").get(), 0xcbf2_9ce4_8422_2325);
        assert_eq!(TopicId::named("a").get(), 0xaf63_dc4c_8601_ec8c);
        assert!(!TopicId::named("chat").is_default());
    }
}
