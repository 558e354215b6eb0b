//! (feature `prometheus`) [`PrometheusObserver`]: every service's
//! lifecycle as Prometheus metrics, through `prometheus-client`.

use std::any::TypeId;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry as MetricRegistry;

use crate::{BudgetLimit, Error, Exit, Observer, ServiceInfo, Step};

/// `service` and `lifetime`: the service's short type name and `app`,
/// `request` or `transient`. Both are `&'static str` already, so a label
/// set costs no allocation.
type ServiceLabels = [(&'static str, &'static str); 2];
/// The service's labels and one more (`exit` or `step`).
type EventLabels = [(&'static str, &'static str); 3];
type Histograms = Family<ServiceLabels, Histogram, fn() -> Histogram>;

/// Every exit, in the order of `exit_index`.
const EXITS: [&str; 5] = ["success", "failure", "panic", "cancelled", "shutdown"];
/// Every step, in the order of `step_index`.
const STEPS: [&str; 2] = ["settle", "release"];
/// The labels of `BudgetLimit::label`, in a fixed order for `Handles`.
const BUDGETS: [&str; 3] = ["max_builds", "acquire_wait", "max_held"];

/// An [`Observer`] that keeps every service's lifecycle as Prometheus
/// metrics, registered in a `prometheus_client` registry you encode
/// (at `GET /metrics`, say). Per service (labels `service`, `lifetime`):
///
/// | metric | type | what |
/// |---|---|---|
/// | `provision_service_acquisitions_total` | counter | values built |
/// | `provision_service_releases_total{exit}` | counter | values released, by how the request ended: `success`, `failure`, `panic`, `cancelled`, `shutdown` |
/// | `provision_service_build_failures_total` | counter | builds that returned an error |
/// | `provision_service_settle_failures_total` | counter | settle steps that failed, panicked or were abandoned |
/// | `provision_service_release_failures_total` | counter | release steps that failed, panicked or were abandoned |
/// | `provision_service_steps_abandoned_total{step}` | counter | `settle` and `release` steps abandoned past their bound |
/// | `provision_service_acquire_wait_seconds` | histogram | time from asking for a value to having it (its build, dependencies included) |
/// | `provision_service_held_seconds` | histogram | time from the end of a value's build to the end of its release |
/// | `provision_service_held` | gauge | values built and not yet released (nor escaped) |
/// | `provision_service_escapes_total` | counter | values whose release step can never run: their scope was dropped without being closed, or a handle outlived it (see [`Observer::escaped`]) |
/// | `provision_budget_exceeded_total{budget}` | counter | builds refused because their request exceeded a [`Budget`](crate::Budget): `max_builds`, `acquire_wait`, `max_held` |
///
/// A service's series all appear, at zero, on its first build, so a rate
/// of failures reads 0 rather than nothing. On wasm32 (no clock) the two
/// histograms stay empty.
///
/// Cost: each service's series are looked up once, on its first event,
/// and kept; an event is then a scan of a short list under a read lock and
/// an atomic add. Labels are the service's static names: nothing is
/// allocated per event.
///
/// ```
/// use provision::prometheus::PrometheusObserver;
/// use provision::{Error, Registry, Request, provide};
///
/// struct Conn;
/// #[provide(Request)]
/// impl Conn {
///     async fn build() -> Result<Self, Error> { Ok(Conn) }
/// }
///
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } }
/// # }
/// # block_on(async {
/// let mut metrics = prometheus_client::registry::Registry::default();
/// let registry = Registry::builder()
///     .observer(PrometheusObserver::new(&mut metrics))
///     .register::<Conn>()
///     .build()
///     .await?;
///
/// // ... serve requests; then, at GET /metrics:
/// let mut text = String::new();
/// prometheus_client::encoding::text::encode(&mut text, &metrics).unwrap();
/// # use provision::integration::{RegistryControl, ScopeControl};
/// # let scope = registry.open_scope();
/// # drop(scope.resolve::<Conn>().await?);
/// # scope.close(provision::Exit::Cancelled).await;
/// # let mut text = String::new();
/// # prometheus_client::encoding::text::encode(&mut text, &metrics).unwrap();
/// assert!(text.contains(
///     r#"provision_service_releases_total{service="Conn",lifetime="request",exit="cancelled"} 1"#
/// ));
/// # Ok::<(), Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct PrometheusObserver {
    inner: Arc<Inner>,
}

