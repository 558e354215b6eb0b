//! [`RequestScope`]: the services of one request, built on first use and
//! released, exactly once and in reverse order, when the request ends.

use std::any::TypeId;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::Poll;

use crate::ambient::{self, Scoped, Slot};
use crate::lifetime::{Lifetime, LifetimeKind};
use crate::resolver::Resolver;
use crate::scope_budget::ScopeBudget;
use crate::service::AnyArc;
use crate::store::{Acquired, Report, Store, release_all};
use crate::wait_list::WaitList;
use crate::{Dep, Error, Exit, Provide, Registry, ServiceInfo};

static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// The services of one request.
///
/// An integration opens one per request, runs the request's futures inside
/// it, settles it when the handler has answered and closes it when the
/// response is finished ([`integration`](crate::integration)). Handlers
/// rarely see it: they ask for `Dep<T>` or `Lazy<T>`; [`current`](Self::current),
/// [`resolve`](Self::resolve) and [`bind`](Self::bind) are for code that
/// runs in a request without being an extractor.
///
/// Cloning is cheap and gives another handle to the same scope.
///
/// ```
/// use provision::{Dep, Error, Exit, Provide, Registry, Request};
/// use provision::integration::{RegistryControl, ScopeControl};
/// use http::StatusCode;
///
/// struct Counter(u32);
/// impl Provide for Counter {
///     type Lifetime = Request;
///     type Deps = ();
///     async fn build(_: ()) -> Result<Self, Error> { Ok(Counter(7)) }
/// }
///
/// # tokio_test_block_on(async {
/// let registry = Registry::builder().register::<Counter>().build().await?;
/// let scope = registry.open_scope();
/// let a = scope.resolve::<Counter>().await?;
/// let b = scope.resolve::<Counter>().await?;          // memoised: same value
/// assert!(std::sync::Arc::ptr_eq(a.shared(), b.shared()));
/// drop((a, b));
/// scope.close(Exit::Success(StatusCode::OK)).await;
/// assert_eq!(registry.probe().releases::<Counter>(), 1);
/// # Ok::<(), Error>(()) }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } }
/// # }
/// ```
#[derive(Clone)]
pub struct RequestScope {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    store: Store,
    id: u64,
    /// Made when the first request-bound value is: most requests never need
    /// one, and it is the one thing that must outlive the scope.
    mark: OnceLock<Arc<ScopeMark>>,
    settled: AtomicBool,
    closing: AtomicBool,
    /// Set once the registry has been told this scope is over, so that a
    /// close interrupted halfway and the final drop do not both tell it.
    finished: AtomicBool,
    tasks: Mutex<Tasks>,
    /// The span current when the scope opened (the request's): the parent
    /// of its settle and release spans (`span.rs`).
    span: tracing::Span,
    /// Made when a budget first applies to this scope (`scope_budget.rs`):
    /// a scope without one pays one atomic load per build.
    budget: OnceLock<Box<ScopeBudget>>,
}

impl Inner {
    fn finish(&self) {
        if !self.finished.swap(true, Ordering::AcqRel) {
            if let Some(mark) = self.mark.get() {
                mark.ended.store(true, Ordering::Release);
            }
            self.registry.scope_closed();
        }
    }
}

/// What a [`RequestBound`](crate::RequestBound) value keeps of the request
/// that created it: its number, and whether it has ended.
pub(crate) struct ScopeMark {
    pub(crate) id: u64,
    pub(crate) ended: AtomicBool,
}

#[derive(Default)]
struct Tasks {
    running: usize,
    waiters: WaitList,
}

