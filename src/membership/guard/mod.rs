//! [`Guarded`]: a memberlist stream layer that bounds what a peer's bytes can cost a node.
//!
//! memberlist reads each message of a TCP (or TLS) stream with memberlist-proto's
//! `decode_from_reader`. In memberlist-proto 0.3.4 that function has two flaws a port scanner
//! reaches: while a plain message's length varint is incomplete it peeks the same buffered bytes
//! again and again without ever waiting, so a connection that sent `09` (or `09 80`) pins a
//! runtime worker at 100 % CPU for good; and it allocates whatever length a header claims
//! (`BytesMut::zeroed`, no maximum). docs/upstream/ holds the fix for memberlist-proto.
//!
//! [`Guarded`] wraps any memberlist-net stream layer so that memberlist's decoder only ever sees
//! a complete header whose length claim is within bounds:
//! - each message's header is read here first, waiting properly for its bytes; a stream that
//!   ends inside a header is an error, never a spin;
//! - the claimed length is checked against [`StreamGuard::max_message_size`] before memberlist
//!   allocates it, and the bytes of all messages being read at once are held within
//!   [`StreamGuard::max_inflight_bytes`];
//! - every message must arrive within [`StreamGuard::read_timeout`];
//! - at most [`StreamGuard::max_inbound_connections`] accepted connections are open at once;
//!   further ones are closed on accept, so the listen backlog never fills.
//!
//! The body of a message is read straight into memberlist's buffer: the guard adds only the
//! copy of the header (at most 11 bytes, plus a label) and two to six small reads per message (one
//! per byte of a plain message's length varint, since reading past the header would take body
//! bytes that belong in memberlist's buffer).
//!
//! [`MemberlistStack::builder`](super::MemberlistStack::builder) uses it for every stack it
//! builds: [`Guarded`] over TCP, `GuardedQuic` (feature `quic`) over memberlist's QUIC. Once a memberlist-proto release with the fix exists, the spin guard is
//! redundant; the length, time and connection bounds are not.

mod header;
mod layer;
#[cfg(feature = "quic")]
mod quic;
mod reader;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

pub use layer::{Guarded, GuardedListener, GuardedOptions, GuardedStream};
#[cfg(feature = "quic")]
pub use quic::{GuardedAcceptor, GuardedConnection, GuardedConnector, GuardedQuic};
pub use reader::GuardedReader;

use crate::ConfigError;

/// Limits a [`Guarded`] stream layer enforces on every stream.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use memberlist_plumtree::StreamGuard;
///
/// let guard = StreamGuard::default()
///     .with_max_message_size(16 << 20)
///     .with_read_timeout(Duration::from_secs(30));
/// guard.validate()?;
/// # Ok::<(), memberlist_plumtree::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamGuard {
    /// Largest memberlist message accepted on a stream, framing included. Raise it for
    /// push-pull state of very large clusters (each member costs up to about 600 bytes with
    /// full metadata) or for Plumtree frames above 4 MiB over memberlist. Default 8 MiB.
    pub max_message_size: usize,
    /// Bytes of messages being read at once, over all streams: what a flood of connections
    /// that each claim the maximum can make the node hold. At least `max_message_size`.
    /// Default 32 MiB.
    pub max_inflight_bytes: usize,
    /// Time a message has, from the first byte awaited to the last, before the stream is cut.
    /// Default 10 s (memberlist's `Options::lan()` timeout).
    pub read_timeout: Duration,
    /// Accepted connections open at once; more are closed at once. Default 512.
    pub max_inbound_connections: usize,
}

impl Default for StreamGuard {
    fn default() -> Self {
        Self {
            max_message_size: 8 << 20,
            max_inflight_bytes: 32 << 20,
            read_timeout: Duration::from_secs(10),
            max_inbound_connections: 512,
        }
    }
}

setters! { StreamGuard;
    /// Sets [`max_message_size`](Self::max_message_size).
    with_max_message_size: max_message_size: usize;
    /// Sets [`max_inflight_bytes`](Self::max_inflight_bytes).
    with_max_inflight_bytes: max_inflight_bytes: usize;
    /// Sets [`read_timeout`](Self::read_timeout).
    with_read_timeout: read_timeout: Duration;
    /// Sets [`max_inbound_connections`](Self::max_inbound_connections).
    with_max_inbound_connections: max_inbound_connections: usize;
}