struct Inner {
    acquisitions: Family<ServiceLabels, Counter>,
    releases: Family<EventLabels, Counter>,
    build_failures: Family<ServiceLabels, Counter>,
    settle_failures: Family<ServiceLabels, Counter>,
    release_failures: Family<ServiceLabels, Counter>,
    steps_abandoned: Family<EventLabels, Counter>,
    acquire_wait: Histograms,
    held_seconds: Histograms,
    held: Family<ServiceLabels, Gauge>,
    escapes: Family<ServiceLabels, Counter>,
    budget_exceeded: Family<EventLabels, Counter>,
    /// Each service's handles into the families above, resolved once: a
    /// `Family` lookup hashes the labels under the family's lock, which on
    /// every build and release of every request is measurable (see
    /// bench/README.md, Analysis). A handle is an `Arc` to the same series.
    services: RwLock<Vec<(TypeId, Handles)>>,
}

/// One service's series.
struct Handles {
    acquisitions: Counter,
    releases: [Counter; EXITS.len()],
    build_failures: Counter,
    settle_failures: Counter,
    release_failures: Counter,
    steps_abandoned: [Counter; STEPS.len()],
    acquire_wait: Histogram,
    held_seconds: Histogram,
    held: Gauge,
    escapes: Counter,
    budget_exceeded: [Counter; BUDGETS.len()],
}

impl PrometheusObserver {
    /// Registers the metrics (named in the [type's docs](PrometheusObserver))
    /// in `registry` and returns the observer that updates them; hand it to
    /// [`RegistryBuilder::observer`](crate::RegistryBuilder::observer).
    pub fn new(registry: &mut MetricRegistry) -> PrometheusObserver {
        // 10 µs to 5 s: a memoised build takes microseconds, a connect
        // under load seconds.
        fn acquire_wait() -> Histogram {
            Histogram::new(exponential_buckets(0.000_01, 2.0, 20))
        }
        // 100 µs to 52 s: a request holds its values for milliseconds to
        // seconds; an app value, for the process's life (+Inf).
        fn held_seconds() -> Histogram {
            Histogram::new(exponential_buckets(0.000_1, 2.0, 20))
        }
        let inner = Inner {
            acquisitions: Family::default(),
            releases: Family::default(),
            build_failures: Family::default(),
            settle_failures: Family::default(),
            release_failures: Family::default(),
            steps_abandoned: Family::default(),
            acquire_wait: Family::new_with_constructor(acquire_wait as fn() -> Histogram),
            held_seconds: Family::new_with_constructor(held_seconds as fn() -> Histogram),
            held: Family::default(),
            escapes: Family::default(),
            budget_exceeded: Family::default(),
            services: RwLock::default(),
        };
        // Counters are registered without `_total`: the encoder adds it.
        registry.register(
            "provision_service_acquisitions",
            "Service values built",
            inner.acquisitions.clone(),
        );
        registry.register(
            "provision_service_releases",
            "Service values released, by how the request ended",
            inner.releases.clone(),
        );
        registry.register(
            "provision_service_build_failures",
            "Service builds that returned an error",
            inner.build_failures.clone(),
        );
        registry.register(
            "provision_service_settle_failures",
            "Settle steps that failed, panicked or were abandoned",
            inner.settle_failures.clone(),
        );
        registry.register(
            "provision_service_release_failures",
            "Release steps that failed, panicked or were abandoned",
            inner.release_failures.clone(),
        );
        registry.register(
            "provision_service_steps_abandoned",
            "Settle and release steps abandoned because they overran their bound",
            inner.steps_abandoned.clone(),
        );
        registry.register(
            "provision_service_acquire_wait_seconds",
            "Time from asking for a service value to having it",
            inner.acquire_wait.clone(),
        );
        registry.register(
            "provision_service_held_seconds",
            "Time from the end of a value's build to the end of its release",
            inner.held_seconds.clone(),
        );
        registry.register(
            "provision_service_held",
            "Service values built and not yet released",
            inner.held.clone(),
        );
        registry.register(
            "provision_service_escapes",
            "Service values whose release step can never run (scope dropped unclosed, or a handle outlived it)",
            inner.escapes.clone(),
        );
        registry.register(
            "provision_budget_exceeded",
            "Service builds refused because their request exceeded its budget, by limit",
            inner.budget_exceeded.clone(),
        );
        PrometheusObserver {
            inner: Arc::new(inner),
        }
    }

