//! Reads and writes a TCP connection in large pieces, keeping nothing for an idle
//! one.
//!
//! **Reads.** tungstenite reads at most its `read_buffer_size` per `read` call
//! (tungstenite 0.29, `FrameCodec::read_in`), and that size is also the buffer every
//! connection allocates when it opens. We keep it small (`http::WS_READ_BUFFER`, 512 bytes) because it is a
//! large part of an idle connection's memory; but then a 2.5 KB frame took five or six
//! `recv` calls, where the bare relay (4 KiB) takes one, and the receive path was a
//! quarter of the server's CPU under a flood.
//!
//! [`BatchedIo`] sits between the socket and hyper/tungstenite: a small read is served
//! from one large `recv` into a per-thread scratch buffer, and what the caller did not
//! take waits in a buffer of its own, exactly as large as the rest and freed once
//! drained. So a busy connection costs one `recv` per burst, and an idle one nothing.
//!
//! **Writes.** tungstenite writes each frame as it is queued (our `write_buffer_size` is
//! 0, or every connection would keep a write buffer), so when the connection task sends
//! what its queue holds — the replies to a burst of requests, say — each frame was a
//! `send` of its own. Here the first write after a flush goes straight to the socket (a
//! lone frame costs no copy) and the writes after it wait, copied into one buffer, until
//! the flush sends them in one piece and frees the buffer.
//!
//! Under TLS it sits below rustls (which writes one record per frame as it is queued,
//! and flushes its socket whenever it is flushed), so the same holds there.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes written after a batch's first write that may wait for the flush; past this
/// they are sent before more are taken.
const MAX_BEHIND: usize = 64 * 1024;

/// Bytes one `recv` may take. Large enough for several 2.5 KB signals; it exists once
/// per runtime thread, not per connection.
const SCRATCH: usize = 16 * 1024;

thread_local! {
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// A stream whose small reads are served from one large one and whose writes between
/// two flushes leave in two pieces at most (see the module docs).
#[derive(Debug)]
pub struct BatchedIo<S> {
    inner: S,
    /// Read from the socket, not yet handed out: `ahead[taken..]`. Empty, without an
    /// allocation, whenever it is drained.
    ahead: Vec<u8>,
    taken: usize,
    /// Written after the batch's first write, waiting for the flush: `behind[sent..]`.
    /// Empty, without an allocation, after every flush.
    behind: Vec<u8>,
    sent: usize,
    /// A write went straight to the socket since the last flush.
    wrote: bool,
}

impl<S> BatchedIo<S> {
    pub fn new(inner: S) -> BatchedIo<S> {
        BatchedIo {
            inner,
            ahead: Vec::new(),
            taken: 0,
            behind: Vec::new(),
            sent: 0,
            wrote: false,
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

impl<S: AsyncWrite + Unpin> BatchedIo<S> {
    /// Sends what waits for the flush, all of it or `Pending`; frees the buffer.
    fn push_behind(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.behind.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.behind[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.behind = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Keeps `bufs` for the flush, sending what already waits first if it is at its
    /// bound.
    fn hold(&mut self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        if self.behind.len() >= MAX_BEHIND {
            ready!(self.push_behind(cx))?;
        }
        let mut n = 0;
        for buf in bufs {
            self.behind.extend_from_slice(buf);
            n += buf.len();
        }
        Poll::Ready(Ok(n))
    }

    /// Sends what waits, so the next write starts a batch.
    fn end_batch(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.push_behind(cx))?;
        self.wrote = false;
        Poll::Ready(Ok(()))
    }

    /// Whether this write goes straight to the socket: the batch's first.
    fn straight(&self) -> bool {
        !self.wrote && self.behind.is_empty()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BatchedIo<S> {
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

impl<S: AsyncWrite + Unpin> AsyncWrite for BatchedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if me.straight() {
            let n = ready!(Pin::new(&mut me.inner).poll_write(cx, buf))?;
            me.wrote = true;
            return Poll::Ready(Ok(n));
        }
        me.hold(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if me.straight() {
            let n = ready!(Pin::new(&mut me.inner).poll_write_vectored(cx, bufs))?;
            me.wrote = true;
            return Poll::Ready(Ok(n));
        }
        me.hold(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.end_batch(cx))?;
        Pin::new(&mut me.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.end_batch(cx))?;
        Pin::new(&mut me.inner).poll_shutdown(cx)
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
        let mut stream = BatchedIo::new(near);
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
        let mut stream = BatchedIo::new(near);
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

    /// A socket stand-in that keeps what reaches it and counts the writes. A slow one
    /// takes at most 1,000 bytes a call and says "not now" every other call, as a slow
    /// peer's full send buffer does.
    #[derive(Default)]
    struct Socket {
        slow: bool,
        calls: usize,
        writes: usize,
        bytes: Vec<u8>,
    }

    impl Socket {
        fn slow() -> Socket {
            Socket {
                slow: true,
                ..Socket::default()
            }
        }
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let me = self.get_mut();
            me.calls += 1;
            if me.slow && me.calls.is_multiple_of(2) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = if me.slow {
                buf.len().min(1000)
            } else {
                buf.len()
            };
            me.writes += 1;
            me.bytes.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn the_writes_between_two_flushes_reach_the_socket_in_two_pieces() {
        let mut stream = BatchedIo::new(Socket::default());
        // A lone frame goes straight out.
        stream.write_all(b"one").await.unwrap();
        stream.flush().await.unwrap();
        assert_eq!(stream.inner.writes, 1);
        // A batch: the first straight out, the rest together at the flush.
        for frame in [&b"two"[..], b"three", b"four", b"five"] {
            stream.write_all(frame).await.unwrap();
        }
        assert_eq!(
            stream.inner.writes, 2,
            "only the batch's first before the flush"
        );
        stream.flush().await.unwrap();
        assert_eq!(stream.inner.writes, 3);
        assert_eq!(stream.inner.bytes, b"onetwothreefourfive");
        assert_eq!(stream.behind.capacity(), 0, "flushed: no buffer kept");
    }

    #[tokio::test]
    async fn a_long_batch_goes_out_before_it_grows_past_its_bound() {
        let mut stream = BatchedIo::new(Socket::default());
        let frame = vec![1u8; 2500];
        for _ in 0..100 {
            stream.write_all(&frame).await.unwrap();
            assert!(stream.behind.len() < MAX_BEHIND + frame.len());
        }
        stream.shutdown().await.unwrap();
        assert_eq!(stream.inner.bytes.len(), 250_000, "everything, in order");
        assert!(stream.inner.writes < 10, "{} writes", stream.inner.writes);
    }

    #[tokio::test]
    async fn a_slow_socket_gets_every_byte_in_order() {
        let mut stream = BatchedIo::new(Socket::slow());
        let mut sent = Vec::new();
        for batch in 0..20u32 {
            for frame in 0..(batch % 7 + 1) {
                let bytes: Vec<u8> = (0..(700 + 900 * frame)).map(|i| (i % 253) as u8).collect();
                stream.write_all(&bytes).await.unwrap();
                sent.extend_from_slice(&bytes);
            }
            stream.flush().await.unwrap();
            assert_eq!(stream.inner.bytes, sent, "after batch {batch}");
        }
        assert_eq!(stream.behind.capacity(), 0);
    }
}
