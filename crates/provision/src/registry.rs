//! [`Registry`]: the services of an application, validated and with its app
//! services built at startup, and released at shutdown.

use std::any::TypeId;
use std::collections::{HashMap, HashSet};
use std::future::{Future, poll_fn};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::Poll;
use std::time::Duration;

use crate::Timer;
use crate::graph::{self, Graph};
use crate::lifetime::LifetimeKind;
use crate::probe::{Observer, Probe, ServiceStats};
use crate::resolver::Resolver;
use crate::scope::downcast;
use crate::service::{AnyArc, BoxFuture};
use crate::step_bound::{DEFAULT_STEP_TIMEOUT, StepBounds};
use crate::store::{Built, Report, Store, release_all};
use crate::wait_list::{KeyedWaitList, WaitList};
use crate::{Dep, Error, Exit, Provide, RequestHead, RequestScope, ServiceInfo};

type Override = Arc<dyn Fn() -> BoxFuture<'static, Result<AnyArc, Error>> + Send + Sync>;

type TypeIdMap<V> = HashMap<TypeId, V, BuildHasherDefault<TypeIdHasher>>;

/// Hashes a `TypeId` by keeping the bits it writes: a `TypeId` is itself a
/// hash of the type, so hashing it again (SipHash, the default) only costs
/// time, and these maps are read on every build of every request.
#[derive(Default)]
struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by `TypeId` today; correct (if slower) should it change.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The services of an application: built from a [`RegistryBuilder`], shared
/// by every request (cloning is cheap), and shut down once at the end.
///
/// Building a registry validates the dependency graph of everything
/// registered (a cycle is an error naming it) and builds every app service,
/// dependencies first. Request services are built later, per request, in a
/// [`RequestScope`].
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    registered: Vec<&'static ServiceInfo>,
    /// App values by type, read on every app-service lookup; written only
    /// when an app service is built and cleared at shutdown.
    app_ready: RwLock<Vec<(TypeId, AnyArc)>>,
    /// Owns app values and their release order.
    app_store: Store,
    overrides: TypeIdMap<Override>,
    /// Read on every build; written once per service type.
    known: RwLock<Known>,
    uses_request_head: AtomicBool,
    started: AtomicBool,
    open_scopes: AtomicUsize,
    shutting_down: AtomicBool,
    shutdown: Mutex<Shutdown>,
    observer: Option<Arc<dyn Observer>>,
    /// Bounds on settle and release steps; `None` without a timer.
    steps: Option<StepBounds>,
    /// The budget of every request scope, if the application set one.
    budget: Option<crate::Budget>,
    #[cfg(feature = "axum")]
    error_response: Option<crate::rejection::ErrorResponse>,
}

/// What the registry has learnt about the services it has met, under one
/// lock: which were validated, and the counters of those built.
#[derive(Default)]
struct Known {
    /// Services whose dependency closure has been checked for cycles.
    validated: HashSet<TypeId, BuildHasherDefault<TypeIdHasher>>,
    /// Counters by service, keyed without SipHash (see `TypeIdHasher`).
    /// A service has counters only once it was validated.
    stats: TypeIdMap<Arc<ServiceStats>>,
    /// The same counters in the order services were first built, for
    /// reports.
    order: Vec<Arc<ServiceStats>>,
}

#[derive(Default)]
struct Shutdown {
    /// Jobs and `finish` routes waiting to be cut when shutdown begins
    /// (`job.rs`); each leaves the list when it stops waiting.
    begun_waiters: KeyedWaitList,
    scope_waiters: WaitList,
    done: bool,
    done_waiters: WaitList,
}

