//! [`GuardedReader`]: the read half of a guarded stream, which reads each message's header
//! itself before memberlist's decoder sees any of it.

use std::future::Future;
use std::io;
use std::sync::Arc;

use memberlist::proto::ProtoReader;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::header::{self, Header, MAX_HEADER};
use super::{Refusal, Shared};

/// Reads memberlist messages from `R` within the limits of a [`StreamGuard`](super::StreamGuard).
///
/// The header of each message is read here (waiting for its bytes, within the read timeout) and
/// checked; memberlist's peeks are answered from it, and its reads take the rest of the header
/// from here and the body straight from `R`. A peek or read past the end of the current message
/// is refused: memberlist's decoder never does either.
#[derive(Debug)]
pub struct GuardedReader<R> {
    inner: R,
    shared: Arc<Shared>,
    header: [u8; MAX_HEADER],
    /// Header bytes read from `inner`.
    filled: usize,
    /// Of those, the bytes memberlist has read.
    taken: usize,
    /// Whether `header[..filled]` is a complete, accepted header.
    in_message: bool,
    /// Bytes of the current message after its header not yet read.
    body: u64,
    /// When the current message must be complete.
    deadline: Option<Instant>,
    /// The current message's share of the in-flight budget.
    budget: Option<OwnedSemaphorePermit>,
    /// The inbound connection slot this stream holds, if it was accepted.
    _slot: Option<OwnedSemaphorePermit>,
}

impl<R: ProtoReader> GuardedReader<R> {
    pub(super) fn new(inner: R, shared: Arc<Shared>, slot: Option<OwnedSemaphorePermit>) -> Self {
        Self {
            inner,
            shared,
            header: [0; MAX_HEADER],
            filled: 0,
            taken: 0,
            in_message: false,
            body: 0,
            deadline: None,
            budget: None,
            _slot: slot,
        }
    }

    /// Reads and checks the current message's header if that is not done yet. False at a clean
    /// end of the stream (between messages).
    async fn header(&mut self) -> io::Result<bool> {
        if self.in_message {
            return Ok(true);
        }
        let timeout = self.shared.limits.read_timeout;
        let deadline = *self
            .deadline
            .get_or_insert_with(|| Instant::now() + timeout);
        loop {
            match header::parse(&self.header[..self.filled]) {
                Ok(Header::Incomplete(need)) => {
                    // Exactly up to what the header needs: the body stays in the socket, to be
                    // read straight into memberlist's buffer.
                    let buf = &mut self.header[self.filled..need];
                    let n = timed(&self.shared, deadline, self.inner.read(buf)).await?;
                    if n == 0 {
                        if self.filled == 0 {
                            self.deadline = None;
                            return Ok(false);
                        }
                        self.shared.refused(Refusal::Truncated);
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "stream ended inside a message header",
                        ));
                    }
                    self.filled += n;
                }
                Ok(Header::Complete {
                    len,
                    total,
                    claimed,
                }) => {
                    let max = self.shared.limits.max_message_size;
                    if claimed > max as u64 {
                        self.shared.refused(Refusal::Oversize);
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("a message of {claimed} bytes (the limit is {max})"),
                        ));
                    }
                    // `total` <= `max` <= `max_inflight_bytes` <= u32::MAX (validated), so the
                    // budget can always grant it once others give theirs back.
                    let permits = u32::try_from(total).unwrap_or(u32::MAX);
                    let inflight = Arc::clone(&self.shared.inflight);
                    let budget = timed(&self.shared, deadline, async {
                        inflight
                            .acquire_many_owned(permits)
                            .await
                            .map_err(|_| io::Error::other("stream guard closed"))
                    })
                    .await?;
                    debug_assert_eq!(len, self.filled, "headers are read exactly");
                    self.budget = Some(budget);
                    self.body = total - len as u64;
                    self.in_message = true;
                    return Ok(true);
                }
                Err(error) => {
                    self.shared.refused(Refusal::Malformed);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, error));
                }
            }
        }
    }

    /// Moves `buf.len()` header bytes (at most what is left of the header) into `buf`.
    fn take_header(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.filled - self.taken);
        buf[..n].copy_from_slice(&self.header[self.taken..self.taken + n]);
        self.taken += n;
        n
    }

    /// Ends the current message once all of it has been read: the next read starts a header.
    fn finish_if_read(&mut self) {
        if self.in_message && self.taken == self.filled && self.body == 0 {
            self.in_message = false;
            self.filled = 0;
            self.taken = 0;
            self.deadline = None;
            self.budget = None;
        }
    }

    fn past_the_message() -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "read or peek past the end of a memberlist message",
        )
    }
}

