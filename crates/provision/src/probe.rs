//! Counting what a registry acquires and releases, for tests ([`Probe`]) and
//! for metrics ([`Observer`]).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::{BudgetLimit, Error, Exit, LifetimeKind, Provide, Registry, ServiceInfo, Step};

/// Per-service counters, kept by the registry for every service it builds.
pub(crate) struct ServiceStats {
    pub(crate) info: &'static ServiceInfo,
    acquires: AtomicU64,
    releases: AtomicU64,
    escapes: AtomicU64,
    build_failures: AtomicU64,
    settle_failures: AtomicU64,
    release_failures: AtomicU64,
    abandoned_settles: AtomicU64,
    abandoned_releases: AtomicU64,
    budget_exceeded: AtomicU64,
}

impl ServiceStats {
    pub(crate) fn new(info: &'static ServiceInfo) -> ServiceStats {
        ServiceStats {
            info,
            acquires: AtomicU64::new(0),
            releases: AtomicU64::new(0),
            escapes: AtomicU64::new(0),
            build_failures: AtomicU64::new(0),
            settle_failures: AtomicU64::new(0),
            release_failures: AtomicU64::new(0),
            abandoned_settles: AtomicU64::new(0),
            abandoned_releases: AtomicU64::new(0),
            budget_exceeded: AtomicU64::new(0),
        }
    }

    pub(crate) fn record_acquire(&self) {
        self.acquires.fetch_add(1, Relaxed);
    }
    pub(crate) fn record_release(&self) {
        self.releases.fetch_add(1, Relaxed);
    }
    pub(crate) fn record_escape(&self) {
        self.escapes.fetch_add(1, Relaxed);
    }
    pub(crate) fn record_build_failure(&self) {
        self.build_failures.fetch_add(1, Relaxed);
    }
    pub(crate) fn record_settle_failure(&self) {
        self.settle_failures.fetch_add(1, Relaxed);
    }
    pub(crate) fn record_release_failure(&self) {
        self.release_failures.fetch_add(1, Relaxed);
    }
    pub(crate) fn record_budget_exceeded(&self) {
        self.budget_exceeded.fetch_add(1, Relaxed);
    }
    pub(crate) fn record_abandoned(&self, step: Step) {
        match step {
            Step::Settle => &self.abandoned_settles,
            Step::Release => &self.abandoned_releases,
        }
        .fetch_add(1, Relaxed);
    }

    pub(crate) fn report(&self) -> ServiceReport {
        let acquires = self.acquires.load(Relaxed);
        let releases = self.releases.load(Relaxed);
        let escapes = self.escapes.load(Relaxed);
        ServiceReport {
            name: self.info.name(),
            lifetime: self.info.lifetime(),
            acquires,
            releases,
            held: acquires.saturating_sub(releases + escapes),
            escapes,
            build_failures: self.build_failures.load(Relaxed),
            settle_failures: self.settle_failures.load(Relaxed),
            release_failures: self.release_failures.load(Relaxed),
            abandoned_settles: self.abandoned_settles.load(Relaxed),
            abandoned_releases: self.abandoned_releases.load(Relaxed),
            budget_exceeded: self.budget_exceeded.load(Relaxed),
        }
    }
}

/// What a registry has done with one service so far.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceReport {
    /// The service's short type name.
    pub name: &'static str,
    /// Its lifetime.
    pub lifetime: LifetimeKind,
    /// Values built successfully.
    pub acquires: u64,
    /// Values whose release step ran (successfully or not).
    pub releases: u64,
    /// Values built and not yet released: in use right now.
    pub held: u64,
    /// Values whose release step could not run because a handle outlived the
    /// scope. Always zero in a correct program.
    pub escapes: u64,
    /// Builds that returned an error.
    pub build_failures: u64,
    /// Settle steps that returned an error or panicked (abandoned ones
    /// included).
    pub settle_failures: u64,
    /// Release steps that returned an error or panicked (abandoned ones
    /// included).
    pub release_failures: u64,
    /// Settle steps abandoned because they overran their bound
    /// ([`RegistryBuilder::step_timeout`](crate::RegistryBuilder::step_timeout)).
    pub abandoned_settles: u64,
    /// Release steps abandoned because they overran their bound; each is
    /// also counted in `releases` (the value is gone) and `release_failures`.
    pub abandoned_releases: u64,
    /// Builds refused because their request exceeded its
    /// [`Budget`](crate::Budget) (any limit; [`Observer::budget_exceeded`]
    /// tells which).
    pub budget_exceeded: u64,
}