/// Assembles a [`Registry`]: which services exist, values supplied from
/// outside, and (in tests) replacements for any service's constructor.
///
/// ```
/// use provision::{Dep, Error, Provide, Registry, Request, App};
///
/// struct Settings { url: String }
/// provision::supplied!(Settings);
///
/// struct Pool { url: String }
/// impl Provide for Pool {
///     type Lifetime = App;
///     type Deps = (Settings,);
///     async fn build((settings,): (Dep<Settings>,)) -> Result<Self, Error> {
///         Ok(Pool { url: settings.url.clone() })
///     }
/// }
///
/// struct Conn;
/// impl Provide for Conn {
///     type Lifetime = Request;
///     type Deps = (Pool,);
///     async fn build(_: (Dep<Pool>,)) -> Result<Self, Error> { Ok(Conn) }
/// }
///
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } }
/// # }
/// # block_on(async {
/// let registry = Registry::builder()
///     .supply(Settings { url: "postgres://localhost/app".into() })
///     .register::<Conn>()          // and, through it, Pool and Settings
///     .build()
///     .await?;
/// assert_eq!(
///     registry.graph().to_string(),
///     "Settings (app)\nPool (app) <- Settings\nConn (request) <- Pool\n"
/// );
/// # Ok::<(), Error>(()) }).unwrap();
/// ```
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct RegistryBuilder {
    roots: Vec<&'static ServiceInfo>,
    overrides: TypeIdMap<Override>,
    observer: Option<Arc<dyn Observer>>,
    timer: Option<Arc<dyn Timer>>,
    step_timeout: Duration,
    step_timeouts: HashMap<TypeId, Duration>,
    budget: Option<crate::Budget>,
    #[cfg(feature = "axum")]
    error_response: Option<crate::rejection::ErrorResponse>,
}

