//! Payload compression: LZ4 blocks (the `lz4_flex` crate), chosen by measurement because every
//! node that delivers a payload decompresses it, and LZ4 does that several times faster than
//! zstd (docs/benchmarks.md, "Compression").
//!
//! A payload is compressed once, by its origin, and only when it is at least the configured
//! size and comes out smaller. Decompression never allocates more than the length the frame
//! declares, which the decoder has already held to `max_message_size`: a small frame that
//! claims a huge payload is refused before any memory is reserved for it.

use bytes::Bytes;

use super::types::{Encoding, Signature};

/// Why a payload could not be decoded for delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PayloadError {
    /// The payload is compressed and this build has no `compression` feature.
    #[cfg(not(feature = "compression"))]
    #[error("compressed payload, and this build cannot decompress")]
    Unsupported,
    /// It would be larger than the largest payload accepted.
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: u64, max: usize },
    /// The compressed bytes are not a block of the declared length.
    #[cfg(feature = "compression")]
    #[error("corrupt compressed payload")]
    Corrupt,
}

/// A payload as it travels (`wire`, in `encoding`) and as the application gets it (`plain`):
/// the core forwards and caches the first and delivers the second.
#[derive(Clone, Debug)]
pub(crate) struct Carried {
    pub(crate) wire: Bytes,
    pub(crate) encoding: Encoding,
    pub(crate) plain: Bytes,
    /// The origin's, if it signs.
    pub(crate) signature: Option<Signature>,
}

impl Carried {
    /// A payload broadcast here: compressed if it has at least `min_size` bytes (when set) and
    /// shrinks.
    pub(crate) fn broadcast(plain: Bytes, min_size: Option<usize>) -> Self {
        #[cfg(feature = "compression")]
        if let Some((wire, encoding)) = min_size.and_then(|min| compress(&plain, min)) {
            return Self {
                wire,
                encoding,
                plain,
                signature: None,
            };
        }
        #[cfg(not(feature = "compression"))]
        let _ = min_size; // the config refuses it without the feature
        Self {
            wire: plain.clone(),
            encoding: Encoding::Plain,
            plain,
            signature: None,
        }
    }

    /// A payload received as `wire` in `encoding`, decoded for delivery (see [`decompress`]).
    pub(crate) fn received(
        wire: Bytes,
        encoding: Encoding,
        signature: Option<Signature>,
        max: usize,
    ) -> Result<Self, PayloadError> {
        let plain = decompress(&wire, encoding, max)?;
        Ok(Self {
            wire,
            encoding,
            plain,
            signature,
        })
    }
}

/// `payload` compressed if it has at least `min_size` bytes and shrinks, else `None`.
#[cfg(feature = "compression")]
fn compress(payload: &Bytes, min_size: usize) -> Option<(Bytes, Encoding)> {
    let len = u32::try_from(payload.len()).ok()?;
    if payload.len() < min_size {
        return None;
    }
    let packed = lz4_flex::block::compress(payload);
    (packed.len() < payload.len()).then(|| (Bytes::from(packed), Encoding::Lz4 { len }))
}

/// The application's bytes of a payload that travelled as `encoding` says, refused above
/// `max` bytes before anything is allocated.
fn decompress(payload: &Bytes, encoding: Encoding, max: usize) -> Result<Bytes, PayloadError> {
    let len = match encoding {
        Encoding::Plain => payload.len() as u64,
        Encoding::Lz4 { len } => len.into(),
    };
    if len > max as u64 {
        return Err(PayloadError::TooLarge { len, max });
    }
    match encoding {
        Encoding::Plain => Ok(payload.clone()),
        #[cfg(feature = "compression")]
        Encoding::Lz4 { .. } => {
            let mut out = vec![0; len as usize];
            match lz4_flex::block::decompress_into(payload, &mut out) {
                Ok(written) if written == out.len() => Ok(Bytes::from(out)),
                _ => Err(PayloadError::Corrupt),
            }
        }
        #[cfg(not(feature = "compression"))]
        Encoding::Lz4 { .. } => Err(PayloadError::Unsupported),
    }
}

#[cfg(all(test, feature = "compression"))]
mod tests {
    use super::*;

    fn text(len: usize) -> Bytes {
        let line = b"{\"node\":\"node-7\",\"level\":\"info\",\"msg\":\"lease renewed\"}\n";
        line.iter().copied().cycle().take(len).collect()
    }

    #[test]
    fn text_shrinks_and_comes_back() {
        let payload = text(4096);
        let (packed, encoding) = compress(&payload, 256).expect("text shrinks");
        assert!(packed.len() < payload.len() / 4);
        assert_eq!(encoding, Encoding::Lz4 { len: 4096 });
        assert_eq!(decompress(&packed, encoding, 4096), Ok(payload));
    }

    #[test]
    fn short_or_incompressible_payloads_stay_as_they_are() {
        assert_eq!(compress(&text(255), 256), None, "under the threshold");
        let mut rng = fastrand::Rng::with_seed(1);
        let noise: Bytes = std::iter::repeat_with(|| rng.u8(..)).take(4096).collect();
        assert_eq!(compress(&noise, 256), None, "does not shrink");
        assert_eq!(decompress(&noise, Encoding::Plain, 4096), Ok(noise));
    }

    #[test]
    fn a_bomb_is_refused_before_any_allocation() {
        // 1 KiB that claims to become 1 GiB: refused by length, nothing reserved.
        let bomb = Bytes::from(vec![0x1f; 1024]);
        let claim = Encoding::Lz4 { len: 1 << 30 };
        assert_eq!(
            decompress(&bomb, claim, 64 * 1024),
            Err(PayloadError::TooLarge {
                len: 1 << 30,
                max: 64 * 1024
            })
        );
    }

    #[test]
    fn corrupt_or_short_blocks_are_errors() {
        let (packed, Encoding::Lz4 { len }) = compress(&text(1024), 256).expect("shrinks") else {
            unreachable!("compress returns Lz4")
        };
        let longer = Encoding::Lz4 { len: len + 1 };
        assert_eq!(
            decompress(&packed, longer, 4096),
            Err(PayloadError::Corrupt)
        );
        let cut = packed.slice(..packed.len() / 2);
        assert_eq!(
            decompress(&cut, Encoding::Lz4 { len }, 4096),
            Err(PayloadError::Corrupt)
        );
    }

    proptest::proptest! {
        #[test]
        fn decompressing_arbitrary_bytes_never_panics(
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            len in 0u32..8192,
        ) {
            let junk = Bytes::from(junk);
            match decompress(&junk, Encoding::Lz4 { len }, 4096) {
                Ok(plain) => proptest::prop_assert_eq!(plain.len(), len as usize),
                Err(PayloadError::TooLarge { .. }) => proptest::prop_assert!(len > 4096),
                Err(_) => {}
            }
        }
    }
}