impl RequestScope {
    pub(crate) fn open(registry: Registry) -> RequestScope {
        let id = NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed);
        RequestScope {
            inner: Arc::new(Inner {
                registry,
                store: Store::new(),
                id,
                mark: OnceLock::new(),
                settled: AtomicBool::new(false),
                closing: AtomicBool::new(false),
                finished: AtomicBool::new(false),
                tasks: Mutex::new(Tasks::default()),
                span: crate::span::capture(),
                budget: OnceLock::new(),
            }),
        }
    }

    /// The scope being polled on this thread right now, if any: the scope of
    /// the request whose handler, middleware or body is running.
    pub fn current() -> Option<RequestScope> {
        ambient::current()
    }

    /// This request's number, unique in the process. Error messages use it
    /// to name requests.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The registry this scope was opened from.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub(crate) fn mark(&self) -> &Arc<ScopeMark> {
        self.inner.mark.get_or_init(|| {
            Arc::new(ScopeMark {
                id: self.inner.id,
                ended: AtomicBool::new(self.inner.finished.load(Ordering::Acquire)),
            })
        })
    }

    /// The service `T` for this request: the app's value for an app service,
    /// this request's (built now if it is the first to ask) for a request
    /// service, a new one for a transient.
    pub async fn resolve<T: Provide>(&self) -> Result<Dep<T>, Error> {
        match <T::Lifetime as Lifetime>::KIND {
            LifetimeKind::App => self.inner.registry.resolve_app::<T>().await,
            LifetimeKind::Request => {
                if let Some(value) = self.inner.store.get(TypeId::of::<T>()) {
                    return Ok(downcast(value));
                }
                self.build_shared::<T>().await
            }
            LifetimeKind::Transient => self.build_transient::<T>().await,
        }
    }

    /// As [`resolve`](Self::resolve), for a caller that has just found no
    /// memoised value ([`cached`](Self::cached) said `None`): skips looking
    /// again before building. The build itself still finds a value another
    /// task finished meanwhile.
    pub(crate) async fn resolve_uncached<T: Provide>(&self) -> Result<Dep<T>, Error> {
        match <T::Lifetime as Lifetime>::KIND {
            LifetimeKind::App => self.inner.registry.resolve_app::<T>().await,
            LifetimeKind::Request => self.build_shared::<T>().await,
            LifetimeKind::Transient => self.build_transient::<T>().await,
        }
    }

    /// A handle that builds service `T` in this scope when it is first
    /// used ([`Lazy::get`](crate::Lazy::get)), not now.
    pub fn lazy<T: Provide>(&self) -> crate::Lazy<T> {
        crate::Lazy::new(self.clone())
    }

    /// The value of `T` if it can be had without building anything: an app
    /// service, or a request service this request already built.
    pub fn cached<T: Provide>(&self) -> Option<Dep<T>> {
        match <T::Lifetime as Lifetime>::KIND {
            LifetimeKind::App => self.inner.registry.cached_app::<T>(),
            LifetimeKind::Request => self.inner.store.get(TypeId::of::<T>()).map(downcast),
            LifetimeKind::Transient => None,
        }
    }

    /// This scope's budget, if one applies: made on first use from the
    /// registry's default, or by a route's layer ([`apply_budget`](Self::apply_budget)).
    #[inline]
    fn budget(&self) -> Option<&ScopeBudget> {
        if let Some(budget) = self.inner.budget.get() {
            return Some(budget);
        }
        let default = self.inner.registry.default_budget()?;
        Some(
            self.inner
                .budget
                .get_or_init(|| Box::new(ScopeBudget::new(Some(default)))),
        )
    }

    /// Puts this scope under `budget` as well as the registry's default
    /// (its limits win where both set one). What a route's budget layer
    /// does when its route is called.
    pub(crate) fn apply_budget(&self, budget: &crate::Budget) {
        let default = self.inner.registry.default_budget();
        self.inner
            .budget
            .get_or_init(|| Box::new(ScopeBudget::new(default)))
            .apply(budget);
    }

    /// The budgets that apply to this scope, the registry's first.
    pub(crate) fn budgets(&self) -> Vec<crate::Budget> {
        self.budget().map(ScopeBudget::budgets).unwrap_or_default()
    }

    /// Builds (or waits for) request service `info` under `budget`.
    async fn build_budgeted(
        &self,
        budget: &ScopeBudget,
        info: &'static ServiceInfo,
        stats: &Arc<crate::probe::ServiceStats>,
        transient: bool,
    ) -> Result<AnyArc, Error> {
        let registry = &self.inner.registry;
        let build = || {
            budget.build(registry, info, stats, || {
                registry.build_value(info, stats, Resolver::request(self))
            })
        };
        let acquisition = move || async move {
            if transient {
                let built = build().await?;
                let acquired = Acquired {
                    info,
                    value: built.value,
                    stats: stats.clone(),
                    built_at: built.at,
                };
                self.inner.store.record(acquired, self.report()).await
            } else {
                self.inner
                    .store
                    .get_or_build(info, stats, self.report(), build)
                    .await
            }
        };
        budget.timed(registry, info, stats, acquisition).await
    }

    async fn build_shared<T: Provide>(&self) -> Result<Dep<T>, Error> {
        let info = ServiceInfo::of::<T>();
        let registry = &self.inner.registry;
        let stats = registry.prepare(info)?;
        if let Some(budget) = self.budget() {
            // Boxed: its future is larger, and the path without a budget
            // (every request of most apps) should not carry its size.
            return Box::pin(self.build_budgeted(budget, info, &stats, false))
                .await
                .map(downcast);
        }
        let value = self
            .inner
            .store
            .get_or_build(info, &stats, self.report(), || {
                registry.build_value(info, &stats, Resolver::request(self))
            })
            .await?;
        Ok(downcast(value))
    }

    async fn build_transient<T: Provide>(&self) -> Result<Dep<T>, Error> {
        let info = ServiceInfo::of::<T>();
        let registry = &self.inner.registry;
        let stats = registry.prepare(info)?;
        if self.inner.store.is_closed() {
            return Err(Error::new(format!(
                "cannot build `{}`: its scope has already ended",
                info.name()
            )));
        }
        if let Some(budget) = self.budget() {
            // Boxed: its future is larger, and the path without a budget
            // (every request of most apps) should not carry its size.
            return Box::pin(self.build_budgeted(budget, info, &stats, true))
                .await
                .map(downcast);
        }
        let built = registry
            .build_value(info, &stats, Resolver::request(self))
            .await?;
        // The store takes the only handle: if the scope closed while this
        // was being built, it must be able to release the value itself.
        let acquired = Acquired {
            info,
            value: built.value,
            stats,
            built_at: built.at,
        };
        let value = self.inner.store.record(acquired, self.report()).await?;
        Ok(downcast(value))
    }

    /// Who hears of the releases this scope runs: the registry's observer,
    /// and the request's span.
    fn report(&self) -> Report<'_> {
        Report {
            observer: self.inner.registry.observer(),
            span: &self.inner.span,
        }
    }

    /// The span current when this scope opened (the request's), or none
    /// when provision's spans are off.
    pub(crate) fn span(&self) -> &tracing::Span {
        &self.inner.span
    }

    /// Puts a value for request service `T` in this scope without building
    /// it. Integrations seed what comes with the request itself, such as the
    /// [`RequestHead`](crate::RequestHead); a seeded value has no release
    /// step. Does nothing if `T` is already in the scope.
    pub(crate) fn seed<T: Provide>(&self, value: T) {
        self.inner
            .store
            .seed(TypeId::of::<T>(), Arc::new(value) as AnyArc);
    }

    /// Whether `T` has a value in this scope (built or seeded).
    pub(crate) fn contains<T: Provide>(&self) -> bool {
        self.inner.store.get(TypeId::of::<T>()).is_some()
    }

    /// Whether anything was built in this scope. An integration can skip all
    /// end-of-request work when nothing was.
    pub(crate) fn has_acquisitions(&self) -> bool {
        self.inner.store.has_acquisitions()
    }

    /// Wraps `future` so that it runs inside this scope, for work a handler
    /// hands to another task. Values bound to this request may be used
    /// there, and the scope waits for the future to finish (or be dropped)
    /// before it releases anything, like `waitUntil` on Cloudflare Workers.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), provision::Error> {
    /// use provision::{Exit, Registry, RequestScope};
    /// use provision::integration::{RegistryControl, ScopeControl};
    ///
    /// let registry = Registry::builder().build().await?;
    /// let scope = registry.open_scope();
    /// let task = tokio::spawn(scope.bind(async { RequestScope::current().map(|s| s.id()) }));
    /// assert_eq!(task.await.unwrap(), Some(scope.id()), "the task runs inside the request");
    /// scope.close(Exit::Cancelled).await;
    /// # Ok(()) }
    /// ```
    pub fn bind<F>(&self, future: F) -> Scoped<F> {
        let task = TaskGuard::new(self.clone());
        Scoped::new(Slot::Open(self.clone()), future, Some(task))
    }

    /// Wraps `future` so that it runs inside this scope, without holding the
    /// scope's release back: for the integration's own request future.
    pub(crate) fn enter_while<F>(self, future: F) -> Scoped<F> {
        Scoped::new(Slot::Open(self), future, None)
    }

    /// Runs `f` inside this scope (for synchronous work such as polling a
    /// response body).
    pub(crate) fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let mut slot = Some(Slot::Open(self.clone()));
        ambient::enter_slot(&mut slot, f)
    }

    /// Runs every acquired service's [`settle`](Provide::settle) step, newest
    /// first, once the handler has answered and before the answer is sent.
    /// Returns the first error; every step runs regardless, and once one has
    /// failed the steps after it are told the request failed
    /// (`Exit::Failure` with the error's status, 500 if it has none), since
    /// that failure is what the client will hear. Runs at most once per
    /// scope; later calls return `Ok`.
    pub(crate) async fn settle(&self, exit: Exit) -> Result<(), Error> {
        if self.inner.settled.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Only what was acquired before settling began is settled, newest
        // first; the store is append-only until it closes, so indices stay
        // put and no copy of the list is needed.
        let acquired = self.inner.store.acquired_len();
        let mut first_error = None;
        let store = &self.inner.store;
        let settle_all = async {
            let mut exit = exit;
            for index in (0..acquired).rev() {
                let Some((info, value)) = store.acquired_at(index) else {
                    // Closed meanwhile: release has taken over.
                    break;
                };
                let span = crate::span::settle(info, exit, &self.inner.span);
                let step = span.in_scope(|| {
                    crate::catch_unwind::CatchUnwind::new((info.settle)(&value, exit))
                });
                let bounds = self.inner.registry.step_bounds();
                let step = crate::step_bound::bounded(bounds, info, step);
                let error = match tracing::Instrument::instrument(step, span.clone()).await {
                    Ok(Ok(Ok(()))) => continue,
                    Ok(Ok(Err(error))) => error,
                    Ok(Err(panic)) => Error::new(format!(
                        "settling `{}` panicked: {}",
                        info.name(),
                        crate::catch_unwind::panic_message(&*panic)
                    )),
                    Err(bound) => self.settle_abandoned(info, bound),
                };
                self.settle_failed(info, &span, &error);
                match error.status() {
                    Some(status) if status.is_client_error() => {
                        tracing::debug!(service = info.name(), %error, "settle refused")
                    }
                    Some(_) => tracing::warn!(service = info.name(), %error, "settle failed"),
                    None => tracing::error!(service = info.name(), %error, "settle failed"),
                }
                if first_error.is_none() {
                    // The answer becomes this error: an older service (the
                    // transaction a newer one wrote through) must not keep
                    // work the client is told failed.
                    exit = Exit::Failure(
                        error
                            .status()
                            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
                    );
                    first_error = Some(error);
                }
            }
        };
        self.clone().enter_while(settle_all).await;
        match first_error {
            None => Ok(()),
            Some(error) => Err(error),
        }
    }

    /// Counts and reports a failed settle step (and records it on its span).
    fn settle_failed(&self, info: &'static ServiceInfo, span: &tracing::Span, error: &Error) {
        let registry = &self.inner.registry;
        if let Some(stats) = registry.existing_stats(info) {
            stats.record_settle_failure();
        }
        crate::span::record_error(span, error);
        if let Some(observer) = registry.observer() {
            observer.settle_failed(info, error);
        }
    }

    /// Counts, logs and reports a settle step that overran its bound, and
    /// the error the request then fails with: the work it was settling may
    /// or may not have been kept, so the client must not hear a success.
    fn settle_abandoned(&self, info: &'static ServiceInfo, bound: std::time::Duration) -> Error {
        let registry = &self.inner.registry;
        if let Some(stats) = registry.existing_stats(info) {
            stats.record_abandoned(crate::Step::Settle);
        }
        tracing::error!(
            service = info.name(),
            ?bound,
            "settle step abandoned: it did not finish within its bound"
        );
        if let Some(observer) = registry.observer() {
            observer.abandoned(info, crate::Step::Settle, bound);
        }
        Error::new(format!(
            "`{}` did not settle within {bound:?}; the outcome of the request is unknown",
            info.name()
        ))
        .with_status(http::StatusCode::SERVICE_UNAVAILABLE)
    }

    /// Ends the scope: waits for tasks bound to it, then releases everything
    /// acquired, newest first, each exactly once, telling each how the
    /// request ended. Nothing can be built in the scope afterwards, and
    /// request-bound values from it refuse to be used. Only the first call
    /// does anything.
    pub(crate) async fn close(&self, exit: Exit) {
        if self.inner.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.wait_for_tasks().await;
        let acquired = self.inner.store.close();
        if !acquired.is_empty() {
            let bounds = self.inner.registry.step_bounds();
            self.clone()
                .enter_while(release_all(acquired, exit, self.report(), bounds))
                .await;
        }
        // Group slots are given back once what took them is released.
        if let Some(budget) = self.inner.budget.get() {
            drop(budget.take_permits());
        }
        self.inner.finish();
    }

    /// Closes a scope that has nothing to release, without a future: the
    /// fast path for requests that asked for no service. Returns `false`
    /// (and does nothing) if something was acquired or tasks are bound to
    /// the scope; use [`close`](crate::integration::ScopeControl::close) then.
    pub(crate) fn close_if_idle(&self) -> bool {
        {
            let tasks = self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if tasks.running > 0 {
                return false;
            }
        }
        if self.inner.closing.load(Ordering::Acquire) {
            return false;
        }
        if !self.inner.store.close_if_empty() {
            return false;
        }
        if self.inner.closing.swap(true, Ordering::AcqRel) {
            // A concurrent `close` found the store already closed and empty.
            return true;
        }
        self.inner.finish();
        true
    }

    /// Whether [`close`](crate::integration::ScopeControl::close) has started.
    pub(crate) fn is_closing(&self) -> bool {
        self.inner.closing.load(Ordering::Acquire)
    }

    async fn wait_for_tasks(&self) {
        poll_fn(|cx| {
            let mut tasks = self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if tasks.running == 0 {
                Poll::Ready(())
            } else {
                tasks.waiters.register(cx.waker());
                Poll::Pending
            }
        })
        .await
    }
}