impl Registry {
    /// Starts assembling a registry.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder {
            roots: Vec::new(),
            overrides: TypeIdMap::default(),
            observer: None,
            timer: None,
            step_timeout: DEFAULT_STEP_TIMEOUT,
            step_timeouts: HashMap::new(),
            budget: None,
            #[cfg(feature = "axum")]
            error_response: None,
        }
    }

    /// Opens the scope of one request
    /// ([`RegistryControl::open_scope`](crate::integration::RegistryControl::open_scope)).
    pub(crate) fn open_scope(&self) -> RequestScope {
        self.inner.open_scopes.fetch_add(1, Ordering::SeqCst);
        RequestScope::open(self.clone())
    }

    /// Wraps the future of one request so that it runs inside that request's
    /// scope. The scope is opened only when something first asks for a
    /// service: a request that asks for nothing costs no scope. Take it
    /// back with [`Scoped::take_scope`](crate::integration::Scoped::take_scope) when the
    /// future completes, to settle and close it.
    pub(crate) fn request<F>(&self, future: F) -> crate::integration::Scoped<F> {
        crate::integration::Scoped::new(crate::ambient::Slot::Pending(self.clone()), future, None)
    }

    /// The value of app service `T`, if it has been built (every registered
    /// app service has, once [`RegistryBuilder::build`] returned) and the
    /// registry has not shut down.
    pub fn app<T: Provide<Lifetime = crate::App>>(&self) -> Option<Dep<T>> {
        self.cached_app::<T>()
    }

    /// The registered services and their dependencies.
    pub fn graph(&self) -> Graph {
        Graph::of(&self.inner.registered).expect("validated when the registry was built")
    }

    /// A reader of this registry's acquisition and release counters.
    pub fn probe(&self) -> Probe {
        Probe::new(self.clone())
    }

    /// Whether any known service depends on [`RequestHead`], so an
    /// integration must seed it into each scope.
    pub(crate) fn uses_request_head(&self) -> bool {
        self.inner.uses_request_head.load(Ordering::Relaxed)
    }

    /// Whether the [`RequestHead`] must be seeded into a request's scope
    /// before service `T` can be built there: whether any known service
    /// depends on it, once `T` itself is known.
    ///
    /// A registered service is known from the start. An unregistered one
    /// (allowed: it is validated on first use) becomes known here, so that
    /// an integration asks this before resolving `T`, while the request's
    /// head is still at hand, instead of finding out during `T`'s first
    /// build, when it is too late to seed it.
    pub(crate) fn needs_request_head<T: Provide>(&self) -> bool {
        if self.uses_request_head() {
            return true;
        }
        // A cycle is reported by the build itself, with its context.
        let _ = self.validate(ServiceInfo::of::<T>());
        self.uses_request_head()
    }

    /// Whether [`shutdown`](Registry::shutdown) has begun. Integrations use
    /// it to tell a request cut short by shutdown from one whose client left.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// Shuts the registry down: waits until every open request scope has
    /// closed, then releases the app services in reverse order of
    /// construction, with [`Exit::Shutdown`]. Call it after the server has
    /// stopped accepting requests. Later calls wait for the first to finish.
    pub async fn shutdown(&self) {
        if self.inner.shutting_down.swap(true, Ordering::SeqCst) {
            self.wait_shutdown_done().await;
            return;
        }
        let begun = std::mem::take(&mut self.lock_shutdown().begun_waiters);
        begun.wake_all();
        poll_fn(|cx| {
            let mut shutdown = self.lock_shutdown();
            if self.inner.open_scopes.load(Ordering::SeqCst) == 0 {
                Poll::Ready(())
            } else {
                shutdown.scope_waiters.register(cx.waker());
                Poll::Pending
            }
        })
        .await;
        self.release_app_services().await;
        let waiters = {
            let mut shutdown = self.lock_shutdown();
            shutdown.done = true;
            std::mem::take(&mut shutdown.done_waiters)
        };
        waiters.wake_all();
    }

    /// Releases app services, newest first. The fast-lookup copies are
    /// dropped first: a value can only be released once nothing else holds
    /// it.
    async fn release_app_services(&self) {
        self.inner
            .app_ready
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let acquired = self.inner.app_store.close();
        release_all(
            acquired,
            Exit::Shutdown,
            self.report(&tracing::Span::none()),
            self.step_bounds(),
        )
        .await;
    }

    /// Resolves once [`shutdown`](Registry::shutdown) has begun: for a
    /// loop that starts jobs (a periodic job stops starting runs), and for
    /// [`Job`](crate::Job), which cuts a running job then.
    pub fn shutdown_begun(&self) -> impl Future<Output = ()> + Send + '_ {
        ShutdownBegun {
            registry: self,
            key: None,
        }
    }

    async fn wait_shutdown_done(&self) {
        poll_fn(|cx| {
            let mut shutdown = self.lock_shutdown();
            if shutdown.done {
                Poll::Ready(())
            } else {
                shutdown.done_waiters.register(cx.waker());
                Poll::Pending
            }
        })
        .await
    }

    fn lock_shutdown(&self) -> std::sync::MutexGuard<'_, Shutdown> {
        self.inner
            .shutdown
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn scope_closed(&self) {
        // Only a shutdown waits for the count to reach zero, so the lock is
        // taken only then. Both sides use SeqCst: either this load sees the
        // flag, or the shutdown's count check sees this decrement.
        if self.inner.open_scopes.fetch_sub(1, Ordering::SeqCst) == 1
            && self.inner.shutting_down.load(Ordering::SeqCst)
        {
            let waiters = std::mem::take(&mut self.lock_shutdown().scope_waiters);
            waiters.wake_all();
        }
    }

    pub(crate) fn open_scopes(&self) -> usize {
        self.inner.open_scopes.load(Ordering::Acquire)
    }

    /// The application's format for error responses, if it chose one.
    #[cfg(feature = "axum")]
    pub(crate) fn error_format(&self) -> Option<&crate::rejection::ErrorResponse> {
        self.inner.error_response.as_ref()
    }

    pub(crate) fn observer(&self) -> Option<&dyn Observer> {
        self.inner.observer.as_deref()
    }

    /// Who hears of releases of app values: the observer, and `span` (none:
    /// the span current where they run).
    fn report<'a>(&'a self, span: &'a tracing::Span) -> Report<'a> {
        Report {
            observer: self.observer(),
            span,
        }
    }

    /// The bounds on settle and release steps, if the registry has a timer.
    pub(crate) fn step_bounds(&self) -> Option<&StepBounds> {
        self.inner.steps.as_ref()
    }

    /// The registry's timer, if it has one.
    pub(crate) fn timer(&self) -> Option<&Arc<dyn Timer>> {
        self.inner.steps.as_ref().map(StepBounds::timer)
    }

    /// The budget of every request scope, if the application set one.
    pub(crate) fn default_budget(&self) -> Option<&crate::Budget> {
        self.inner.budget.as_ref()
    }

    pub(crate) fn cached_app<T: Provide>(&self) -> Option<Dep<T>> {
        let id = TypeId::of::<T>();
        let ready = self
            .inner
            .app_ready
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        ready
            .iter()
            .find(|(t, _)| *t == id)
            .map(|(_, v)| downcast(v.clone()))
    }

    pub(crate) async fn resolve_app<T: Provide>(&self) -> Result<Dep<T>, Error> {
        if let Some(dep) = self.cached_app::<T>() {
            return Ok(dep);
        }
        self.app_value(ServiceInfo::of::<T>()).await.map(downcast)
    }

    /// The value of an app service, built now if nobody has built it.
    fn app_value(&self, info: &'static ServiceInfo) -> BoxFuture<'_, Result<AnyArc, Error>> {
        // Boxed: app services build their app dependencies through here.
        Box::pin(async move {
            debug_assert_eq!(info.lifetime(), LifetimeKind::App);
            if self.is_shutting_down() {
                return Err(Error::new(format!(
                    "cannot provide app service `{}`: the registry is shutting down",
                    info.name()
                )));
            }
            let stats = self.prepare(info)?;
            let build = || self.build_value(info, &stats, Resolver::app(self));
            let none = tracing::Span::none();
            let report = self.report(&none);
            let value = if self.inner.started.load(Ordering::Acquire) {
                tracing::warn!(
                    service = info.name(),
                    "app service was not registered, so it is built on first use instead of at startup; \
                     register it (RegistryBuilder::register) to build it at startup"
                );
                // Asked for by requests: no request waits on a build that
                // another request drives (the Workers rule).
                self.inner
                    .app_store
                    .get_or_race(info, &stats, report, build)
                    .await?
            } else {
                self.inner
                    .app_store
                    .get_or_build(info, &stats, report, build)
                    .await?
            };
            let mut ready = self
                .inner
                .app_ready
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if !ready.iter().any(|(t, _)| *t == info.type_id()) {
                ready.push((info.type_id(), value.clone()));
            }
            Ok(value)
        })
    }

    /// Builds one value of `info`'s service (or its override), counting it,
    /// in a `build` span.
    pub(crate) async fn build_value(
        &self,
        info: &'static ServiceInfo,
        stats: &ServiceStats,
        resolver: Resolver<'_>,
    ) -> Result<Built, Error> {
        use tracing::Instrument;
        // Timed only for an observer: reading the clock is measurable on
        // the request path. The build's end is also the start of the time
        // the value is held, so one pair of reads gives both figures.
        #[cfg(not(target_arch = "wasm32"))]
        let started = self.observer().map(|_| std::time::Instant::now());
        let span = crate::span::build(info, resolver.span());
        let build = match self.inner.overrides.get(&info.type_id()) {
            Some(build) => build(),
            None => (info.build)(resolver),
        };
        let built = if info.lifetime() == LifetimeKind::App {
            self.build_app_value(info, build)
                .instrument(span.clone())
                .await
        } else {
            build.instrument(span.clone()).await
        };
        #[cfg(not(target_arch = "wasm32"))]
        let (at, elapsed) = match started {
            Some(started) => {
                let now = std::time::Instant::now();
                (Some(now), Some(now - started))
            }
            None => (None, None),
        };
        #[cfg(target_arch = "wasm32")]
        let (at, elapsed) = (None, None);
        match built {
            Ok(value) => {
                stats.record_acquire();
                tracing::debug!(service = info.name(), lifetime = %info.lifetime(), "acquired");
                if let Some(observer) = self.observer() {
                    observer.acquired(info, elapsed);
                }
                Ok(Built { value, at })
            }
            Err(error) => {
                stats.record_build_failure();
                crate::span::record_error(&span, &error);
                tracing::debug!(service = info.name(), %error, "build failed");
                if let Some(observer) = self.observer() {
                    observer.build_failed(info, &error);
                }
                Err(error)
            }
        }
    }

    /// Builds an app value outside any request, refusing it if its build
    /// created a request-bound value (an I/O object that belongs to one
    /// request: the source documents' bug, where a database socket opened
    /// once was reused by every request and Cloudflare Workers refused).
    async fn build_app_value(
        &self,
        info: &'static ServiceInfo,
        build: BoxFuture<'_, Result<AnyArc, Error>>,
    ) -> Result<AnyArc, Error> {
        let watch = Arc::new(crate::ambient::AppBuildWatch::default());
        let slot = crate::ambient::Slot::AppBuild(watch.clone());
        let value = crate::integration::Scoped::new(slot, build, None).await?;
        let bound = watch.request_bound();
        if bound.is_empty() {
            return Ok(value);
        }
        let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (info.release)(value, Exit::Shutdown)
        }));
        if let Ok(Ok(release)) = started {
            let _ = crate::integration::CatchUnwind::new(release).await;
        }
        Err(Error::new(format!(
            "app service `{}` created a request-bound value (`{}`) while it was built; \
             an app value is shared by every request, but an I/O object (a socket, a \
             connection) belongs to the one request that made it, and on Cloudflare Workers \
             using it from another request fails with \"Cannot perform I/O on behalf of a \
             different request\". Make `{}` a Request service, or keep only a pool or \
             connection settings in the app service",
            info.name(),
            bound.join("`, `"),
            info.name()
        )))
    }

    /// What every build of `info`'s service needs first: its dependency
    /// closure checked for cycles, and its counters.
    pub(crate) fn prepare(&self, info: &'static ServiceInfo) -> Result<Arc<ServiceStats>, Error> {
        // Counters are only ever made here, after validation: a service
        // that has them was validated, and every build after its first
        // needs only this one lookup.
        if let Some(stats) = self.existing_stats(info) {
            return Ok(stats);
        }
        self.validate(info)?;
        let mut known = self.write_known();
        let Known { stats, order, .. } = &mut *known;
        let stats = stats.entry(info.type_id()).or_insert_with(|| {
            let stats = Arc::new(ServiceStats::new(info));
            order.push(stats.clone());
            stats
        });
        Ok(stats.clone())
    }

    /// Checks once per service type that its dependency closure has no
    /// cycle (which would otherwise deadlock its first build).
    fn validate(&self, info: &'static ServiceInfo) -> Result<(), Error> {
        if self.read_known().validated.contains(&info.type_id()) {
            return Ok(());
        }
        // Outside the lock: it walks the whole closure.
        let closure = graph::in_build_order(&[info])?;
        self.mark_validated(&closure);
        Ok(())
    }

    fn mark_validated(&self, services: &[&'static ServiceInfo]) {
        let mut known = self.write_known();
        for s in services {
            known.validated.insert(s.type_id());
            if s.type_id() == TypeId::of::<RequestHead>() {
                self.inner.uses_request_head.store(true, Ordering::Relaxed);
            }
        }
    }

    /// The counters of a service, if it has any (without creating them).
    pub(crate) fn existing_stats(&self, info: &'static ServiceInfo) -> Option<Arc<ServiceStats>> {
        self.read_known().stats.get(&info.type_id()).cloned()
    }

    pub(crate) fn all_stats(&self) -> Vec<Arc<ServiceStats>> {
        self.read_known().order.clone()
    }

    fn read_known(&self) -> std::sync::RwLockReadGuard<'_, Known> {
        // No user code runs under this lock, so a poisoned one can only come
        // from an allocation failure mid-insert; the sets are still whole.
        self.inner
            .known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write_known(&self) -> std::sync::RwLockWriteGuard<'_, Known> {
        self.inner
            .known
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("services", &self.inner.registered)
            .field("open_scopes", &self.open_scopes())
            .finish()
    }
}

