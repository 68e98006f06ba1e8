//! Reads a plain TCP connection in large pieces while keeping nothing for an idle one.
//!
//! tungstenite reads at most its `read_buffer_size` per `read` call (tungstenite 0.29,
//! `FrameCodec::read_in`), and that size is also the buffer every connection allocates
//! when it opens. We keep it small (`http::WS_READ_BUFFER`, 512 bytes) because it is a
//! large part of an idle connection's memory; but then a 2.5 KB frame took five or six
//! `recv` calls, where the bare relay (4 KiB) takes one, and the receive path was a
//! quarter of the server's CPU under a flood.
//!
//! [`ReadAhead`] sits between the socket and hyper/tungstenite: a small read is served
//! from one large `recv` into a per-thread scratch buffer, and what the caller did not
//! take waits in a buffer of its own, exactly as large as the rest and freed once
//! drained. So a busy connection costs one `recv` per burst, and an idle one nothing.
//! TLS connections do not need it: rustls reads whole records into its own buffer.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes one `recv` may take. Large enough for several 2.5 KB signals; it exists once
/// per runtime thread, not per connection.
const SCRATCH: usize = 16 * 1024;

thread_local! {
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// A stream whose small reads are served from one large one (see the module docs).
#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    /// Read from the socket, not yet handed out: `ahead[taken..]`. Empty, without an
    /// allocation, whenever it is drained.
    ahead: Vec<u8>,
    taken: usize,
}

impl<S> ReadAhead<S> {
    pub fn new(inner: S) -> ReadAhead<S> {
        ReadAhead {
            inner,
            ahead: Vec::new(),
            taken: 0,
        }
    }

    /// Hands out what is ahead, as much as `dst` takes; frees it once drained.
    fn give(&mut self, dst: &mut ReadBuf<'_>) {
        let n = dst.remaining().min(self.ahead.len() - self.taken);
        dst.put_slice(&self.ahead[self.taken..self.taken + n]);
        self.taken += n;
        if self.taken == self.ahead.len() {
            self.ahead = Vec::new();
            self.taken = 0;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.taken < me.ahead.len() {
            me.give(dst);
            return Poll::Ready(Ok(()));
        }
        if dst.remaining() >= SCRATCH {
            // Large enough already: straight into the caller's buffer.
            return Pin::new(&mut me.inner).poll_read(cx, dst);
        }
        SCRATCH_BUF.with_borrow_mut(|scratch| {
            let mut buf = ReadBuf::new(scratch);
            match Pin::new(&mut me.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => {
                    let got = buf.filled();
                    let n = dst.remaining().min(got.len());
                    dst.put_slice(&got[..n]);
                    if n < got.len() {
                        me.ahead = got[n..].to_vec();
                        me.taken = 0;
                    }
                    Poll::Ready(Ok(()))
                }
                other => other,
            }
        })
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_reads_get_every_byte_in_order_and_the_rest_is_freed() {
        let (mut far, near) = tokio::io::duplex(64 * 1024);
        let sent: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        far.write_all(&sent).await.unwrap();
        drop(far);
        let mut stream = ReadAhead::new(near);
        let mut got = Vec::new();
        let mut piece = [0u8; 512];
        loop {
            let n = stream.read(&mut piece).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&piece[..n]);
            // Whatever waits is the rest of one scratch read at most.
            assert!(stream.ahead.len() < SCRATCH);
        }
        assert_eq!(got, sent);
        assert_eq!(stream.ahead.capacity(), 0, "drained: no buffer kept");
    }

    #[tokio::test]
    async fn one_read_serves_several_small_ones() {
        let (mut far, near) = tokio::io::duplex(64 * 1024);
        far.write_all(&[7u8; 3000]).await.unwrap();
        let mut stream = ReadAhead::new(near);
        let mut piece = [0u8; 512];
        assert_eq!(stream.read(&mut piece).await.unwrap(), 512);
        // The other 2,488 bytes came in the same read and wait, without the socket.
        assert_eq!(stream.ahead.len() - stream.taken, 2488);
        let mut rest = Vec::new();
        while rest.len() < 2488 {
            let n = stream.read(&mut piece).await.unwrap();
            rest.extend_from_slice(&piece[..n]);
        }
        assert_eq!(rest, vec![7u8; 2488]);
        assert_eq!(stream.ahead.capacity(), 0);
    }
}