impl std::fmt::Debug for RequestScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestScope")
            .field("id", &self.id())
            .field("closing", &self.is_closing())
            .finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.closing.load(Ordering::Acquire) {
            self.finish();
            return;
        }
        // Nobody closed this scope (an integration bug, or a scope opened by
        // hand and forgotten). Async release steps cannot run from here.
        let leftovers = self.store.close();
        let observer = self.registry.observer();
        for acquired in &leftovers {
            acquired.stats.record_escape();
            if let Some(observer) = observer {
                observer.escaped(acquired.info);
            }
            tracing::error!(
                service = acquired.info.name(),
                request = self.id,
                "request scope dropped without being closed; this value was never released"
            );
        }
        self.finish();
    }
}

/// Holds a scope's release back while a bound task runs.
pub(crate) struct TaskGuard {
    scope: RequestScope,
}

impl TaskGuard {
    fn new(scope: RequestScope) -> TaskGuard {
        scope
            .inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .running += 1;
        TaskGuard { scope }
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        let waiters = {
            let mut tasks = self
                .scope
                .inner
                .tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            tasks.running -= 1;
            if tasks.running == 0 {
                std::mem::take(&mut tasks.waiters)
            } else {
                WaitList::default()
            }
        };
        waiters.wake_all();
    }
}

pub(crate) fn downcast<T: Provide>(value: AnyArc) -> Dep<T> {
    Dep(value
        .downcast::<T>()
        .unwrap_or_else(|_| unreachable!("scopes store each service under its own TypeId")))
}
