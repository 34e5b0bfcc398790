//! [`GuardedQuic`]: the guard for memberlist's QUIC stream layer. memberlist-quic reads each
//! stream with the same decoder as TCP, so a peer that stops inside a header wedges a worker
//! there too. QUIC authenticates every peer first (mutual TLS), so only a holder of a cluster
//! certificate can do it; the guard makes it harmless all the same.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use memberlist::quic::stream_layer::{
    QuicAcceptor, QuicConnection, QuicConnector, QuicStream, StreamLayer,
};

use super::Shared;
use super::layer::{GuardedOptions, GuardedStream};

/// A memberlist-quic stream layer whose streams are read within a
/// [`StreamGuard`](super::StreamGuard)'s limits (message size, bytes in flight, read timeout).
/// The connection cap does not apply: QUIC connections are authenticated before a stream opens,
/// and quinn bounds streams per connection.
#[derive(Debug)]
pub struct GuardedQuic<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: StreamLayer> StreamLayer for GuardedQuic<S> {
    type Runtime = S::Runtime;
    type Acceptor = GuardedAcceptor<S::Acceptor>;
    type Connector = GuardedConnector<S::Connector>;
    type Stream = GuardedStream<S::Stream>;
    type Connection = GuardedConnection<S::Connection>;
    type Options = GuardedOptions<S::Options>;

    fn max_stream_data(&self) -> usize {
        self.inner.max_stream_data()
    }

    async fn new(options: Self::Options) -> io::Result<Self> {
        let (inner, shared) = options.into_parts();
        Ok(Self {
            inner: S::new(inner).await?,
            shared,
        })
    }

    async fn bind(
        &self,
        addr: SocketAddr,
    ) -> io::Result<(SocketAddr, Self::Acceptor, Self::Connector)> {
        let (local, acceptor, connector) = self.inner.bind(addr).await?;
        let shared = &self.shared;
        Ok((
            local,
            GuardedAcceptor {
                inner: acceptor,
                shared: Arc::clone(shared),
            },
            GuardedConnector {
                inner: connector,
                shared: Arc::clone(shared),
            },
        ))
    }
}

impl<C: QuicStream> QuicStream for GuardedStream<C>
where
    C::Reader: Unpin,
{
    type SendStream = C::SendStream;
}

/// The acceptor of a [`GuardedQuic`] layer.
#[derive(Debug)]
pub struct GuardedAcceptor<A> {
    inner: A,
    shared: Arc<Shared>,
}

impl<A: QuicAcceptor> QuicAcceptor for GuardedAcceptor<A> {
    type Connection = GuardedConnection<A::Connection>;

    async fn accept(&mut self) -> io::Result<(Self::Connection, SocketAddr)> {
        let (inner, from) = self.inner.accept().await?;
        let shared = Arc::clone(&self.shared);
        Ok((GuardedConnection { inner, shared }, from))
    }

    async fn close(&mut self) -> io::Result<()> {
        self.inner.close().await
    }

    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }
}

/// The connector of a [`GuardedQuic`] layer.
#[derive(Debug)]
pub struct GuardedConnector<C> {
    inner: C,
    shared: Arc<Shared>,
}

impl<C: QuicConnector> QuicConnector for GuardedConnector<C> {
    type Connection = GuardedConnection<C::Connection>;

    async fn connect(&self, addr: SocketAddr) -> io::Result<Self::Connection> {
        let inner = self.inner.connect(addr).await?;
        let shared = Arc::clone(&self.shared);
        Ok(GuardedConnection { inner, shared })
    }

    async fn close(&self) -> io::Result<()> {
        self.inner.close().await
    }

    async fn wait_idle(&self) -> io::Result<()> {
        self.inner.wait_idle().await
    }

    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }
}

/// A connection of a [`GuardedQuic`] layer: its streams are guarded.
#[derive(Clone, Debug)]
pub struct GuardedConnection<C> {
    inner: C,
    shared: Arc<Shared>,
}

impl<C: QuicConnection> GuardedConnection<C>
where
    <C::Stream as memberlist::transport::Connection>::Reader: Unpin,
{
    fn guard(
        &self,
        (stream, peer): (C::Stream, SocketAddr),
    ) -> (GuardedStream<C::Stream>, SocketAddr) {
        let local = self.inner.local_addr();
        (
            GuardedStream::wrap(stream, &self.shared, None, local, peer),
            peer,
        )
    }
}

impl<C: QuicConnection> QuicConnection for GuardedConnection<C>
where
    <C::Stream as memberlist::transport::Connection>::Reader: Unpin,
{
    type Stream = GuardedStream<C::Stream>;

    async fn accept_bi(&self) -> io::Result<(Self::Stream, SocketAddr)> {
        Ok(self.guard(self.inner.accept_bi().await?))
    }

    async fn open_bi(&self) -> io::Result<(Self::Stream, SocketAddr)> {
        Ok(self.guard(self.inner.open_bi().await?))
    }

    async fn send_datagram(&self, data: Bytes) -> io::Result<()> {
        self.inner.send_datagram(data).await
    }

    async fn recv_datagram(&self) -> io::Result<Bytes> {
        self.inner.recv_datagram().await
    }

    async fn close(&self) -> io::Result<()> {
        self.inner.close().await
    }

    async fn is_closed(&self) -> bool {
        self.inner.is_closed().await
    }

    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }
}