impl RegistryBuilder {
    /// Registers service `T` and, through its dependency list, everything it
    /// depends on. Registered app services are built by
    /// [`build`](RegistryBuilder::build); request and transient ones are
    /// validated then and built per request.
    ///
    /// Registering is recommended, not required: a service nobody
    /// registered is validated when a request first asks for it (before
    /// anything is built, so one that depends on the
    /// [`RequestHead`] gets it on that first request too), and an
    /// unregistered app service is built on first use, with a warning. What
    /// registering adds is failing at startup instead of on a request (a
    /// cycle, an app service that fails to build) and the service in
    /// [`Registry::graph`].
    pub fn register<T: Provide>(mut self) -> Self {
        let info = ServiceInfo::of::<T>();
        if !self.roots.contains(&info) {
            self.roots.push(info);
        }
        self
    }

    /// Supplies the value of app service `T` (configuration, or anything made
    /// before startup) instead of building it, and registers it. Pair with
    /// [`supplied!`](crate::supplied).
    pub fn supply<T: Provide<Lifetime = crate::App>>(self, value: T) -> Self {
        let value = Mutex::new(Some(Arc::new(value) as AnyArc));
        let supply: Override = Arc::new(move || {
            let value = value.lock().unwrap_or_else(PoisonError::into_inner).take();
            Box::pin(async move {
                value.ok_or_else(|| {
                    Error::new(format!(
                        "the supplied value of `{}` was already used",
                        crate::short_type_name::<T>()
                    ))
                })
            })
        });
        let mut this = self.register::<T>();
        this.overrides.insert(TypeId::of::<T>(), supply);
        this
    }

