//! [`FrameReader`]: the frames of one received QUIC stream.
//!
//! ```text
//! stream := magic:3B (0xB7 'Q' 1)  lane:1B  frame*
//! frame  := len:u32 big-endian (1..=max_frame_size)  bytes:len
//! ```
//!
//! The reader works on any `AsyncRead`, so that the fuzz target drives the same code over a
//! byte slice that the transport drives over a quinn stream.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::link::STREAM_MAGIC;

/// Room for a frame before its bytes arrive: most frames fit, and a false length costs no more.
const INITIAL_CAPACITY: usize = 16 * 1024;

/// What a stream yields next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// One frame's bytes.
    Frame(Vec<u8>),
    /// The stream finished or was reset, or the connection closed.
    End,
    /// The stream does not begin with our header: not a Plumtree peer.
    BadHeader,
    /// A length of zero or above the limit, refused before anything is read into it.
    Oversize,
}

/// Reads the header, then one frame per [`next`](Self::next).
#[derive(Debug)]
pub(crate) struct FrameReader<R> {
    stream: R,
    max_frame_size: usize,
    header_read: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(stream: R, max_frame_size: usize) -> Self {
        Self {
            stream,
            max_frame_size,
            header_read: false,
        }
    }

    /// The next frame, or why there is none. After anything but a frame the stream is done.
    pub(crate) async fn next(&mut self) -> Read {
        if !self.header_read {
            let mut header = [0u8; 4];
            if self.stream.read_exact(&mut header).await.is_err() {
                return Read::End;
            }
            if header[..3] != STREAM_MAGIC {
                return Read::BadHeader;
            }
            self.header_read = true;
        }
        let mut len = [0u8; 4];
        if self.stream.read_exact(&mut len).await.is_err() {
            return Read::End;
        }
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > self.max_frame_size {
            return Read::Oversize;
        }
        // Grown as bytes arrive, not sized by the claim: a peer that announces a large frame
        // and sends nothing more makes us hold what it sent, not what it promised.
        let mut frame = Vec::with_capacity(len.min(INITIAL_CAPACITY));
        match (&mut self.stream)
            .take(len as u64)
            .read_to_end(&mut frame)
            .await
        {
            Ok(read) if read == len => Read::Frame(frame),
            _ => Read::End,
        }
    }
}

/// Reads every frame of `bytes` as a stream of them, for the fuzz target and tests: the frames
/// read, and how reading ended. A byte slice never makes a read wait, so one poll finishes it.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn read_all(bytes: &[u8], max_frame_size: usize) -> (Vec<Vec<u8>>, Read) {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    let mut reader = FrameReader::new(bytes, max_frame_size);
    let mut frames = Vec::new();
    loop {
        let mut next = std::pin::pin!(reader.next());
        let Poll::Ready(read) = next.as_mut().poll(&mut Context::from_waker(Waker::noop())) else {
            unreachable!("reading a slice never waits");
        };
        match read {
            Read::Frame(frame) => frames.push(frame),
            end => return (frames, end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_in_order_and_bad_input_ends_the_stream() {
        let stream = [
            &STREAM_MAGIC[..],
            &[1],
            &2u32.to_be_bytes(),
            b"ab",
            &1u32.to_be_bytes(),
            b"c",
        ]
        .concat();
        assert_eq!(
            read_all(&stream, 16),
            (vec![b"ab".to_vec(), b"c".to_vec()], Read::End)
        );
        assert_eq!(read_all(b"xyz1", 16), (vec![], Read::BadHeader));
        let huge = [&STREAM_MAGIC[..], &[0], &17u32.to_be_bytes()].concat();
        assert_eq!(read_all(&huge, 16), (vec![], Read::Oversize));
        let empty = [&STREAM_MAGIC[..], &[0], &0u32.to_be_bytes()].concat();
        assert_eq!(read_all(&empty, 16), (vec![], Read::Oversize));
        // A frame cut short ends the stream without it.
        let cut = [&STREAM_MAGIC[..], &[0], &5u32.to_be_bytes(), b"ab"].concat();
        assert_eq!(read_all(&cut, 16), (vec![], Read::End));
    }

    #[test]
    fn a_frame_larger_than_the_first_allocation_arrives_whole() {
        let big: Vec<u8> = (0..3 * INITIAL_CAPACITY).map(|i| i as u8).collect();
        let stream = [
            &STREAM_MAGIC[..],
            &[0],
            &(big.len() as u32).to_be_bytes(),
            &big,
        ]
        .concat();
        assert_eq!(read_all(&stream, big.len()), (vec![big], Read::End));
    }
}