/// Reads a registry's counters: acquisitions, releases and values currently
/// held, per service. The test kit of provision: it is how a test proves that
/// a health check built nothing and that every connection was released.
///
/// ```
/// # struct Settings; provision::supplied!(Settings);
/// # async fn run() -> Result<(), provision::Error> {
/// let registry = provision::Registry::builder().supply(Settings).build().await?;
/// let probe = registry.probe();
/// assert_eq!(probe.acquires::<Settings>(), 1);
/// assert_eq!(probe.held::<Settings>(), 1);
/// registry.shutdown().await;
/// assert_eq!(probe.releases::<Settings>(), 1);
/// # Ok(()) }
/// # futures_executor_stub::block_on(run()).unwrap();
/// # mod futures_executor_stub { pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #   let waker = std::task::Waker::noop(); let mut cx = std::task::Context::from_waker(&waker);
/// #   let mut f = std::pin::pin!(f);
/// #   loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } } } }
/// ```
#[derive(Clone)]
pub struct Probe {
    registry: Registry,
}

impl Probe {
    pub(crate) fn new(registry: Registry) -> Probe {
        Probe { registry }
    }

    /// The report for service `T` (all zeros if it was never built).
    pub fn report<T: Provide>(&self) -> ServiceReport {
        let info = ServiceInfo::of::<T>();
        match self.registry.existing_stats(info) {
            Some(stats) => stats.report(),
            None => ServiceStats::new(info).report(),
        }
    }

    /// How many values of `T` were built.
    pub fn acquires<T: Provide>(&self) -> u64 {
        self.report::<T>().acquires
    }

    /// How many values of `T` were released.
    pub fn releases<T: Provide>(&self) -> u64 {
        self.report::<T>().releases
    }

    /// How many values of `T` are built and not yet released.
    pub fn held<T: Provide>(&self) -> u64 {
        self.report::<T>().held
    }

    /// Reports for every service the registry has counted, in the order it
    /// first counted them.
    pub fn snapshot(&self) -> Vec<ServiceReport> {
        self.registry
            .all_stats()
            .iter()
            .map(|s| s.report())
            .collect()
    }

    /// Total values built across all services.
    pub fn total_acquires(&self) -> u64 {
        self.snapshot().iter().map(|r| r.acquires).sum()
    }

    /// Request scopes opened and not yet closed.
    pub fn open_scopes(&self) -> usize {
        self.registry.open_scopes()
    }
}

/// Callbacks for metrics: told of every build, settle failure and release.
/// Set one with [`RegistryBuilder::observer`](crate::RegistryBuilder::observer);
/// with the `prometheus` feature, `provision::prometheus::PrometheusObserver`
/// is a ready one.
///
/// Every method has a body that does nothing, so an observer implements
/// only what it counts. Called on the request's task (a release may run
/// after the response, on a background task); keep them cheap (update
/// counters).
///
/// Where each fires (`ARCHITECTURE.md`, "Observer hooks"): `acquired` and
/// `build_failed` when a build ends; `settle_failed` when a settle step
/// fails, panics or is abandoned; `abandoned` when a step overruns its
/// bound; `released` once per value built, when its release step has
/// finished (or was abandoned, or the value was built into a scope that
/// had already ended and was released at once), or else `escaped`, when
/// its release step can never run.
pub trait Observer: Send + Sync + 'static {
    /// A value of `service` was built. `elapsed` is the time from asking
    /// to having it: the build's wall time, its dependencies' builds
    /// included (`None` on targets without a clock, such as wasm32).
    fn acquired(&self, service: &ServiceInfo, elapsed: Option<Duration>) {
        let _ = (service, elapsed);
    }

    /// A build of `service` failed.
    fn build_failed(&self, service: &ServiceInfo, error: &Error) {
        let _ = (service, error);
    }

    /// The settle step of `service` failed: it returned `error`, panicked
    /// or was abandoned past its bound (also reported to
    /// [`abandoned`](Observer::abandoned)). The request then answers with
    /// an error.
    fn settle_failed(&self, service: &ServiceInfo, error: &Error) {
        let _ = (service, error);
    }

    /// A value of `service` was released with `exit`; `error` is set if its
    /// release step failed (returned an error, panicked or was abandoned).
    /// `held` is the time from the end of its build to the end of its
    /// release (`None` without a clock, such as on wasm32).
    fn released(
        &self,
        service: &ServiceInfo,
        exit: Exit,
        error: Option<&Error>,
        held: Option<Duration>,
    ) {
        let _ = (service, exit, error, held);
    }

    /// A `step` of `service` overran its `bound` and was abandoned (its
    /// future dropped unfinished). A release is also reported to
    /// [`released`](Observer::released), a settle to
    /// [`settle_failed`](Observer::settle_failed), each with the error.
    fn abandoned(&self, service: &ServiceInfo, step: Step, bound: Duration) {
        let _ = (service, step, bound);
    }

    /// A build of `service` was refused (or cut) because its request
    /// exceeded `limit` of its [`Budget`](crate::Budget).
    fn budget_exceeded(&self, service: &ServiceInfo, limit: BudgetLimit) {
        let _ = (service, limit);
    }

    /// A value of `service` escaped: its release step can never run,
    /// because its scope was dropped without being closed (an integration
    /// bug) or a handle to it outlived its scope. It is no longer held by
    /// any scope; it is dropped when its last handle is. Never also
    /// reported to [`released`](Observer::released).
    fn escaped(&self, service: &ServiceInfo) {
        let _ = service;
    }
}