/// Largest in-flight budget: a tokio semaphore holds at most `u32::MAX` permits at once.
const MAX_INFLIGHT: usize = u32::MAX as usize;

impl StreamGuard {
    /// Checks the limits.
    ///
    /// # Errors
    /// [`ConfigError::Zero`] for a zero limit or timeout, [`ConfigError::TooLarge`] for an
    /// in-flight budget over `u32::MAX` bytes, [`ConfigError::Inconsistent`] if the budget is
    /// below one message (such a message could never be read).
    pub fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::first_zero(
            &[
                ("max_message_size", self.max_message_size),
                ("max_inflight_bytes", self.max_inflight_bytes),
                ("max_inbound_connections", self.max_inbound_connections),
            ],
            &[("read_timeout", self.read_timeout)],
        )?;
        if self.max_inflight_bytes > MAX_INFLIGHT {
            return Err(ConfigError::TooLarge {
                field: "max_inflight_bytes",
                max: MAX_INFLIGHT,
            });
        }
        if self.max_inflight_bytes < self.max_message_size {
            return Err(ConfigError::Inconsistent(
                "max_inflight_bytes is below max_message_size",
            ));
        }
        Ok(())
    }
}

/// What a [`Guarded`] stream layer has refused so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GuardStats {
    /// Connections closed on accept because `max_inbound_connections` were open.
    pub connections_refused: u64,
    /// Messages whose header claimed more than `max_message_size`.
    pub oversize: u64,
    /// Streams that ended inside a header.
    pub truncated: u64,
    /// Headers memberlist would not decode (unknown tag or algorithm, bad length).
    pub malformed: u64,
    /// Messages that did not arrive within `read_timeout`.
    pub timed_out: u64,
}

/// The limits, the shared budgets and the counters of one stream layer.
#[derive(Debug)]
pub(crate) struct Shared {
    limits: StreamGuard,
    inflight: Arc<Semaphore>,
    connections: Arc<Semaphore>,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    connections_refused: AtomicU64,
    oversize: AtomicU64,
    truncated: AtomicU64,
    malformed: AtomicU64,
    timed_out: AtomicU64,
}

/// A refusal, for the counters.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    Connection,
    Oversize,
    Truncated,
    Malformed,
    TimedOut,
}

impl Shared {
    /// Shared state for `limits`, which must have been validated.
    pub(crate) fn new(limits: StreamGuard) -> Arc<Self> {
        Arc::new(Self {
            inflight: Arc::new(Semaphore::new(limits.max_inflight_bytes)),
            connections: Arc::new(Semaphore::new(limits.max_inbound_connections)),
            limits,
            counters: Counters::default(),
        })
    }

    fn refused(&self, why: Refusal) {
        let counter = match why {
            Refusal::Connection => &self.counters.connections_refused,
            Refusal::Oversize => &self.counters.oversize,
            Refusal::Truncated => &self.counters.truncated,
            Refusal::Malformed => &self.counters.malformed,
            Refusal::TimedOut => &self.counters.timed_out,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn max_message_size(&self) -> usize {
        self.limits.max_message_size
    }

    pub(crate) fn stats(&self) -> GuardStats {
        let c = &self.counters;
        GuardStats {
            connections_refused: c.connections_refused.load(Ordering::Relaxed),
            oversize: c.oversize.load(Ordering::Relaxed),
            truncated: c.truncated.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            timed_out: c.timed_out.load(Ordering::Relaxed),
        }
    }
}

/// The header parser on arbitrary bytes, for the fuzz target: an incomplete header asks for
/// more than it was given and no more than the longest header; a complete one lies within what
/// it was given and claims at least its own length.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_header(bytes: &[u8]) {
    use header::{Header, MAX_HEADER};
    match header::parse(bytes) {
        Ok(Header::Incomplete(need)) => {
            assert!(need > bytes.len() && need <= MAX_HEADER, "asked for {need}");
        }
        Ok(Header::Complete {
            len,
            total,
            claimed,
        }) => {
            assert!(len <= bytes.len() && len <= MAX_HEADER, "header of {len}");
            assert!(
                total >= len as u64 && claimed >= total,
                "{total} / {claimed}"
            );
        }
        Err(_) => {}
    }
}