    /// Replaces the constructor of service `T` (for tests: a counting fake
    /// for the database). The replacement gets no dependencies; it keeps
    /// `T`'s lifetime, so a request service stays per request, and its
    /// values are counted, settled and released like any other.
    ///
    /// ```
    /// # use provision::{Dep, Error, Provide, Registry, Request};
    /// # use std::sync::atomic::{AtomicU32, Ordering};
    /// # use std::sync::Arc;
    /// enum Db { Real, Fake(u32) }
    /// impl Provide for Db {
    ///     type Lifetime = Request;
    ///     type Deps = ();
    ///     async fn build(_: ()) -> Result<Self, Error> { Ok(Db::Real) }
    /// }
    ///
    /// let built = Arc::new(AtomicU32::new(0));
    /// let counter = built.clone();
    /// let builder = Registry::builder().register::<Db>().override_with::<Db, _, _>(move || {
    ///     let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
    ///     async move { Ok(Db::Fake(n)) }
    /// });
    /// ```
    pub fn override_with<T, F, Fut>(mut self, build: F) -> Self
    where
        T: Provide,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let build: Override = Arc::new(move || {
            let built = build();
            Box::pin(async move { built.await.map(|v| Arc::new(v) as AnyArc) })
        });
        self.overrides.insert(TypeId::of::<T>(), build);
        self
    }

    /// Sets the [`Observer`] told of every build and release (for metrics).
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Sets the [`Timer`] that bounds every `settle` and `release` step
    /// (natively `provision_axum::TokioTimer`). A step still running after
    /// its bound ([`step_timeout`](Self::step_timeout), by default
    /// [`DEFAULT_STEP_TIMEOUT`]) is abandoned: its future is dropped,
    /// it is logged with the service's name, counted
    /// ([`ServiceReport::abandoned_releases`](crate::ServiceReport::abandoned_releases),
    /// [`Observer::abandoned`]), and the other steps proceed. An abandoned
    /// settle fails the request (`503`), so older services roll back.
    /// Without a timer, steps are not bounded.
    ///
    /// ```
    /// # use std::{future::Future, pin::Pin, time::Duration};
    /// # struct Sleep;
    /// # impl provision::Timer for Sleep {
    /// #     fn sleep(&self, _: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    /// #         Box::pin(std::future::pending())
    /// #     }
    /// # }
    /// struct Flush;
    /// # impl provision::Provide for Flush {
    /// #     type Lifetime = provision::Request;
    /// #     type Deps = ();
    /// #     async fn build(_: ()) -> Result<Self, provision::Error> { Ok(Flush) }
    /// # }
    /// let builder = provision::Registry::builder()
    ///     .timer(Sleep)
    ///     .step_timeout(Duration::from_secs(5))              // every service
    ///     .step_timeout_for::<Flush>(Duration::from_secs(20)); // this one
    /// ```
    pub fn timer(mut self, timer: impl Timer) -> Self {
        self.timer = Some(Arc::new(timer));
        self
    }

    /// The bound of every service's `settle` and `release` step that has
    /// none of its own ([`step_timeout_for`](Self::step_timeout_for));
    /// [`DEFAULT_STEP_TIMEOUT`] unless set. Takes effect with a
    /// [`timer`](Self::timer).
    pub fn step_timeout(mut self, bound: Duration) -> Self {
        self.step_timeout = bound;
        self
    }

    /// The bound of service `T`'s `settle` and `release` steps, instead of
    /// the default ([`step_timeout`](Self::step_timeout)).
    pub fn step_timeout_for<T: Provide>(mut self, bound: Duration) -> Self {
        self.step_timeouts.insert(TypeId::of::<T>(), bound);
        self
    }

    /// The [`Budget`](crate::Budget) of every request: limits on what one
    /// request's scope may build (`max_builds`), how long it may wait to
    /// acquire in all (`acquire_wait`, which needs a [`timer`](Self::timer)),
    /// and the groups whose caps its values count against. A route's own
    /// budget (a layer) overrides it limit by limit; without either,
    /// nothing is limited and builds pay nothing for budgets.
    ///
    /// ```
    /// use std::time::Duration;
    /// use provision::{Budget, Provide, Error, Transient};
    /// # use std::{future::Future, pin::Pin};
    /// # struct Sleep;
    /// # impl provision::Timer for Sleep {
    /// #     fn sleep(&self, _: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    /// #         Box::pin(std::future::pending())
    /// #     }
    /// # }
    /// struct Statement;
    /// # impl Provide for Statement {
    /// #     type Lifetime = Transient;
    /// #     type Deps = ();
    /// #     async fn build(_: ()) -> Result<Self, Error> { Ok(Statement) }
    /// # }
    /// let builder = provision::Registry::builder()
    ///     .timer(Sleep)
    ///     .budget(Budget::new()
    ///         .max_builds::<Statement>(32)              // a loop is a bug: 500
    ///         .acquire_wait(Duration::from_secs(5)));   // waited too long: 503
    /// ```
    pub fn budget(mut self, budget: crate::Budget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// (feature `axum`) Sets how every error response provision writes is
    /// formatted: a service that could not be provided to `Dep<T>`, an
    /// [`Error`] returned by a handler (from [`Lazy::get`](crate::Lazy::get)
    /// and `?`), and the errors an integration answers with itself (a
    /// handler that panicked, a settle step that failed). It is given the
    /// status and the message meant for the client. The default is
    /// [`json_error`](crate::integration::json_error): `{"error": message}`
    /// as `application/json`.
    ///
    /// A request that never went through the integration (a route outside
    /// `ProvisionLayer`) has no registry to ask, so its missing-scope
    /// rejection keeps the default.
    ///
    /// ```
    /// use axum_core::response::IntoResponse;
    /// use http::StatusCode;
    /// use provision::Registry;
    ///
    /// let builder = Registry::builder().error_response(|status: StatusCode, message: &str| {
    ///     (status, format!("problem: {message}")).into_response()
    /// });
    /// ```
    #[cfg(feature = "axum")]
    pub fn error_response(
        mut self,
        format: impl Fn(http::StatusCode, &str) -> axum_core::response::Response + Send + Sync + 'static,
    ) -> Self {
        self.error_response = Some(Arc::new(format));
        self
    }

    /// The graph of what is registered so far, or the cycle that makes it
    /// invalid.
    pub fn graph(&self) -> Result<Graph, Error> {
        Graph::of(&self.roots)
    }

    /// Validates the graph and builds every registered app service,
    /// dependencies first. If one fails, those already built are released
    /// (newest first) and the error names the service that failed.
    pub async fn build(self) -> Result<Registry, Error> {
        let order = graph::in_build_order(&self.roots)?;
        if self.timer.is_none()
            && let Some(limit) = self.budget.as_ref().and_then(|b| b.acquire_wait_limit())
        {
            return Err(Error::new(format!(
                "the registry's budget limits the time a request waits to acquire \
                 (acquire_wait = {limit:?}), which needs a timer: set one with \
                 RegistryBuilder::timer"
            )));
        }
        let registry = Registry {
            inner: Arc::new(Inner {
                registered: self.roots,
                app_ready: RwLock::new(Vec::new()),
                app_store: Store::new(),
                overrides: self.overrides,
                known: RwLock::default(),
                uses_request_head: AtomicBool::new(false),
                started: AtomicBool::new(false),
                open_scopes: AtomicUsize::new(0),
                shutting_down: AtomicBool::new(false),
                shutdown: Mutex::new(Shutdown::default()),
                observer: self.observer,
                steps: self
                    .timer
                    .map(|timer| StepBounds::new(timer, self.step_timeout, self.step_timeouts)),
                budget: self.budget,
                #[cfg(feature = "axum")]
                error_response: self.error_response,
            }),
        };
        registry.mark_validated(&order);
        for info in order.iter().filter(|i| i.lifetime() == LifetimeKind::App) {
            if let Err(error) = registry.app_value(info).await {
                registry.release_app_services().await;
                return Err(Error::with_source(
                    format!("building app service `{}` failed: {error}", info.name()),
                    error,
                ));
            }
        }
        registry.inner.started.store(true, Ordering::Release);
        Ok(registry)
    }
}

/// The future of [`Registry::shutdown_begun`]. Dropped before shutdown, it
/// takes its waker out of the registry's list: a job or a `finish` route
/// that ended normally leaves nothing behind (its task's memory, an entry
/// every later wait would skip over).
struct ShutdownBegun<'a> {
    registry: &'a Registry,
    key: Option<usize>,
}

impl Future for ShutdownBegun<'_> {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        // Either this sees the flag, or the shutdown (which sets it before
        // taking the lock) sees the waker registered under the lock.
        let registry = self.registry;
        let mut shutdown = registry.lock_shutdown();
        if registry.is_shutting_down() {
            if let Some(key) = self.key.take() {
                shutdown.begun_waiters.remove(key);
            }
            Poll::Ready(())
        } else {
            shutdown.begun_waiters.register(&mut self.key, cx.waker());
            Poll::Pending
        }
    }
}

impl Drop for ShutdownBegun<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.registry.lock_shutdown().begun_waiters.remove(key);
        }
    }
}
