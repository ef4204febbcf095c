//! A stream that notes when bytes last moved on it, for the HTTP idle timeout.
//!
//! hyper's own timer covers the wait for a request's head; it has nothing for a connection
//! stuck later (a body announced and never sent, a download whose client stops reading), so
//! the connection task compares this stamp with `http.idle_timeout_secs`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// When bytes last moved, in milliseconds since the connection opened; shared between the
/// stream (which writes it) and the connection's watchdog (which reads it).
#[derive(Clone)]
pub struct LastActivity {
    origin: Instant,
    millis: Arc<AtomicU64>,
}

impl LastActivity {
    /// Starts the clock now.
    pub fn new() -> Self {
        LastActivity {
            origin: Instant::now(),
            millis: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.millis.store(now, Ordering::Relaxed);
    }

    /// The moment bytes last moved (the opening, when none have).
    pub fn at(&self) -> Instant {
        self.origin + std::time::Duration::from_millis(self.millis.load(Ordering::Relaxed))
    }
}

impl Default for LastActivity {
    fn default() -> Self {
        Self::new()
    }
}

/// `inner`, noting every read or write that moves at least one byte.
pub struct Watched<S> {
    inner: S,
    activity: LastActivity,
}

impl<S> Watched<S> {
    /// Wraps `inner`; `activity` is stamped on each transfer.
    pub fn new(inner: S, activity: LastActivity) -> Self {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
