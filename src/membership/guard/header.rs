//! memberlist's stream framing, read far enough to know where a message ends: the header of each
//! kind of message (memberlist-proto 0.3), parsed from the bytes received so far.
//!
//! A stream message is an optional label prefix followed by one message: plain (a tag and a
//! varint length), compound, checksummed, compressed or encrypted (a tag, an algorithm and fixed
//! big-endian lengths). The header alone gives the message's total length, so the guard can
//! refuse a length claim before memberlist allocates it, and can tell where the next message
//! starts.

/// Longest header: a label prefix (tag, length, 255 bytes of label) and a compressed header.
pub(super) const MAX_HEADER: usize = 2 + 255 + COMPRESSED;

const COMPOUND_TAG: u8 = 1;
const LABEL_TAG: u8 = 12;
const CHECKSUM_TAG: u8 = 13;
const COMPRESSED_TAG: u8 = 14;
const ENCRYPTED_TAG: u8 = 15;

/// Tag, algorithm, 4-byte length.
const FIXED: usize = 6;
/// Tag, 2-byte algorithm, 4-byte uncompressed length, 4-byte compressed length.
const COMPRESSED: usize = 11;
/// AES-GCM nonce and tag sizes memberlist uses.
const NONCE: u64 = 12;
const AEAD_TAG: u64 = 16;
const BLOCK: u64 = 16;

/// What the bytes received so far say about the message they start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Header {
    /// The header is not complete: at least this many bytes are needed in all.
    Incomplete(usize),
    /// The header is the first `len` bytes; the message, header included, is `total` bytes,
    /// and decoding it will allocate `claimed` bytes at most (a compressed message also
    /// allocates its stated uncompressed size).
    Complete {
        len: usize,
        total: u64,
        claimed: u64,
    },
}

/// A header memberlist would refuse anyway, refused before anything is read after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum HeaderError {
    #[error("unknown message tag {0}")]
    UnknownTag(u8),
    #[error("unknown algorithm {algorithm} for message tag {tag}")]
    UnknownAlgorithm { tag: u8, algorithm: u8 },
    #[error("a label inside a labeled message")]
    DoubleLabel,
    #[error("a length varint longer than 32 bits")]
    BadVarint,
}

/// Parses the header at the start of `bytes`.
pub(crate) fn parse(bytes: &[u8]) -> Result<Header, HeaderError> {
    let Some(&first) = bytes.first() else {
        return Ok(Header::Incomplete(1));
    };
    let mut start = 0;
    if first == LABEL_TAG {
        let Some(&label) = bytes.get(1) else {
            return Ok(Header::Incomplete(2));
        };
        start = 2 + usize::from(label);
    }
    let Some(&tag) = bytes.get(start) else {
        return Ok(Header::Incomplete(start + 1));
    };
    let rest = &bytes[start..];
    let body = match tag {
        LABEL_TAG => return Err(HeaderError::DoubleLabel),
        COMPOUND_TAG | CHECKSUM_TAG | ENCRYPTED_TAG => {
            let Some(fixed) = rest.first_chunk::<FIXED>() else {
                return Ok(Header::Incomplete(start + FIXED));
            };
            let len = u64::from(u32::from_be_bytes([fixed[2], fixed[3], fixed[4], fixed[5]]));
            let extra = match (tag, fixed[1]) {
                (COMPOUND_TAG, _) => 0,
                // crc32, xxhash32, murmur3: 4 bytes; xxhash64, xxhash3: 8.
                (CHECKSUM_TAG, 1 | 2 | 5) => 4,
                (CHECKSUM_TAG, 3 | 4) => 8,
                // AES-GCM without padding, and with PKCS#7 padding to whole blocks.
                (ENCRYPTED_TAG, 1) => NONCE + AEAD_TAG,
                (ENCRYPTED_TAG, 2) => NONCE + (BLOCK - len % BLOCK) + AEAD_TAG,
                (tag, algorithm) => return Err(HeaderError::UnknownAlgorithm { tag, algorithm }),
            };
            (FIXED, len + extra, 0)
        }
        COMPRESSED_TAG => {
            let Some(fixed) = rest.first_chunk::<COMPRESSED>() else {
                return Ok(Header::Incomplete(start + COMPRESSED));
            };
            let uncompressed = u32::from_be_bytes([fixed[3], fixed[4], fixed[5], fixed[6]]);
            let compressed = u32::from_be_bytes([fixed[7], fixed[8], fixed[9], fixed[10]]);
            (COMPRESSED, u64::from(compressed), u64::from(uncompressed))
        }
        // Plain messages: ping, indirect ping, ack, suspect, alive, dead, push-pull, user
        // data, nack, error response.
        2..=11 => match varint(&rest[1..]) {
            Varint::Value(len, n) => (1 + n, u64::from(len), 0),
            Varint::Short(n) => return Ok(Header::Incomplete(start + 1 + n)),
            Varint::Overflow => return Err(HeaderError::BadVarint),
        },
        tag => return Err(HeaderError::UnknownTag(tag)),
    };
    let (header, body, inflated) = body;
    let len = start + header;
    let total = len as u64 + body;
    Ok(Header::Complete {
        len,
        total,
        claimed: total + inflated,
    })
}

enum Varint {
    /// The value and the bytes it took.
    Value(u32, usize),
    /// Incomplete: this many bytes are needed.
    Short(usize),
    Overflow,
}

