//! A stream that ends, or stops, inside a plain message's length varint must give
//! `decode_from_reader` an error (or leave it waiting), never keep it busy; and a length claim
//! over the decoder's maximum must be refused before it is allocated.

use std::io::ErrorKind;
use std::sync::mpsc;
use std::time::Duration;

use agnostic_lite::tokio::TokioRuntime;
use memberlist_proto::ProtoDecoder;
use peekable::future::AsyncPeekable;

/// Decodes `bytes` on a thread of its own: a decoder that spins never answers.
fn decode(bytes: Vec<u8>, max: usize) -> Option<std::io::Result<bytes::Bytes>> {
  let (tx, rx) = mpsc::channel();
  std::thread::spawn(move || {
    let runtime = tokio::runtime::Builder::new_current_thread()
      .enable_all()
      .build()
      .unwrap();
    let result = runtime.block_on(async move {
      let mut reader = AsyncPeekable::from(futures_util::io::Cursor::new(bytes));
      ProtoDecoder::new()
        .with_max_message_size(max)
        .decode_from_reader::<_, TokioRuntime>(&mut reader)
        .await
    });
    let _ = tx.send(result);
  });
  rx.recv_timeout(Duration::from_secs(2)).ok()
}

#[test]
fn a_stream_that_ends_inside_a_length_varint_is_an_error() {
  for prefix in [&[0x09][..], &[0x09, 0x80], &[0x09, 0xff, 0xff], &[0x02, 0x80, 0x80, 0x80]] {
    let result = decode(prefix.to_vec(), usize::MAX).expect("the decoder answered");
    assert_eq!(result.unwrap_err().kind(), ErrorKind::UnexpectedEof, "{prefix:02x?}");
  }
}

#[test]
fn a_whole_message_still_decodes() {
  let message = [0x09, 0x03, 1, 2, 3];
  let result = decode(message.to_vec(), usize::MAX).expect("answered");
  assert_eq!(&result.unwrap()[..], &message[..]);
}

#[test]
fn a_length_over_the_maximum_is_refused() {
  // A user message claiming 1 GiB, and a compound message claiming 4 GiB.
  for header in [&[0x09, 0x80, 0x80, 0x80, 0x80, 0x04][..], &[0x01, 0x01, 0xff, 0xff, 0xff, 0xff]] {
    let result = decode(header.to_vec(), 1 << 20).expect("answered");
    assert_eq!(result.unwrap_err().kind(), ErrorKind::InvalidData, "{header:02x?}");
  }
}
