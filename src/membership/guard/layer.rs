//! The stream layer, listener and stream of [`Guarded`]: each wraps memberlist-net's own and
//! puts a [`GuardedReader`] in front of memberlist's decoder.

use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;

use memberlist::net::stream_layer::{Listener, PromisedStream, StreamLayer};
use memberlist::transport::Connection;
use tokio::sync::OwnedSemaphorePermit;

use super::reader::GuardedReader;
use super::{GuardStats, Refusal, Shared, StreamGuard};
use crate::ConfigError;

/// A memberlist-net stream layer (TCP, TLS) whose streams are read within a [`StreamGuard`]'s
/// limits. docs/security.md lists what it prevents.
///
/// # Examples
/// memberlist over guarded TCP, built by hand (what
/// [`MemberlistStack::builder`](crate::MemberlistStack::builder) does for you):
/// ```
/// use memberlist_plumtree::memberlist::net::NetTransportOptions;
/// use memberlist_plumtree::memberlist::tokio::{TokioSocketAddrResolver, TokioTcp};
/// use memberlist_plumtree::{Guarded, GuardedOptions, StreamGuard};
///
/// let layer = GuardedOptions::new((), StreamGuard::default())?;
/// let stats = layer.clone();
/// let mut transport: NetTransportOptions<u64, TokioSocketAddrResolver, Guarded<TokioTcp>> =
///     NetTransportOptions::with_stream_layer_options(7, layer);
/// transport.add_bind_address("127.0.0.1:0".parse()?);
/// // Pass `transport` to memberlist::Memberlist::with_delegate; `stats.stats()` counts refusals.
/// assert_eq!(stats.stats().oversize, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Options of a [`Guarded`] stream layer: the wrapped layer's options and the limits. Clones
/// share their counters, so a clone kept before handing the options to memberlist reads them.
#[derive(Clone, Debug)]
pub struct GuardedOptions<O> {
    inner: O,
    shared: Arc<Shared>,
}

impl<O: Default> Default for GuardedOptions<O> {
    /// The wrapped layer's default options with [`StreamGuard::default`]'s limits.
    fn default() -> Self {
        Self {
            inner: O::default(),
            shared: Shared::new(StreamGuard::default()),
        }
    }
}

impl<O> GuardedOptions<O> {
    /// The wrapped layer's options (`()` for TCP) with `guard`'s limits.
    ///
    /// # Errors
    /// As [`StreamGuard::validate`].
    pub fn new(inner: O, guard: StreamGuard) -> Result<Self, ConfigError> {
        guard.validate()?;
        Ok(Self {
            inner,
            shared: Shared::new(guard),
        })
    }

    /// What the layer built from these options has refused so far.
    pub fn stats(&self) -> GuardStats {
        self.shared.stats()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(super) fn into_parts(self) -> (O, Arc<Shared>) {
        (self.inner, self.shared)
    }
}

impl<S: StreamLayer> StreamLayer for Guarded<S> {
    type Runtime = S::Runtime;
    type Listener = GuardedListener<S::Listener>;
    type Stream = GuardedStream<S::Stream>;
    type Options = GuardedOptions<S::Options>;

    async fn new(options: Self::Options) -> io::Result<Self> {
        let (inner, shared) = options.into_parts();
        Ok(Self {
            inner: S::new(inner).await?,
            shared,
        })
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<Self::Stream> {
        let stream = self.inner.connect(addr).await?;
        Ok(GuardedStream::new(stream, &self.shared, None))
    }

    async fn bind(&self, addr: SocketAddr) -> io::Result<Self::Listener> {
        Ok(GuardedListener {
            inner: self.inner.bind(addr).await?,
            shared: Arc::clone(&self.shared),
        })
    }

    fn is_secure() -> bool {
        S::is_secure()
    }
}

/// The listener of a [`Guarded`] layer: at most `max_inbound_connections` accepted streams are
/// open at once; one more is closed as soon as it is accepted.
#[derive(Debug)]
pub struct GuardedListener<L> {
    inner: L,
    shared: Arc<Shared>,
}

impl<L: Listener> Listener for GuardedListener<L> {
    type Stream = GuardedStream<L::Stream>;

    async fn accept(&self) -> io::Result<(Self::Stream, SocketAddr)> {
        loop {
            let (stream, from) = self.inner.accept().await?;
            match Arc::clone(&self.shared.connections).try_acquire_owned() {
                Ok(slot) => {
                    return Ok((GuardedStream::new(stream, &self.shared, Some(slot)), from));
                }
                Err(_) => {
                    // Closed at once, so the listen backlog keeps moving under a flood.
                    self.shared.refused(Refusal::Connection);
                    tracing::debug!(%from, "memberlist connection refused: too many open");
                }
            }
        }
    }

    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    async fn shutdown(&self) -> io::Result<()> {
        self.inner.shutdown().await
    }
}

/// A stream of a [`Guarded`] layer: the wrapped stream, split, with a [`GuardedReader`] in
/// front of its read half.
pub struct GuardedStream<C: Connection> {
    reader: GuardedReader<C::Reader>,
    writer: C::Writer,
    local: SocketAddr,
    peer: SocketAddr,
    _stream: PhantomData<fn() -> C>,
}

impl<C: Connection> std::fmt::Debug for GuardedStream<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedStream")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl<C: PromisedStream> GuardedStream<C> {
    fn new(stream: C, shared: &Arc<Shared>, slot: Option<OwnedSemaphorePermit>) -> Self {
        let (local, peer) = (stream.local_addr(), stream.peer_addr());
        Self::wrap(stream, shared, slot, local, peer)
    }
}

impl<C: Connection> GuardedStream<C> {
    /// Splits `stream` and puts a [`GuardedReader`] in front of its read half.
    pub(super) fn wrap(
        stream: C,
        shared: &Arc<Shared>,
        slot: Option<OwnedSemaphorePermit>,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Self {
        let (reader, writer) = stream.split();
        Self {
            reader: GuardedReader::new(reader, Arc::clone(shared), slot),
            writer,
            local,
            peer,
            _stream: PhantomData,
        }
    }
}

split_connection! {
    [impl<C: Connection> Connection for GuardedStream<C> where C::Reader: Unpin]
    reader: GuardedReader<C::Reader>,
    writer: C::Writer
}

impl<C: PromisedStream> PromisedStream for GuardedStream<C> {
    type Instant = C::Instant;

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
}
