//! [`MemberlistStack`]: SWIM membership from the `memberlist` crate drives a Plumtree node.
//!
//! memberlist (a SWIM implementation) tells every node who is in the cluster and who has failed;
//! [`PlumtreeNodeDelegate`], installed as memberlist's delegate, turns its join, leave and
//! failure events into Plumtree peer changes and records ping round-trip times. The Plumtree
//! frames themselves go through any [`Transport`](crate::Transport): over memberlist's own
//! reliable messages ([`MemberlistTransport`], one port for everything), or a transport of your
//! own.
//!
//! [`MemberlistStack::builder`] wires all of it for the common case; docs/getting-started.md
//! shows both that and the manual path.

/// memberlist's `Connection` for a stream kept as its two halves, fields `reader` and `writer`:
/// every call goes to the half that serves it. Takes the impl header in brackets and the two
/// half types: `split_connection! { [impl Connection for S] reader: R, writer: W }`.
macro_rules! split_connection {
    ([$($head:tt)*] reader: $reader:ty, writer: $writer:ty) => {
        $($head)* {
            type Reader = $reader;
            type Writer = $writer;

            fn split(self) -> (Self::Reader, Self::Writer) {
                (self.reader, self.writer)
            }

            async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                memberlist::proto::ProtoReader::read(&mut self.reader, buf).await
            }

            async fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
                memberlist::proto::ProtoReader::read_exact(&mut self.reader, buf).await
            }

            async fn peek(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                memberlist::proto::ProtoReader::peek(&mut self.reader, buf).await
            }

            async fn peek_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
                memberlist::proto::ProtoReader::peek_exact(&mut self.reader, buf).await
            }

            async fn write_all(&mut self, payload: &[u8]) -> std::io::Result<()> {
                memberlist::proto::ProtoWriter::write_all(&mut self.writer, payload).await
            }

            async fn flush(&mut self) -> std::io::Result<()> {
                memberlist::proto::ProtoWriter::flush(&mut self.writer).await
            }

            async fn close(&mut self) -> std::io::Result<()> {
                memberlist::proto::ProtoWriter::close(&mut self.writer).await
            }
        }
    };
}

mod bridge;
mod builder;
mod delegate;
mod guard;
mod meta;
#[cfg(feature = "quic")]
mod quic;
mod stack;
#[cfg(feature = "quic")]
mod tls;
mod topics;
mod transport;
mod user_message;

#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing {
    pub(crate) use super::guard::fuzz_header as stream_header;
    pub(crate) use super::user_message::decode as user_message_frames;
}

pub use bridge::{BridgeConfig, PeerInfo};
pub use builder::{StackBuilder, TcpStack, TcpTransport};
pub use delegate::{IntoMemberlistDelegate, PlumtreeNodeDelegate};
pub use guard::{
    GuardStats, Guarded, GuardedListener, GuardedOptions, GuardedReader, GuardedStream, StreamGuard,
};
#[cfg(feature = "quic")]
pub use guard::{GuardedAcceptor, GuardedConnection, GuardedConnector, GuardedQuic};
pub use meta::{META_MAX_SIZE, MetaError, NodeMeta};
#[cfg(feature = "quic")]
pub use quic::{QuicMemberlistTransport, QuicStack};
pub use stack::{DelegatedMemberlist, MemberlistStack, StackError};
#[cfg(feature = "quic")]
pub use tls::{
    MAX_HANDSHAKES, TlsConnection, TlsLayer, TlsListener, TlsMemberlistTransport, TlsOptions,
    TlsReader, TlsStack,
};
pub use transport::MemberlistTransport;
