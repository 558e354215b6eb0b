//! Prometheus metrics at `GET /metrics`: HTTP requests by route and status,
//! latency, database connections opened, and every service's lifecycle
//! (`provision_service_*`, from provision's `PrometheusObserver`).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry as MetricRegistry;
use provision::prometheus::PrometheusObserver;

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
struct FinishLabels {
    method: String,
    route: String,
    outcome: &'static str,
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
    db_connections_opened: Counter,
    finish: Family<FinishLabels, Counter>,
    services: PrometheusObserver,
}

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
        let db_connections_opened = Counter::default();
        let finish = Family::<FinishLabels, Counter>::default();
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
            "db_connections_opened",
            "Database connections opened by the service (per-request mode, or new pool connections)",
            db_connections_opened.clone(),
        );
        registry.register(
            "provision_finish",
            "`finish` routes whose client left before the answer, by how the handler ended: completed, cut (deadline or shutdown; rolled back), panicked",
            finish.clone(),
        );
        let services = PrometheusObserver::new(&mut registry);
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                latency,
                db_connections_opened,
                finish,
                services,
            }),
        }
    }

    /// The observer that counts every service's builds, settles and
    /// releases into these metrics: the registry's
    /// ([`RegistryBuilder::observer`](provision::RegistryBuilder::observer)).
    pub fn observer(&self) -> PrometheusObserver {
        self.inner.services.clone()
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

    /// Counts a `finish` route whose client left, by how its handler ended
    /// (`completed`, `cut`, `panicked`; `http/finish_outcomes.rs`), as
    /// `provision_axum::Finish::report` tells it.
    pub fn record_finish(&self, method: &str, route: &str, outcome: &'static str) {
        self.inner
            .finish
            .get_or_create(&FinishLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Creates the series of [`record_finish`](Metrics::record_finish) at
    /// zero, if it does not exist yet.
    pub fn start_finish(&self, method: &str, route: &str, outcome: &'static str) {
        // The guard is only the family's lock; the series stays.
        drop(self.inner.finish.get_or_create(&FinishLabels {
            method: method.to_owned(),
            route: route.to_owned(),
            outcome,
        }));
    }

    /// Counts a database connection opened.
    pub fn record_connection_opened(&self) {
        self.inner.db_connections_opened.inc();
    }

    /// Database connections opened so far.
    pub fn connections_opened(&self) -> u64 {
        self.inner.db_connections_opened.get()
    }

    /// Builds of `service` refused so far for exceeding `limit`
    /// (`provision_budget_exceeded_total`), read from the exposition: for
    /// tests and diagnostics, not for the request path.
    pub fn budget_refusals(&self, service: &str, limit: provision::BudgetLimit) -> u64 {
        let service = format!("service=\"{service}\"");
        let budget = format!("budget=\"{}\"", limit.label());
        self.encode()
            .lines()
            .filter(|line| line.starts_with("provision_budget_exceeded_total{"))
            .filter(|line| line.contains(&service) && line.contains(&budget))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
