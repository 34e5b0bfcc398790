//! [`TlsLayer`]: memberlist's TCP streams over TLS 1.3 with the cluster's certificates (feature
//! `quic`, which brings rustls), for [`StackBuilder::build_tls`](super::StackBuilder::build_tls).
//!
//! memberlist-net has a TLS stream layer of its own, but its listener runs each handshake inside
//! `accept`, one at a time and without a timeout: one connection that never completes its
//! handshake stops every later one. Here the accept loop hands each connection to a task of its
//! own that must finish the handshake within a timeout, and at most [`MAX_HANDSHAKES`] run at
//! once (more connections are closed at once). Memberlist's decoder still reads these streams,
//! so the layer is meant to run inside [`Guarded`](super::Guarded), as `build_tls` does; its
//! reader does not peek.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_rustls::pki_types::ServerName;
use futures_rustls::{TlsAcceptor, TlsConnector, TlsStream};
use memberlist::futures::io::{AsyncReadExt, ReadHalf, WriteHalf};
use memberlist::net::stream_layer::{Listener, PromisedStream, StreamLayer};
use memberlist::proto::ProtoReader;
use memberlist::tokio::TokioRuntime;
use memberlist::transport::Connection;
use tokio::sync::{Mutex, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

use crate::{MEMBERS_NAME, QuicConfig, QuicTls, TlsError};

/// memberlist's UDP+TCP transport with its streams over TLS ([`TlsLayer`] inside
/// [`Guarded`](super::Guarded)), addressed by socket address.
pub type TlsMemberlistTransport<I> = memberlist::tokio::TokioNetTransport<
    I,
    memberlist::tokio::TokioSocketAddrResolver,
    super::Guarded<TlsLayer>,
>;

/// The stack [`StackBuilder::build_tls`](super::StackBuilder::build_tls) builds.
pub type TlsStack<I, PD> = super::MemberlistStack<
    I,
    PD,
    TlsMemberlistTransport<I>,
    memberlist::delegate::VoidDelegate<I, SocketAddr>,
>;

/// TLS handshakes in progress at once on one listener; further connections are closed at once.
pub const MAX_HANDSHAKES: usize = 1024;

/// ALPN of memberlist's TLS streams, distinct from the QUIC ones.
const TLS_ALPN: &[u8] = b"memberlist-plumtree-swim-tls/1";

type Io = TlsStream<Compat<tokio::net::TcpStream>>;

/// Options of a [`TlsLayer`]: the cluster identity and the handshake timeout.
#[derive(Clone)]
pub struct TlsOptions {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    server_name: ServerName<'static>,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl QuicTls {
    /// Options for memberlist's streams over TLS on TCP from this identity: TLS 1.3, certificates
    /// checked both ways against the CA, members dialled by [`MEMBERS_NAME`] (certificates from
    /// [`ClusterCa`](crate::ClusterCa) carry it). Handshakes must finish within
    /// `config.connect_timeout`.
    ///
    /// # Errors
    /// [`TlsError::Config`] if rustls rejects the certificates or key.
    pub fn memberlist_tls_options(&self, config: &QuicConfig) -> Result<TlsOptions, TlsError> {
        let server = self.rustls_server_config(TLS_ALPN)?;
        let client = self.rustls_client_config(TLS_ALPN)?;
        let server_name =
            ServerName::try_from(MEMBERS_NAME).map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(TlsOptions {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            server_name,
            handshake_timeout: config.connect_timeout,
        })
    }
}

/// memberlist's stream layer over TLS on TCP; docs/security.md says why it is not
/// memberlist-net's own.
#[derive(Debug)]
pub struct TlsLayer {
    options: TlsOptions,
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("TLS {what} timed out"))
}

impl StreamLayer for TlsLayer {
    type Runtime = TokioRuntime;
    type Listener = TlsListener;
    type Stream = TlsConnection;
    type Options = TlsOptions;

    async fn new(options: TlsOptions) -> io::Result<Self> {
        Ok(Self { options })
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<TlsConnection> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let local = tcp.local_addr()?;
        let name = self.options.server_name.clone();
        let handshake = self.options.connector.connect(name, tcp.compat());
        let tls = tokio::time::timeout(self.options.handshake_timeout, handshake)
            .await
            .map_err(|_| timed_out("handshake"))??;
        Ok(TlsConnection::new(TlsStream::Client(tls), local, addr))
    }

