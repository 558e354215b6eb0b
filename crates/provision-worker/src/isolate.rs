//! [`Isolate`]: a value built once per isolate, on first use.

use std::future::{Future, poll_fn};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::task::{Poll, Waker};

/// A value that lives as long as the isolate (a Worker's app services, its
/// router), built by the first request that asks for it.
///
/// Declare it as a `static`: Workers statics are per isolate, and they are
/// wiped with the rest of the Wasm state when the instance is reset after a
/// panic, so the value is simply built again. A failed build is not kept:
/// the next request tries again.
///
/// The value must not hold I/O objects: the first request builds it, and a
/// socket opened then belongs to that request alone.
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
    /// `Some` while a build is running: the requests waiting for it.
    building: Mutex<Option<Vec<Waker>>>,
}

impl<T> Isolate<T> {
    /// An empty cell.
    pub const fn new() -> Self {
        Isolate {
            value: OnceLock::new(),
            building: Mutex::new(None),
        }
    }

    /// The value, if it has been built.
    pub fn get(&self) -> Option<&T> {
        self.value.get()
    }

    /// The value, built by `init` if this is the first ask. Concurrent asks
    /// while a build is running wait for it (they share its result if it
    /// succeeds; if it fails, the next one builds again).
    pub async fn get_or_try_init<F, Fut, E>(&self, init: F) -> Result<&T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut init = Some(init);
        loop {
            if let Some(value) = self.value.get() {
                return Ok(value);
            }
            let claimed = {
                let mut building = self.lock();
                if building.is_none() {
                    *building = Some(Vec::new());
                    true
                } else {
                    false
                }
            };
            if claimed {
                let _done = Done(self);
                let init = init
                    .take()
                    .expect("a build is claimed at most once per call");
                let value = init().await?;
                return Ok(self.value.get_or_init(|| value));
            }
            poll_fn(|cx| match &mut *self.lock() {
                Some(waiters) => {
                    waiters.push(cx.waker().clone());
                    Poll::Pending
                }
                None => Poll::Ready(()),
            })
            .await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<Waker>>> {
        self.building.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Default for Isolate<T> {
    fn default() -> Self {
        Isolate::new()
    }
}

/// Ends a build (finished, failed or abandoned) and wakes those waiting.
struct Done<'a, T>(&'a Isolate<T>);

impl<T> Drop for Done<'_, T> {
    fn drop(&mut self) {
        let waiters = self.0.lock().take().unwrap_or_default();
        waiters.into_iter().for_each(Waker::wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::task::Context;

    fn poll<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn concurrent_asks_share_one_build() {
        static CELL: Isolate<u32> = Isolate::new();
        let builds = AtomicU32::new(0);
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let mut first = pin!(CELL.get_or_try_init(|| {
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
        let mut second = pin!(CELL.get_or_try_init(|| async { Ok::<_, ()>(99) }));
        assert!(poll(first.as_mut()).is_pending());
        assert!(
            poll(second.as_mut()).is_pending(),
            "waits for the running build"
        );
        gate_tx.send(()).unwrap();
        assert_eq!(poll(first.as_mut()), Poll::Ready(Ok(&7)));
        assert_eq!(poll(second.as_mut()), Poll::Ready(Ok(&7)));
        assert_eq!(builds.load(Ordering::SeqCst), 1);
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
    fn an_abandoned_build_lets_the_next_ask_build() {
        static CELL: Isolate<u32> = Isolate::new();
        {
            let mut abandoned = pin!(CELL.get_or_try_init(std::future::pending::<Result<u32, ()>>));
            assert!(poll(abandoned.as_mut()).is_pending());
        }
        let built = pin!(CELL.get_or_try_init(|| async { Ok::<_, ()>(2) }));
        assert_eq!(poll(built), Poll::Ready(Ok(&2)));
    }
}
