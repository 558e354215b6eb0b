//! [`Isolate`]: a value built once per isolate, on first use.

use std::future::Future;
use std::sync::OnceLock;

/// A value that lives as long as the isolate (a Worker's app services, its
/// router), built on first use.
///
/// Declare it as a `static`: Workers statics are per isolate, and they are
/// wiped with the rest of the Wasm state when the instance is reset after a
/// trap, so the value is simply built again. A failed build is not kept:
/// the next request tries again.
///
/// **No request waits on another.** Every request that finds the cell
/// empty builds its own value; the first to finish is kept, and the values
/// of the others are dropped. In workerd a continuation woken from another
/// request's context runs in that context (or not at all, once that
/// request is gone), and a request cut off by its client mid-build is never
/// resumed, so a build shared between requests could leave every later
/// request waiting for ever. Racing builds cost a cold start some
/// duplicate work, once per isolate, and nothing else.
///
/// The value must not hold I/O objects: the request that builds it owns
/// any socket opened then, and a value built twice is dropped without
/// ceremony.
///
/// ```
/// use provision_worker::Isolate;
///
/// static GREETING: Isolate<String> = Isolate::new();
///
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } }
/// # }
/// # block_on(async {
/// let first = GREETING.get_or_try_init(|| async { Ok::<_, String>("hello".to_owned()) }).await?;
/// let again = GREETING.get_or_try_init(|| async { Err("not called".to_owned()) }).await?;
/// assert!(std::ptr::eq(first, again));
/// # Ok::<(), String>(()) }).unwrap();
/// ```
pub struct Isolate<T> {
    value: OnceLock<T>,
}

impl<T> Isolate<T> {
    /// An empty cell.
    pub const fn new() -> Self {
        Isolate {
            value: OnceLock::new(),
        }
    }

    /// The value, if it has been built.
    pub fn get(&self) -> Option<&T> {
        self.value.get()
    }

    /// The value; if there is none yet, built by `init` in this request.
    ///
    /// Requests that ask at the same time each run their own `init`, and
    /// the first to succeed wins: every caller gets that value, and a value
    /// built later is dropped. A failure is returned to its own caller only
    /// and not kept.
    pub async fn get_or_try_init<F, Fut, E>(&self, init: F) -> Result<&T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(value) = self.value.get() {
            return Ok(value);
        }
        let built = init().await?;
        // Another request may have finished first: keep its value.
        Ok(self.value.get_or_init(|| built))
    }
}

impl<T> Default for Isolate<T> {
    fn default() -> Self {
        Isolate::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::pin::pin;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::task::{Context, Poll, Waker};

    fn poll<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn racing_asks_each_build_and_the_first_to_finish_is_kept() {
        static CELL: Isolate<u32> = Isolate::new();
        let builds = AtomicU32::new(0);
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let mut slow = pin!(CELL.get_or_try_init(|| {
            let builds = &builds;
            async move {
                builds.fetch_add(1, Ordering::SeqCst);
                // Suspends until the test opens the gate.
                poll_fn(|_| match gate_rx.try_recv() {
                    Ok(()) => Poll::Ready(()),
                    Err(_) => Poll::Pending,
                })
                .await;
                Ok::<_, ()>(7)
            }
        }));
        assert!(poll(slow.as_mut()).is_pending());
        // The second ask does not wait for the first: it builds and wins.
        let fast = pin!(CELL.get_or_try_init(|| {
            builds.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, ()>(99) }
        }));
        assert_eq!(poll(fast), Poll::Ready(Ok(&99)));
        gate_tx.send(()).unwrap();
        assert_eq!(
            poll(slow.as_mut()),
            Poll::Ready(Ok(&99)),
            "the later build is dropped"
        );
        assert_eq!(builds.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_failed_build_is_not_kept() {
        static CELL: Isolate<u32> = Isolate::new();
        let failed = pin!(CELL.get_or_try_init(|| async { Err::<u32, _>("down") }));
        assert_eq!(poll(failed), Poll::Ready(Err("down")));
        assert!(CELL.get().is_none());
        let built = pin!(CELL.get_or_try_init(|| async { Ok::<_, &str>(1) }));
        assert_eq!(poll(built), Poll::Ready(Ok(&1)));
    }

    #[test]
    fn a_build_never_resumed_blocks_no_one() {
        static CELL: Isolate<u32> = Isolate::new();
        // A request cut off mid-build: on Workers its future is neither
        // polled again nor dropped.
        let mut abandoned = Box::pin(CELL.get_or_try_init(std::future::pending::<Result<u32, ()>>));
        assert!(poll(abandoned.as_mut()).is_pending());
        let built = pin!(CELL.get_or_try_init(|| async { Ok::<_, ()>(2) }));
        assert_eq!(poll(built), Poll::Ready(Ok(&2)));
        std::mem::forget(abandoned);
    }
}
