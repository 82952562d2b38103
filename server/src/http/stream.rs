//! Response bodies written as they are produced: a blocking task writes into an `io::Write`
//! that cuts the bytes into chunks and sends each through a bounded channel, so a list of a
//! million entries is never held whole and a slow client slows the writer rather than filling
//! memory. Used by the blocklist downloads and the v2 decision stream.

use std::io::{self, Write};

use axum::body::Body;
use bytes::Bytes;

/// Size of the chunks a body is streamed (and a rendered list cached) in.
const CHUNK_BYTES: usize = 64 * 1024;

/// A response body written by `write` on a blocking task, sent chunk by chunk as it is produced
/// through a bounded channel (a slow client slows the writer rather than filling memory). With
/// `keep`, the writer also keeps the chunks ([`ChunkWriter::take_chunks`]) for a cache.
pub fn streamed_body(keep: bool, write: impl FnOnce(&mut ChunkWriter) -> io::Result<()> + Send + 'static) -> Body {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let mut writer = ChunkWriter { sender, buffer: Vec::with_capacity(CHUNK_BYTES), chunks: Vec::new(), keep };
        match write(&mut writer).and_then(|()| writer.flush()) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {}
            Err(error) => {
                tracing::error!(%error, "writing a streamed response failed");
                drop(writer.sender.blocking_send(Err(error)));
            }
        }
    });
    Body::from_stream(tokio_stream_from(receiver))
}

fn tokio_stream_from(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Bytes, io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, io::Error>> {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// An `io::Write` that cuts what is written into chunks, sends each to the response as soon as
/// it is full, and keeps them for the cache when asked to.
pub struct ChunkWriter {
    sender: tokio::sync::mpsc::Sender<Result<Bytes, io::Error>>,
    buffer: Vec<u8>,
    chunks: Vec<Bytes>,
    keep: bool,
}

impl ChunkWriter {
    /// The chunks written so far, when kept (`keep`); taken, so they are handed over once.
    pub fn take_chunks(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.chunks)
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES)));
        if self.keep {
            self.chunks.push(chunk.clone());
        }
        self.sender.blocking_send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // A chunk is sent before it would outgrow its buffer: grown past its capacity, a 64 KiB
        // buffer would double, and every chunk (the cached ones too) would hold 128 KiB.
        if self.buffer.len() + data.len() > CHUNK_BYTES {
            self.send()?;
        }
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_never_outgrow_their_buffer_and_keep_every_byte_in_order() {
        let (sender, mut receiver) = tokio::sync::mpsc::channel(1024);
        let mut writer = ChunkWriter { sender, buffer: Vec::with_capacity(CHUNK_BYTES), chunks: Vec::new(), keep: true };
        let mut written = Vec::new();
        for i in 0..20_000u32 {
            // Pieces of 1 to 97 bytes, so chunk boundaries fall inside pieces.
            let piece: Vec<u8> = (0..1 + i % 97).map(|b| (b + i) as u8).collect();
            writer.write_all(&piece).expect("write");
            written.extend_from_slice(&piece);
        }
        writer.write_all(&vec![7u8; 3 * CHUNK_BYTES]).expect("a piece larger than a chunk");
        written.extend_from_slice(&vec![7u8; 3 * CHUNK_BYTES]);
        writer.flush().expect("flush");
        let kept = writer.take_chunks();
        let mut sent = Vec::new();
        while let Ok(Ok(chunk)) = receiver.try_recv() {
            sent.push(chunk);
        }
        assert_eq!(kept, sent, "the kept chunks are the ones sent");
        assert!(kept.len() > 10);
        let small: Vec<usize> = kept.iter().map(Bytes::len).filter(|&len| len != 3 * CHUNK_BYTES).collect();
        assert!(small.iter().all(|&len| len <= CHUNK_BYTES), "a chunk outgrew its buffer: {small:?}");
        assert_eq!(kept.concat(), written);
    }
}
