//! How a `finish` route ended after its client went away, counted per
//! route in `/metrics` as `provision_finish_total{method,route,outcome}`:
//! `completed` (the handler answered; its services were then settled and
//! released as usual), `cut` (its deadline, or the end of the shutdown
//! grace period, dropped it: rolled back), `panicked`.
//!
//! `provision_axum::Finish` counts outcomes for all the routes it wraps
//! together (`Finish::outcomes`) and does not say which route, nor tell a
//! panic from an answer; so this watches from both sides of it, without
//! changing it: one middleware outside (did the client leave before the
//! answer?) and one inside, on the finishing task (did the handler answer,
//! panic, or get dropped?). A run is counted once both are known, and only
//! if its client left: a client still there sees the outcome itself, and
//! `http_requests_total` counts it.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::MethodRouter;
use provision_axum::Finish;

use crate::metrics::Metrics;

/// `route` under the `finish` policy, its outcomes after a client left
/// counted in `metrics` (`provision_finish_total`).
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, routing::post};
/// use cloud_api::http::finish_counted;
/// use cloud_api::metrics::Metrics;
/// use provision_axum::Finish;
///
/// async fn pay() -> &'static str { "paid" }
///
/// let metrics = Metrics::new();
/// let finish = Finish::within(Duration::from_secs(30));
/// let app: Router = Router::new().route("/payments", finish_counted(post(pay), &finish, &metrics));
/// ```
pub fn finish_counted(route: MethodRouter, finish: &Finish, metrics: &Metrics) -> MethodRouter {
    let counting = Counting {
        metrics: metrics.clone(),
        started: Arc::default(),
    };
    route
        .layer(middleware::from_fn(handler_side))
        .layer(finish.clone())
        .layer(middleware::from_fn_with_state(counting, client_side))
}

/// What the outer middleware of one route counts into.
#[derive(Clone)]
struct Counting {
    metrics: Metrics,
    /// The methods whose series were started at zero (a route may finish
    /// several: PATCH and DELETE).
    started: Arc<Mutex<Vec<String>>>,
}

impl Counting {
    /// Starts the series of `method` on `route` at zero on its first call:
    /// a series Prometheus has seen at zero shows its first increment in
    /// `rate()`, and the metric is on `/metrics` before anything happened.
    fn start(&self, method: &str, route: &str) {
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        if !started.iter().any(|m| m == method) {
            started.push(method.to_owned());
            for outcome in [Outcome::Completed, Outcome::Cut, Outcome::Panicked] {
                self.metrics.start_finish(method, route, outcome.label());
            }
        }
    }
}

/// How a finishing handler ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Completed,
    Cut,
    Panicked,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Cut => "cut",
            Outcome::Panicked => "panicked",
        }
    }
}

/// One call of a finishing route: what each side has seen so far.
#[derive(Clone)]
struct Run {
    inner: Arc<RunInner>,
}

struct RunInner {
    metrics: Metrics,
    method: String,
    route: String,
    /// Whether the client left before its answer; how the handler ended.
    seen: Mutex<(Option<bool>, Option<Outcome>)>,
}

impl Run {
    fn client(&self, left: bool) {
        self.update(|seen| seen.0 = Some(left));
    }

    fn handler(&self, outcome: Outcome) {
        self.update(|seen| seen.1 = Some(outcome));
    }

    fn update(&self, f: impl FnOnce(&mut (Option<bool>, Option<Outcome>))) {
        let inner = &self.inner;
        let mut seen = inner.seen.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut seen);
        // Each side reports once, so this holds once.
        if let (Some(true), Some(outcome)) = *seen {
            inner
                .metrics
                .record_finish(&inner.method, &inner.route, outcome.label());
        }
    }
}

/// Outside `Finish`: its future is dropped when the client leaves.
async fn client_side(
    State(counting): State<Counting>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = request.method().as_str().to_owned();
    counting.start(&method, &route);
    let run = Run {
        inner: Arc::new(RunInner {
            metrics: counting.metrics,
            method,
            route,
            seen: Mutex::default(),
        }),
    };
    request.extensions_mut().insert(run.clone());
    let mut waiting = ClientWaits(Some(run));
    let response = next.run(request).await;
    if let Some(run) = waiting.0.take() {
        run.client(false);
    }
    response
}

/// Reports the client gone if dropped before the answer.
struct ClientWaits(Option<Run>);

impl Drop for ClientWaits {
    fn drop(&mut self) {
        if let Some(run) = self.0.take() {
            run.client(true);
        }
    }
}

/// Inside `Finish`, on its task: it runs until the handler answers, or is
/// dropped (cut), or a panic unwinds through it.
async fn handler_side(request: Request, next: Next) -> Response {
    let Some(run) = request.extensions().get::<Run>().cloned() else {
        return next.run(request).await;
    };
    let mut running = Running(Some(run));
    let response = next.run(request).await;
    if let Some(run) = running.0.take() {
        run.handler(Outcome::Completed);
    }
    response
}

/// Reports how the handler ended if it did not answer: dropped while a
/// panic unwinds through it, or dropped (cut).
struct Running(Option<Run>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(run) = self.0.take() {
            let outcome = if std::thread::panicking() {
                Outcome::Panicked
            } else {
                Outcome::Cut
            };
            run.handler(outcome);
        }
    }
}