/// An unsigned LEB128 value of at most 32 bits (memberlist's length prefix).
fn varint(bytes: &[u8]) -> Varint {
    let mut value: u64 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return match u32::try_from(value) {
                Ok(value) => Varint::Value(value, i + 1),
                Err(_) => Varint::Overflow,
            };
        }
    }
    if bytes.len() >= 5 {
        Varint::Overflow
    } else {
        Varint::Short(bytes.len() + 1)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use memberlist::proto::{EncryptionAlgorithm, Label, Message, ProtoEncoder, SecretKey};

    use super::*;

    /// The framed bytes memberlist writes for one user message.
    fn framed(
        data: usize,
        label: Option<&str>,
        key: Option<(EncryptionAlgorithm, SecretKey)>,
    ) -> Vec<u8> {
        let messages: [Message<u64, std::net::SocketAddr>; 1] =
            [Message::UserData(Bytes::from(vec![7u8; data]))];
        let mut encoder = ProtoEncoder::new(usize::MAX).with_messages(&messages[..]);
        if let Some(label) = label {
            encoder = encoder.with_label(Label::try_from(label).unwrap());
        }
        if let Some((algorithm, key)) = key {
            encoder = encoder.with_encryption(algorithm, key);
        }
        let payloads: Vec<_> = encoder.encode().collect::<Result<_, _>>().unwrap();
        assert_eq!(payloads.len(), 1);
        payloads[0].as_slice().to_vec()
    }

    /// Feeds `bytes` in one at a time: incomplete until the header is, then the whole length.
    fn check(bytes: &[u8]) {
        let mut have = 0;
        loop {
            match parse(&bytes[..have]).unwrap() {
                Header::Incomplete(need) => {
                    assert!(need > have, "asks for more than it has");
                    assert!(need <= bytes.len(), "asks past the message");
                    have = need;
                }
                Header::Complete { len, total, .. } => {
                    assert_eq!(len, have, "the header is exactly what was asked for");
                    assert_eq!(total, bytes.len() as u64, "the message's length");
                    return;
                }
            }
        }
    }

    #[test]
    fn every_kind_memberlist_writes_is_measured_exactly() {
        for size in [0, 1, 100, 127, 128, 300, 16_384, 70_000] {
            check(&framed(size, None, None));
            check(&framed(size, Some("cluster-a"), None));
            let plain = EncryptionAlgorithm::NoPadding;
            let padded = EncryptionAlgorithm::Pkcs7;
            check(&framed(
                size,
                None,
                Some((plain, SecretKey::Aes256([3; 32]))),
            ));
            check(&framed(
                size,
                None,
                Some((padded, SecretKey::Aes192([4; 24]))),
            ));
            check(&framed(
                size,
                Some("b"),
                Some((padded, SecretKey::Aes128([9; 16]))),
            ));
        }
    }

    #[test]
    fn fixed_headers_and_length_claims() {
        // A compound header claiming 1 GiB.
        let compound = [1, 2, 0x40, 0, 0, 0];
        assert_eq!(
            parse(&compound),
            Ok(Header::Complete {
                len: 6,
                total: 6 + (1 << 30),
                claimed: 6 + (1 << 30)
            })
        );
        // A compressed message claims its uncompressed size too.
        let compressed = [14, 0, 1, 0, 0, 1, 0, 0, 0, 0, 10];
        assert_eq!(
            parse(&compressed),
            Ok(Header::Complete {
                len: 11,
                total: 21,
                claimed: 21 + 256
            })
        );
        // PKCS#7 pads to whole blocks.
        assert!(matches!(
            parse(&[15, 2, 0, 0, 0, 20]),
            Ok(Header::Complete { total: 66, .. }) // 6 + 12 nonce + 20 + 12 padding + 16 tag
        ));
        assert_eq!(
            parse(&[13, 9, 0, 0, 0, 0]),
            Err(HeaderError::UnknownAlgorithm {
                tag: 13,
                algorithm: 9
            })
        );
        assert_eq!(parse(&[12, 0, 12]), Err(HeaderError::DoubleLabel));
        assert_eq!(parse(&[0]), Err(HeaderError::UnknownTag(0)));
        assert_eq!(parse(&[200]), Err(HeaderError::UnknownTag(200)));
    }

    #[test]
    fn varint_lengths() {
        assert_eq!(parse(&[9]), Ok(Header::Incomplete(2)));
        assert_eq!(parse(&[9, 0x80]), Ok(Header::Incomplete(3)));
        assert_eq!(
            parse(&[9, 0x80, 0x80, 0x80, 0x80, 0x04]),
            Ok(Header::Complete {
                len: 6,
                total: 6 + (1 << 30),
                claimed: 6 + (1 << 30)
            })
        );
        assert_eq!(
            parse(&[9, 0xff, 0xff, 0xff, 0xff, 0x10]),
            Err(HeaderError::BadVarint)
        );
        assert_eq!(
            parse(&[9, 0x80, 0x80, 0x80, 0x80, 0x80]),
            Err(HeaderError::BadVarint)
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_never_asks_for_less_than_it_has(
            tag in 0u8..17,
            rest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
        ) {
            let bytes = [&[tag][..], &rest].concat();
            match parse(&bytes) {
                Ok(Header::Incomplete(need)) => {
                    proptest::prop_assert!(need > bytes.len() && need <= MAX_HEADER);
                }
                Ok(Header::Complete { len, total, claimed }) => {
                    proptest::prop_assert!(len <= bytes.len());
                    proptest::prop_assert!(len as u64 <= total && total <= claimed);
                }
                Err(_) => {}
            }
        }
    }
}
