//! Prometheus metrics at `GET /metrics`: HTTP requests by route and status,
//! latency, and per service: acquisitions, releases, values held, acquire
//! latency. Service figures come from provision's `Observer` hooks.

use std::any::TypeId;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry as MetricRegistry;
use provision::{BudgetLimit, Error, Exit, Observer, ServiceInfo, Step};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
    lifetime: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    service: String,
    step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    service: String,
    budget: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReleaseLabels {
    service: String,
    exit: String,
}

/// Every metric of the service, shared by the HTTP middleware, the
/// provision observer and the `/metrics` handler.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

provision::supplied!(Metrics);

struct Inner {
    registry: MetricRegistry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    acquisitions: Family<ServiceLabels, Counter>,
    releases: Family<ReleaseLabels, Counter>,
    held: Family<ServiceLabels, Gauge>,
    acquire_latency: Family<ServiceLabels, Histogram>,
    build_failures: Family<ServiceLabels, Counter>,
    steps_abandoned: Family<StepLabels, Counter>,
    budget_exceeded: Family<BudgetLabels, Counter>,
    db_connections_opened: Counter,
    /// Each service's handles into the families above, looked up once.
    services: RwLock<Vec<(TypeId, ServiceMetrics)>>,
}

/// One service's metrics, resolved from the families on its first build.
///
/// The observer hooks run on every build and release of every request; a
/// `Family` lookup per hook allocates the label strings and hashes them
/// under the family's lock, which measured about 15,000 instructions per
/// request for three services (bench/README.md, Analysis). A handle is an
/// `Arc` to the same series, so updating it is one atomic operation.
struct ServiceMetrics {
    acquisitions: Counter,
    held: Gauge,
    acquire_latency: Histogram,
    /// By position in `EXITS`; made on first use, so an exit that never
    /// happened shows no series, as before.
    releases: [OnceLock<Counter>; EXITS.len()],
}

/// The labels of `Exit::label`, in a fixed order for `ServiceMetrics::releases`.
const EXITS: [&str; 5] = ["success", "failure", "panic", "cancelled", "shutdown"];

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set of metrics.
    pub fn new() -> Metrics {
        let mut registry = MetricRegistry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_1, 2.0, 18))
        });
        let acquisitions = Family::<ServiceLabels, Counter>::default();
        let releases = Family::<ReleaseLabels, Counter>::default();
        let held = Family::<ServiceLabels, Gauge>::default();
        let acquire_latency = Family::<ServiceLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_01, 2.0, 20))
        });
        let build_failures = Family::<ServiceLabels, Counter>::default();
        let steps_abandoned = Family::<StepLabels, Counter>::default();
        let budget_exceeded = Family::<BudgetLabels, Counter>::default();
        let db_connections_opened = Counter::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "service_acquisitions",
            "Service values built, by service",
            acquisitions.clone(),
        );
        registry.register(
            "service_releases",
            "Service values released, by service and how the request ended",
            releases.clone(),
        );
        registry.register(
            "service_held",
            "Service values built and not yet released",
            held.clone(),
        );
        registry.register(
            "service_acquire_duration_seconds",
            "Time to build a service value",
            acquire_latency.clone(),
        );
        registry.register(
            "service_build_failures",
            "Service builds that failed",
            build_failures.clone(),
        );
        registry.register(
            "service_steps_abandoned",
            "Settle and release steps abandoned because they overran their bound, by service and step",
            steps_abandoned.clone(),
        );
        registry.register(
            "provision_budget_exceeded",
            "Service builds refused because their request exceeded its budget, by service and limit (max_builds, acquire_wait, max_held)",
            budget_exceeded.clone(),
        );
        registry.register(
            "db_connections_opened",
            "Database connections opened by the service (per-request mode, or new pool connections)",
            db_connections_opened.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                latency,
                acquisitions,
                releases,
                held,
                acquire_latency,
                build_failures,
                steps_abandoned,
                budget_exceeded,
                db_connections_opened,
                services: RwLock::default(),
            }),
        }
    }

    /// Counts one finished HTTP request.
    pub fn record_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.inner
            .requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.inner
            .latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a database connection opened.
    pub fn record_connection_opened(&self) {
        self.inner.db_connections_opened.inc();
    }

    /// Steps of `service` (`settle` or `release`) abandoned so far.
    pub fn steps_abandoned(&self, service: &str, step: Step) -> u64 {
        self.inner
            .steps_abandoned
            .get_or_create(&StepLabels {
                service: service.to_owned(),
                step: step.label().to_owned(),
            })
            .get()
    }

    /// Builds of `service` refused so far for exceeding `limit`.
    pub fn budget_refusals(&self, service: &str, limit: BudgetLimit) -> u64 {
        self.inner
            .budget_exceeded
            .get_or_create(&BudgetLabels {
                service: service.to_owned(),
                budget: limit.label().to_owned(),
            })
            .get()
    }

    /// Database connections opened so far.
    pub fn connections_opened(&self) -> u64 {
        self.inner.db_connections_opened.get()
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
            .expect("writing to a String cannot fail");
        out
    }

    fn service_labels(service: &ServiceInfo) -> ServiceLabels {
        ServiceLabels {
            service: service.name().to_owned(),
            lifetime: service.lifetime().as_str().to_owned(),
        }
    }

    /// Runs `f` with the handles of `service`, resolving them on its first
    /// event. A program has a handful of service types, so a scan beats
    /// hashing; the read lock is held only while `f` updates atomics.
    fn with_service<R>(&self, service: &ServiceInfo, f: impl FnOnce(&ServiceMetrics) -> R) -> R {
        let id = service.type_id();
        {
            let services = self
                .inner
                .services
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((_, metrics)) = services.iter().find(|(t, _)| *t == id) {
                return f(metrics);
            }
        }
        let mut services = self
            .inner
            .services
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if !services.iter().any(|(t, _)| *t == id) {
            let labels = Metrics::service_labels(service);
            services.push((
                id,
                ServiceMetrics {
                    acquisitions: self.inner.acquisitions.get_or_create(&labels).clone(),
                    held: self.inner.held.get_or_create(&labels).clone(),
                    acquire_latency: self.inner.acquire_latency.get_or_create(&labels).clone(),
                    releases: Default::default(),
                },
            ));
        }
        let (_, metrics) = services
            .iter()
            .find(|(t, _)| *t == id)
            .expect("inserted above");
        f(metrics)
    }
}

