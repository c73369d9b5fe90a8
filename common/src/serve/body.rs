//! Request bodies under a cap and a deadline, and the budget of body bytes
//! buffered at once.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The largest body each path takes: `default`, or the cap of the path's
/// entry.
#[derive(Debug, Clone)]
pub struct BodyCaps {
    pub default: usize,
    pub paths: Vec<(String, usize)>,
}

impl BodyCaps {
    pub fn new(default: usize) -> BodyCaps {
        BodyCaps {
            default,
            paths: Vec::new(),
        }
    }

    /// `cap` for each of `paths` (a later entry for a path wins).
    pub fn with(mut self, paths: &[&str], cap: usize) -> BodyCaps {
        self.paths
            .extend(paths.iter().map(|p| (p.to_string(), cap)));
        self
    }

    pub fn cap(&self, path: &str) -> usize {
        self.paths
            .iter()
            .rev()
            .find(|(p, _)| p == path)
            .map_or(self.default, |(_, c)| *c)
    }
}

/// `n` bytes as the 413's text says them.
pub fn human(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// Why a body was cut off (what the request's answer becomes).
#[derive(Debug, Default)]
pub struct Violation(AtomicU8);

const NONE: u8 = 0;
const TOO_LARGE: u8 = 1;
const TOO_SLOW: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    TooLarge,
    TooSlow,
}

impl Violation {
    fn set(&self, v: u8) {
        let _ = self
            .0
            .compare_exchange(NONE, v, Ordering::SeqCst, Ordering::SeqCst);
    }
    pub fn get(&self) -> Option<Cut> {
        match self.0.load(Ordering::SeqCst) {
            TOO_LARGE => Some(Cut::TooLarge),
            TOO_SLOW => Some(Cut::TooSlow),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body larger than {}", human(*.0))]
    TooLarge(usize),
    #[error("request body not received within {0:?}")]
    TooSlow(Duration),
    #[error(transparent)]
    Transport(#[from] hyper::Error),
}

/// The connection's body, failing once more than `cap` bytes arrived or
/// `deadline` passed; the failure is also noted in `cut`.
pub struct Guarded {
    inner: hyper::body::Incoming,
    cap: usize,
    seen: usize,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    cut: Arc<Violation>,
}

impl Guarded {
    pub fn new(
        inner: hyper::body::Incoming,
        cap: usize,
        timeout: Duration,
        cut: Arc<Violation>,
    ) -> Guarded {
        Guarded {
            inner,
            cap,
            seen: 0,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            cut,
        }
    }
}

impl Body for Guarded {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.cut.set(TOO_SLOW);
            return Poll::Ready(Some(Err(BodyError::TooSlow(this.timeout))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len());
                    if this.seen > this.cap {
                        this.cut.set(TOO_LARGE);
                        return Poll::Ready(Some(Err(BodyError::TooLarge(this.cap))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Bytes of request bodies buffered at once: small bodies (up to the
/// default cap) share one pool, larger ones another sized for one of the
/// largest, so eight concurrent big bodies are read one after the other
/// instead of all at once, and never delay the small ones.
#[derive(Debug, Clone)]
pub struct Budget {
    small: Pool,
    large: Pool,
    small_cap: usize,
}

#[derive(Debug, Clone)]
struct Pool {
    permits: Arc<tokio::sync::Semaphore>,
    total: usize,
}

impl Pool {
    fn new(total: usize) -> Pool {
        let total = total.clamp(1, u32::MAX as usize);
        Pool {
            permits: Arc::new(tokio::sync::Semaphore::new(total)),
            total,
        }
    }
}

impl Budget {
    pub fn new(small_total: usize, large_total: usize, small_cap: usize) -> Budget {
        Budget {
            small: Pool::new(small_total),
            large: Pool::new(large_total),
            small_cap,
        }
    }

    /// Room for `bytes` of a body whose path takes up to `cap`; waits at
    /// most `wait`. None: no room in time.
    pub async fn reserve(
        &self,
        bytes: usize,
        cap: usize,
        wait: Duration,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let pool = if cap > self.small_cap {
            &self.large
        } else {
            &self.small
        };
        // Never more than the pool holds, else the wait would be forever.
        let n = bytes.clamp(1, pool.total) as u32;
        tokio::time::timeout(wait, pool.permits.clone().acquire_many_owned(n))
            .await
            .ok()?
            .ok()
    }
}

/// An answer's body that keeps `held` until it is written (or dropped).
pub struct Holding<T> {
    inner: axum::body::Body,
    _held: T,
}

impl<T> Holding<T> {
    pub fn new(inner: axum::body::Body, held: T) -> Holding<T> {
        Holding { inner, _held: held }
    }
}

impl<T: Unpin> Body for Holding<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
