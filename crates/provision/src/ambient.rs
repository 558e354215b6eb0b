//! The request scope being polled right now, per thread.
//!
//! A scope is *entered* while its request's futures are polled, the way a
//! tracing span is. That is what lets extractors find their scope without a
//! map lookup, and what lets [`RequestBound`](crate::RequestBound) tell
//! which request is using a value: the same rule Cloudflare Workers applies
//! to I/O objects, checked on every platform.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::RequestScope;

thread_local! {
    static CURRENT: Cell<Option<RequestScope>> = const { Cell::new(None) };
}

/// Runs `f` with the scope in `slot` entered. The scope is moved into the
/// thread-local and back, so entering costs no reference counting.
pub(crate) fn enter_slot<R>(slot: &mut Option<RequestScope>, f: impl FnOnce() -> R) -> R {
    struct Restore<'a> {
        slot: &'a mut Option<RequestScope>,
        previous: Option<RequestScope>,
    }
    impl Drop for Restore<'_> {
        // Runs on unwind too, so a panicking poll cannot leave its scope
        // entered for whatever runs next on this thread.
        fn drop(&mut self) {
            *self.slot = CURRENT.replace(self.previous.take());
        }
    }
    let previous = CURRENT.replace(slot.take());
    let _restore = Restore { slot, previous };
    f()
}

/// A clone of the entered scope, if any.
pub(crate) fn current() -> Option<RequestScope> {
    CURRENT.with(|cell| {
        let scope = cell.take();
        let clone = scope.clone();
        cell.set(scope);
        clone
    })
}

/// Calls `f` with a reference to the entered scope, without cloning it.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&RequestScope>) -> R) -> R {
    CURRENT.with(|cell| {
        let scope = cell.take();
        let out = f(scope.as_ref());
        cell.set(scope);
        out
    })
}

pin_project_lite::pin_project! {
    /// A future that enters its request scope each time it is polled.
    ///
    /// Made by [`RequestScope::bind`] (for tasks spawned from a handler: the
    /// scope waits for them before it releases anything) and by integrations
    /// with [`RequestScope::enter_while`] (for the request's own future).
    pub struct Scoped<F> {
        #[pin]
        future: F,
        scope: Option<RequestScope>,
        task: Option<crate::scope::TaskGuard>,
    }
}

impl<F> Scoped<F> {
    pub(crate) fn new(
        scope: RequestScope,
        future: F,
        task: Option<crate::scope::TaskGuard>,
    ) -> Self {
        Scoped {
            future,
            scope: Some(scope),
            task,
        }
    }

    /// The scope this future runs in (`None` once taken).
    pub fn scope(&self) -> Option<&RequestScope> {
        self.scope.as_ref()
    }

    /// Takes the scope out, typically once the future has completed, so the
    /// integration can settle and close it without another reference count.
    /// Polling afterwards runs the future outside any scope.
    pub fn take_scope(self: Pin<&mut Self>) -> Option<RequestScope> {
        self.project().scope.take()
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let future = this.future;
        let output = enter_slot(this.scope, || future.poll(cx));
        if output.is_ready() {
            // The task is done: stop holding the scope's release back.
            this.task.take();
        }
        output
    }
}
