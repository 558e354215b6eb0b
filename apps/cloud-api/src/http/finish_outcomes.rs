//! How a `finish` route ended after its client went away, counted per
//! route in `/metrics` as `provision_finish_total{method,route,outcome}`:
//! `completed` (the handler answered; its services were then settled and
//! released as usual), `cut` (its deadline, or the end of the shutdown
//! grace period, dropped it: rolled back), `panicked`.
//!
//! `provision_axum::Finish` reports each such run itself
//! ([`Finish::report`]), with its method and matched path, only when its
//! client has left: a request whose client stays pays for a copy of its
//! method and matched path, no middleware, lock or allocation. A client
//! still there sees the outcome itself, and `http_requests_total` counts
//! it.

use axum::routing::MethodRouter;
use provision_axum::{Finish, FinishOutcome};

use crate::metrics::Metrics;

/// The routes of [`router`](super::router) under the `finish` policy, as
/// (method, route): their `provision_finish_total` series are started at
/// zero when the router is built, so that `/metrics` shows them before
/// anything happened and Prometheus's `rate()` sees their first increment.
/// Each one's OpenAPI description says `Disconnect policy: finish`
/// (`tests/it/metrics.rs` checks the two agree).
pub const FINISH_ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/users"),
    ("POST", "/api/orgs/{org_id}/members"),
    ("PATCH", "/api/orgs/{org_id}/members/{user_id}"),
    ("DELETE", "/api/orgs/{org_id}/members/{user_id}"),
    ("POST", "/api/scopes/{scope_id}/sources"),
    ("PATCH", "/api/scopes/{scope_id}/sources/{source_id}"),
    ("DELETE", "/api/scopes/{scope_id}/sources/{source_id}"),
];

/// Starts the series of every route in [`FINISH_ROUTES`] at zero.
pub(crate) fn start_finish_series(metrics: &Metrics) {
    for (method, route) in FINISH_ROUTES {
        for outcome in FinishOutcome::ALL {
            metrics.start_finish(method, route, outcome.label());
        }
    }
}

/// `route` under the `finish` policy, its outcomes after a client left
/// counted in `metrics` (`provision_finish_total`). The outcomes stay
/// counted in `finish` too ([`Finish::outcomes`], shared).
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
    let metrics = metrics.clone();
    route.layer(finish.clone().report(move |report| {
        metrics.record_finish(
            report.method.as_str(),
            report.route.unwrap_or("unmatched"),
            report.outcome.label(),
        );
    }))
}