/// `io` finished by `deadline`, or a timeout error (counted).
async fn timed<T>(
    shared: &Shared,
    deadline: Instant,
    io: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match tokio::time::timeout_at(deadline, io).await {
        Ok(result) => result,
        Err(_) => {
            shared.refused(Refusal::TimedOut);
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "memberlist message not received within the stream guard's read timeout",
            ))
        }
    }
}

impl<R: ProtoReader + Unpin> ProtoReader for GuardedReader<R> {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || !self.header().await? {
            return Ok(0);
        }
        let n = if self.taken < self.filled {
            self.take_header(buf)
        } else {
            let want = buf
                .len()
                .min(usize::try_from(self.body).unwrap_or(usize::MAX));
            if want == 0 {
                return Err(Self::past_the_message());
            }
            let deadline = self.deadline.unwrap_or_else(Instant::now);
            let n = timed(&self.shared, deadline, self.inner.read(&mut buf[..want])).await?;
            self.body -= n as u64;
            n
        };
        self.finish_if_read();
        Ok(n)
    }

    async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        if !self.header().await? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let from_header = self.take_header(buf);
        let rest = &mut buf[from_header..];
        if rest.len() as u64 > self.body {
            return Err(Self::past_the_message());
        }
        if !rest.is_empty() {
            let deadline = self.deadline.unwrap_or_else(Instant::now);
            timed(&self.shared, deadline, self.inner.read_exact(rest)).await?;
            self.body -= rest.len() as u64;
        }
        self.finish_if_read();
        Ok(())
    }

    async fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || !self.header().await? {
            return Ok(0);
        }
        let n = buf.len().min(self.filled - self.taken);
        buf[..n].copy_from_slice(&self.header[self.taken..self.taken + n]);
        Ok(n)
    }

    async fn peek_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        if !self.header().await? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if buf.len() > self.filled - self.taken {
            return Err(Self::past_the_message());
        }
        buf.copy_from_slice(&self.header[self.taken..self.taken + buf.len()]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use bytes::Bytes;
    use memberlist::proto::{Message, ProtoDecoder, ProtoEncoder};
    use memberlist::tokio::TokioRuntime;

    use super::*;
    use crate::{GuardStats, StreamGuard};

    /// A stream that yields its bytes in reads of at most `chunk`, then ends or hangs.
    struct Script {
        data: VecDeque<u8>,
        chunk: usize,
        hang: bool,
    }

    impl ProtoReader for Script {
        async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() && self.hang {
                std::future::pending::<()>().await;
            }
            let n = buf.len().min(self.chunk).min(self.data.len());
            for (slot, byte) in buf.iter_mut().zip(self.data.drain(..n)) {
                *slot = byte;
            }
            Ok(n)
        }

        async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
            let mut at = 0;
            while at < buf.len() {
                match self.read(&mut buf[at..]).await? {
                    0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                    n => at += n,
                }
            }
            Ok(())
        }

        async fn peek(&mut self, _: &mut [u8]) -> io::Result<usize> {
            unreachable!("the guard never peeks the stream it wraps")
        }

        async fn peek_exact(&mut self, _: &mut [u8]) -> io::Result<()> {
            unreachable!("the guard never peeks the stream it wraps")
        }
    }

    fn guarded(bytes: &[u8], chunk: usize, hang: bool) -> (GuardedReader<Script>, Arc<Shared>) {
        let shared = Shared::new(StreamGuard::default());
        let script = Script {
            data: bytes.iter().copied().collect(),
            chunk,
            hang,
        };
        (
            GuardedReader::new(script, Arc::clone(&shared), None),
            shared,
        )
    }

    fn user_message(data: &[u8]) -> Vec<u8> {
        let messages: [Message<u64, std::net::SocketAddr>; 1] =
            [Message::UserData(Bytes::copy_from_slice(data))];
        let encoder = ProtoEncoder::new(usize::MAX).with_messages(&messages[..]);
        let payloads: Vec<_> = encoder.encode().collect::<Result<_, _>>().unwrap();
        payloads[0].as_slice().to_vec()
    }

    async fn decode(reader: &mut GuardedReader<Script>) -> io::Result<Bytes> {
        ProtoDecoder::new()
            .decode_from_reader::<_, TokioRuntime>(reader)
            .await
    }

    #[tokio::test]
    async fn memberlist_decodes_consecutive_messages_through_the_guard() {
        let first = user_message(b"first");
        let second = user_message(&[9; 300]);
        let stream = [first.clone(), second.clone()].concat();
        for chunk in [1, 3, 1024] {
            let (mut reader, shared) = guarded(&stream, chunk, false);
            assert_eq!(decode(&mut reader).await.unwrap(), first);
            assert_eq!(decode(&mut reader).await.unwrap(), second);
            assert_eq!(reader.read(&mut [0; 8]).await.unwrap(), 0, "a clean end");
            assert_eq!(shared.stats(), GuardStats::default());
            assert!(reader.budget.is_none(), "the budget is given back");
        }
    }

    #[tokio::test]
    async fn a_stream_that_ends_inside_a_header_is_an_error() {
        for prefix in [
            &[0x09][..],
            &[0x09, 0x80],
            &[0x0c, 0x03, b'a'],
            &[0x0f, 0x01],
        ] {
            let (mut reader, shared) = guarded(prefix, 1, false);
            let error = decode(&mut reader).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{prefix:02x?}");
            assert_eq!(shared.stats().truncated, 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_stops_inside_a_message_times_out() {
        let whole = user_message(&[1; 100]);
        for cut in [1, 2, 50] {
            let (mut reader, shared) = guarded(&whole[..cut], 16, true);
            let started = Instant::now();
            let error = decode(&mut reader).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::TimedOut);
            assert_eq!(started.elapsed(), Duration::from_secs(10));
            assert_eq!(shared.stats().timed_out, 1);
        }
    }

    #[tokio::test]
    async fn a_length_over_the_limit_is_refused_before_its_body_is_read() {
        let mut stream = vec![0x09, 0x80, 0x80, 0x80, 0x80, 0x04]; // a user message of 1 GiB
        stream.extend_from_slice(&[0; 4096]);
        let (mut reader, shared) = guarded(&stream, 4096, false);
        let error = decode(&mut reader).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert_eq!(shared.stats().oversize, 1);
        assert_eq!(
            reader.inner.data.len(),
            4096,
            "nothing after the header was read"
        );
    }

    #[tokio::test]
    async fn unknown_tags_are_refused() {
        let (mut reader, shared) = guarded(&[0x00, 0x05, 1, 2, 3, 4, 5], 8, false);
        assert!(decode(&mut reader).await.is_err());
        assert_eq!(shared.stats().malformed, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn messages_wait_for_the_inflight_budget() {
        let shared = Shared::new(
            StreamGuard::default()
                .with_max_message_size(1000)
                .with_max_inflight_bytes(1000),
        );
        let message = user_message(&[5; 600]);
        let reader = |hang| {
            let script = Script {
                data: message.iter().copied().collect(),
                chunk: 1024,
                hang,
            };
            GuardedReader::new(script, Arc::clone(&shared), None)
        };
        let mut first = reader(false);
        // Holds its share while its header is read and its body is not.
        let mut header = [0u8; 3];
        first.read_exact(&mut header).await.unwrap();
        let mut second = reader(false);
        let waited = tokio::time::timeout(Duration::from_secs(1), decode(&mut second)).await;
        assert!(waited.is_err(), "no room for a second message of 600 bytes");
        let mut rest = vec![0u8; message.len() - 3];
        first.read_exact(&mut rest).await.unwrap();
        assert!(
            decode(&mut reader(false)).await.is_ok(),
            "room once the first is read"
        );
    }
}