    /// Runs `f` with `service`'s handles, resolving them on its first
    /// event. A program has a handful of service types, so a scan beats
    /// hashing; the read lock is held only while `f` updates atomics.
    fn with<R>(&self, service: &ServiceInfo, f: impl FnOnce(&Handles) -> R) -> R {
        let id = service.type_id();
        {
            let services = self
                .inner
                .services
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((_, handles)) = services.iter().find(|(t, _)| *t == id) {
                return f(handles);
            }
        }
        let mut services = self
            .inner
            .services
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let at = match services.iter().position(|(t, _)| *t == id) {
            Some(at) => at,
            None => {
                services.push((id, self.inner.resolve(service)));
                services.len() - 1
            }
        };
        f(&services[at].1)
    }
}

impl Inner {
    fn resolve(&self, service: &ServiceInfo) -> Handles {
        let labels: ServiceLabels = [
            ("service", service.name()),
            ("lifetime", service.lifetime().as_str()),
        ];
        let [service, lifetime] = labels;
        Handles {
            acquisitions: self.acquisitions.get_or_create(&labels).clone(),
            releases: EXITS.map(|exit| {
                let labels = [service, lifetime, ("exit", exit)];
                self.releases.get_or_create(&labels).clone()
            }),
            build_failures: self.build_failures.get_or_create(&labels).clone(),
            settle_failures: self.settle_failures.get_or_create(&labels).clone(),
            release_failures: self.release_failures.get_or_create(&labels).clone(),
            steps_abandoned: STEPS.map(|step| {
                let labels = [service, lifetime, ("step", step)];
                self.steps_abandoned.get_or_create(&labels).clone()
            }),
            acquire_wait: self.acquire_wait.get_or_create(&labels).clone(),
            held_seconds: self.held_seconds.get_or_create(&labels).clone(),
            held: self.held.get_or_create(&labels).clone(),
            escapes: self.escapes.get_or_create(&labels).clone(),
            budget_exceeded: BUDGETS.map(|budget| {
                let labels = [service, lifetime, ("budget", budget)];
                self.budget_exceeded.get_or_create(&labels).clone()
            }),
        }
    }
}

fn exit_index(exit: Exit) -> usize {
    match exit {
        Exit::Success(_) => 0,
        Exit::Failure(_) => 1,
        Exit::Panic => 2,
        Exit::Cancelled => 3,
        Exit::Shutdown => 4,
    }
}

fn budget_index(limit: BudgetLimit) -> usize {
    match limit {
        BudgetLimit::MaxBuilds => 0,
        BudgetLimit::AcquireWait => 1,
        BudgetLimit::MaxHeld => 2,
    }
}

fn step_index(step: Step) -> usize {
    match step {
        Step::Settle => 0,
        Step::Release => 1,
    }
}

impl Observer for PrometheusObserver {
    fn acquired(&self, service: &ServiceInfo, elapsed: Option<Duration>) {
        self.with(service, |h| {
            h.acquisitions.inc();
            h.held.inc();
            if let Some(elapsed) = elapsed {
                h.acquire_wait.observe(elapsed.as_secs_f64());
            }
        });
    }

    fn build_failed(&self, service: &ServiceInfo, _error: &Error) {
        self.with(service, |h| h.build_failures.inc());
    }

    fn settle_failed(&self, service: &ServiceInfo, _error: &Error) {
        self.with(service, |h| h.settle_failures.inc());
    }

    fn released(
        &self,
        service: &ServiceInfo,
        exit: Exit,
        error: Option<&Error>,
        held: Option<Duration>,
    ) {
        self.with(service, |h| {
            h.held.dec();
            h.releases[exit_index(exit)].inc();
            if error.is_some() {
                h.release_failures.inc();
            }
            if let Some(held) = held {
                h.held_seconds.observe(held.as_secs_f64());
            }
        });
    }

    fn abandoned(&self, service: &ServiceInfo, step: Step, _bound: Duration) {
        self.with(service, |h| h.steps_abandoned[step_index(step)].inc());
    }

    fn budget_exceeded(&self, service: &ServiceInfo, limit: BudgetLimit) {
        self.with(service, |h| h.budget_exceeded[budget_index(limit)].inc());
    }

    fn escaped(&self, service: &ServiceInfo) {
        self.with(service, |h| {
            h.held.dec();
            h.escapes.inc();
        });
    }
}
