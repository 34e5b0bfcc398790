//! LEB128 variable-length integers: lengths, counts and hop counts are small, so most of them
//! take one byte on the wire.

use bytes::{BufMut, BytesMut};

use super::codec::DecodeError;

/// Appends `value` as an unsigned LEB128 varint (1 to 10 bytes).
pub(crate) fn put(buf: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// Number of bytes [`put`] writes for `value`.
pub(crate) fn len(value: u64) -> usize {
    // One byte per started group of 7 bits; zero still takes a byte.
    let bits = 64 - value.max(1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Reads a varint from the front of `input`, advancing it.
///
/// Rejects truncated input, values over 64 bits and overlong encodings (a trailing zero group),
/// because the encoder never produces them and accepting them would give one value many encodings.
pub(crate) fn get(input: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().enumerate().take(10) {
        let group = u64::from(byte & 0x7f);
        if i == 9 && byte > 1 {
            return Err(DecodeError::InvalidVarint);
        }
        value |= group << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Err(DecodeError::InvalidVarint);
            }
            *input = &input[i + 1..];
            return Ok(value);
        }
    }
    if input.len() < 10 {
        Err(DecodeError::Truncated)
    } else {
        Err(DecodeError::InvalidVarint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_edges() {
        for v in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut buf = BytesMut::new();
            put(&mut buf, v);
            assert_eq!(buf.len(), len(v), "len of {v}");
            let mut input = &buf[..];
            assert_eq!(get(&mut input).unwrap(), v);
            assert!(input.is_empty());
        }
    }

    #[test]
    fn rejects_overlong_truncated_and_oversized() {
        assert_eq!(get(&mut &[0x80, 0x00][..]), Err(DecodeError::InvalidVarint));
        assert_eq!(get(&mut &[0x80][..]), Err(DecodeError::Truncated));
        assert_eq!(get(&mut &[][..]), Err(DecodeError::Truncated));
        let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(get(&mut &too_big[..]), Err(DecodeError::InvalidVarint));
        let eleven = [0xff; 11];
        assert_eq!(get(&mut &eleven[..]), Err(DecodeError::InvalidVarint));
    }
}
