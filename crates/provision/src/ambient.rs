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

use crate::{Registry, RequestScope};

/// What is entered on a thread: a request that has not asked for anything
/// yet (its scope opens on first use, so a request that never asks pays for
/// no scope at all), or an open scope.
pub(crate) enum Slot {
    Pending(Registry),
    Open(RequestScope),
    /// An app service is being built: outside any request. Request-bound
    /// values created here are noted, so the registry can refuse the service.
    AppBuild(std::sync::Arc<AppBuildWatch>),
}

/// What an app service's build created that it must not hold.
#[derive(Default)]
pub(crate) struct AppBuildWatch {
    request_bound: std::sync::Mutex<Vec<&'static str>>,
}

impl AppBuildWatch {
    pub(crate) fn request_bound(&self) -> Vec<&'static str> {
        self.request_bound
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Notes that a request-bound value named `name` is being created, if an
/// app service is being built on this thread.
pub(crate) fn note_request_bound(name: impl FnOnce() -> &'static str) {
    CURRENT.with(|cell| {
        let slot = cell.take();
        if let Some(Slot::AppBuild(watch)) = &slot {
            watch
                .request_bound
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(name());
        }
        cell.set(slot);
    })
}

thread_local! {
    static CURRENT: Cell<Option<Slot>> = const { Cell::new(None) };
}

/// Runs `f` with `slot` entered. The slot is moved into the thread-local and
/// back, so entering costs no reference counting.
pub(crate) fn enter_slot<R>(slot: &mut Option<Slot>, f: impl FnOnce() -> R) -> R {
    struct Restore<'a> {
        slot: &'a mut Option<Slot>,
        previous: Option<Slot>,
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

/// A clone of the entered scope, if any (opening a pending one).
pub(crate) fn current() -> Option<RequestScope> {
    with_current(|scope| scope.cloned())
}

/// The registry of the request entered on this thread, if any, without
/// opening its scope (an error response needs the application's format, not
/// a scope; a `finish` route needs only the registry to open its own).
pub(crate) fn registry() -> Option<Registry> {
    CURRENT.with(|cell| {
        let slot = cell.take();
        let registry = match &slot {
            Some(Slot::Pending(registry)) => Some(registry.clone()),
            Some(Slot::Open(scope)) => Some(scope.registry().clone()),
            _ => None,
        };
        cell.set(slot);
        registry
    })
}

/// The budgets of the request entered on this thread if its scope is
/// already open (a budget layer opened it), else none; never opens it.
pub(crate) fn budgets() -> Vec<crate::Budget> {
    CURRENT.with(|cell| {
        let slot = cell.take();
        let budgets = match &slot {
            Some(Slot::Open(scope)) => scope.budgets(),
            _ => Vec::new(),
        };
        cell.set(slot);
        budgets
    })
}

/// Calls `f` with a reference to the entered scope, without cloning it,
/// opening it first if the request has not opened it yet. `f` must not use
/// the ambient scope itself (it is taken out while `f` runs).
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&RequestScope>) -> R) -> R {
    CURRENT.with(|cell| {
        let mut slot = cell.take();
        if let Some(Slot::Pending(registry)) = &slot {
            slot = Some(Slot::Open(registry.open_scope()));
        }
        let out = f(match &slot {
            Some(Slot::Open(scope)) => Some(scope),
            _ => None,
        });
        cell.set(slot);
        out
    })
}

pin_project_lite::pin_project! {
    /// A future that enters its request scope each time it is polled.
    ///
    /// Made by [`RegistryControl::request`](crate::integration::RegistryControl::request)
    /// (an integration's request future: the scope opens when something
    /// first asks for a service), by [`RequestScope::bind`] (tasks spawned
    /// from a handler: the scope waits for them before it releases anything)
    /// and by [`ScopeControl::enter_while`](crate::integration::ScopeControl::enter_while).
    pub struct Scoped<F> {
        #[pin]
        future: F,
        slot: Option<Slot>,
        task: Option<crate::scope::TaskGuard>,
    }
}

impl<F> Scoped<F> {
    pub(crate) fn new(slot: Slot, future: F, task: Option<crate::scope::TaskGuard>) -> Self {
        Scoped {
            future,
            slot: Some(slot),
            task,
        }
    }

    /// The scope this future runs in, if it has been opened.
    pub fn scope(&self) -> Option<&RequestScope> {
        match &self.slot {
            Some(Slot::Open(scope)) => Some(scope),
            _ => None,
        }
    }

    /// The registry of the request this future runs, whether or not its
    /// scope has been opened (`None` only once the scope was taken out).
    pub fn registry(&self) -> Option<&Registry> {
        match &self.slot {
            Some(Slot::Open(scope)) => Some(scope.registry()),
            Some(Slot::Pending(registry)) => Some(registry),
            _ => None,
        }
    }

    /// Takes the scope out, typically once the future has completed, so the
    /// integration can settle and close it without another reference count.
    /// `None` if the request never opened one (it asked for nothing).
    /// Polling afterwards runs the future outside any scope.
    pub fn take_scope(self: Pin<&mut Self>) -> Option<RequestScope> {
        match self.project().slot.take() {
            Some(Slot::Open(scope)) => Some(scope),
            _ => None,
        }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let future = this.future;
        let output = enter_slot(this.slot, || future.poll(cx));
        if output.is_ready() {
            // The task is done: stop holding the scope's release back.
            this.task.take();
        }
        output
    }
}
