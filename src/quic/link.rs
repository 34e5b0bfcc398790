//! [`Link`]: our sending side of one QUIC connection, with a stream per lane.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Mutex;

use crate::Frame;

/// The first bytes of every stream we open: a marker, the stream format version, the lane.
pub(crate) const STREAM_MAGIC: [u8; 3] = [0xB7, b'Q', 1];

/// Which stream a frame travels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// IHave, Graft, Prune: small, and urgent for repair.
    Control = 0,
    /// Gossip.
    Payload = 1,
}

/// Why a write failed; the link is then dropped and re-dialled.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("opening a stream: {0}")]
    Open(#[from] quinn::ConnectionError),
    #[error("writing: {0}")]
    Write(#[from] quinn::WriteError),
}

/// A connection we send on: one long-lived unidirectional stream per lane, opened on first use.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) connection: quinn::Connection,
    lanes: [Mutex<Option<quinn::SendStream>>; 2],
}

impl Link {
    pub(crate) fn new(connection: quinn::Connection) -> Arc<Self> {
        Arc::new(Self {
            connection,
            lanes: Default::default(),
        })
    }

    pub(crate) fn is_open(&self) -> bool {
        self.connection.close_reason().is_none()
    }

    /// Writes one length-prefixed frame on `lane`'s stream. Returns once quinn has buffered it
    /// (waiting while the peer's flow-control window is full: that is the backpressure a slow
    /// peer exerts on its own send task).
    pub(crate) async fn write(&self, lane: Lane, frame: Frame) -> Result<(), LinkError> {
        let mut stream = self.lanes[lane as usize].lock().await;
        let stream = match &mut *stream {
            Some(stream) => stream,
            empty => {
                let mut opened = self.connection.open_uni().await?;
                // Control frames go out first whenever both streams have data queued.
                let _ = opened.set_priority(if lane == Lane::Control { 1 } else { 0 });
                let [a, b, c] = STREAM_MAGIC;
                opened.write_all(&[a, b, c, lane as u8]).await?;
                empty.insert(opened)
            }
        };
        let len = u32::try_from(frame.len()).expect("checked against max_frame_size");
        let (head, payload) = frame.into_parts();
        let mut chunks = [Bytes::copy_from_slice(&len.to_be_bytes()), head, payload];
        stream.write_all_chunks(&mut chunks).await?;
        Ok(())
    }
}