impl Observer for Metrics {
    fn acquired(&self, service: &ServiceInfo, elapsed: Option<Duration>) {
        self.with_service(service, |metrics| {
            metrics.acquisitions.inc();
            metrics.held.inc();
            if let Some(elapsed) = elapsed {
                metrics.acquire_latency.observe(elapsed.as_secs_f64());
            }
        });
    }

    fn build_failed(&self, service: &ServiceInfo, _error: &Error) {
        // Rare: looked up each time, so a service that never failed shows
        // no failure series.
        self.inner
            .build_failures
            .get_or_create(&Metrics::service_labels(service))
            .inc();
    }

    fn abandoned(&self, service: &ServiceInfo, step: Step, _bound: Duration) {
        // Rare: looked up each time.
        self.inner
            .steps_abandoned
            .get_or_create(&StepLabels {
                service: service.name().to_owned(),
                step: step.label().to_owned(),
            })
            .inc();
    }

    fn budget_exceeded(&self, service: &ServiceInfo, limit: BudgetLimit) {
        // Rare: looked up each time.
        self.inner
            .budget_exceeded
            .get_or_create(&BudgetLabels {
                service: service.name().to_owned(),
                budget: limit.label().to_owned(),
            })
            .inc();
    }

    fn released(&self, service: &ServiceInfo, exit: Exit, _error: Option<&Error>) {
        let release_labels = || ReleaseLabels {
            service: service.name().to_owned(),
            exit: exit.label().to_owned(),
        };
        self.with_service(service, |metrics| {
            metrics.held.dec();
            match EXITS.iter().position(|e| *e == exit.label()) {
                Some(i) => metrics.releases[i]
                    .get_or_init(|| self.inner.releases.get_or_create(&release_labels()).clone())
                    .inc(),
                None => self.inner.releases.get_or_create(&release_labels()).inc(),
            };
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tx;
    impl provision::Provide for Tx {
        type Lifetime = provision::Request;
        type Deps = ();
        async fn build(_: ()) -> Result<Self, Error> {
            Ok(Tx)
        }
    }

    #[test]
    fn abandoned_steps_are_counted_by_service_and_step() {
        let metrics = Metrics::new();
        let tx = ServiceInfo::of::<Tx>();
        metrics.abandoned(tx, Step::Release, Duration::from_secs(15));
        metrics.abandoned(tx, Step::Release, Duration::from_secs(15));
        metrics.abandoned(tx, Step::Settle, Duration::from_secs(15));

        let text = metrics.encode();
        assert!(
            text.contains("service_steps_abandoned_total{service=\"Tx\",step=\"release\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("service_steps_abandoned_total{service=\"Tx\",step=\"settle\"} 1"),
            "{text}"
        );
        assert_eq!(metrics.steps_abandoned("Tx", Step::Release), 2);
    }

    #[test]
    fn exceeded_budgets_are_counted_by_service_and_limit() {
        let metrics = Metrics::new();
        let tx = ServiceInfo::of::<Tx>();
        Observer::budget_exceeded(&metrics, tx, BudgetLimit::MaxHeld);
        Observer::budget_exceeded(&metrics, tx, BudgetLimit::MaxHeld);
        Observer::budget_exceeded(&metrics, tx, BudgetLimit::MaxBuilds);

        let text = metrics.encode();
        assert!(
            text.contains("provision_budget_exceeded_total{service=\"Tx\",budget=\"max_held\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "provision_budget_exceeded_total{service=\"Tx\",budget=\"max_builds\"} 1"
            ),
            "{text}"
        );
        assert_eq!(metrics.budget_refusals("Tx", BudgetLimit::MaxHeld), 2);
    }
}