    async fn bind(&self, addr: SocketAddr) -> io::Result<TlsListener> {
        let tcp = tokio::net::TcpListener::bind(addr).await?;
        let local = tcp.local_addr()?;
        let (done, streams) = mpsc::channel(64);
        let accept = accept_loop(tcp, self.options.clone(), done);
        Ok(TlsListener {
            local,
            streams: Mutex::new(streams),
            task: tokio::spawn(accept),
        })
    }

    fn is_secure() -> bool {
        true
    }
}

/// Accepts TCP connections and completes each handshake in a task of its own, within the
/// timeout; finished streams go to the listener. The handshake tasks belong to this one: when
/// the listener stops it, they stop with it.
async fn accept_loop(
    tcp: tokio::net::TcpListener,
    options: TlsOptions,
    done: mpsc::Sender<(TlsConnection, SocketAddr)>,
) {
    let mut handshakes = JoinSet::new();
    loop {
        let (stream, from) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors and the like: wait a little instead of spinning.
                tracing::debug!(%error, "TLS listener: accept failed");
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        while handshakes.try_join_next().is_some() {}
        if handshakes.len() >= MAX_HANDSHAKES {
            tracing::debug!(%from, "TLS connection refused: too many handshakes in progress");
            continue;
        }
        let (acceptor, timeout, done) = (
            options.acceptor.clone(),
            options.handshake_timeout,
            done.clone(),
        );
        handshakes.spawn(async move {
            let Ok(local) = stream.local_addr() else {
                return;
            };
            match tokio::time::timeout(timeout, acceptor.accept(stream.compat())).await {
                Ok(Ok(tls)) => {
                    let connection = TlsConnection::new(TlsStream::Server(tls), local, from);
                    let _ = done.send((connection, from)).await;
                }
                Ok(Err(error)) => tracing::debug!(%from, %error, "TLS handshake refused"),
                Err(_) => tracing::debug!(%from, "TLS handshake timed out"),
            }
        });
    }
}

/// The listener of a [`TlsLayer`]: hands out connections whose handshake has completed.
#[derive(Debug)]
pub struct TlsListener {
    local: SocketAddr,
    streams: Mutex<mpsc::Receiver<(TlsConnection, SocketAddr)>>,
    task: JoinHandle<()>,
}

impl Listener for TlsListener {
    type Stream = TlsConnection;

    async fn accept(&self) -> io::Result<(TlsConnection, SocketAddr)> {
        self.streams
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| io::Error::other("TLS listener closed"))
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    async fn shutdown(&self) -> io::Result<()> {
        self.task.abort();
        Ok(())
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TLS stream of a [`TlsLayer`].
pub struct TlsConnection {
    reader: TlsReader,
    writer: WriteHalf<Io>,
    local: SocketAddr,
    peer: SocketAddr,
}

impl std::fmt::Debug for TlsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnection")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl TlsConnection {
    fn new(stream: Io, local: SocketAddr, peer: SocketAddr) -> Self {
        let (reader, writer) = stream.split();
        Self {
            reader: TlsReader(reader),
            writer,
            local,
            peer,
        }
    }
}

/// The read half of a [`TlsConnection`]. It reads but does not peek: read it through
/// [`Guarded`](super::Guarded), whose reader answers memberlist's peeks.
pub struct TlsReader(ReadHalf<Io>);

impl std::fmt::Debug for TlsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReader").finish_non_exhaustive()
    }
}

fn no_peek() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "TlsReader does not peek: use TlsLayer inside Guarded",
    )
}

impl ProtoReader for TlsReader {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        AsyncReadExt::read(&mut self.0, buf).await
    }

    async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        AsyncReadExt::read_exact(&mut self.0, buf).await
    }

    async fn peek(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(no_peek())
    }

    async fn peek_exact(&mut self, _: &mut [u8]) -> io::Result<()> {
        Err(no_peek())
    }
}

split_connection! {
    [impl Connection for TlsConnection]
    reader: TlsReader,
    writer: WriteHalf<Io>
}

impl PromisedStream for TlsConnection {
    type Instant = tokio::time::Instant;

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
}
