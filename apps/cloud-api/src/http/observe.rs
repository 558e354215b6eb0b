//! What every request leaves behind: a request id, a log line (route,
//! status, latency) and Prometheus counts; and `GET /metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(target_arch = "wasm32"))]
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use tracing::Instrument;

use crate::metrics::Metrics;

static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// The middleware: outermost, so its latency includes everything.
pub async fn observe(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed).to_string());
    // The span is DEBUG, as tower-http's `TraceLayer` makes it: a span per
    // request costs more than the access line itself (measured: 5,700
    // instructions of a health request's 16,500 of logging), so at the
    // default `info` the line carries the request's id, method and route
    // itself; with `cloud_api=debug` (or an OpenTelemetry layer) every line
    // of the request, provision's included, is inside this span.
    let span = tracing::debug_span!("request", id = %id, method = %method, route = %route);
    let mut response = next.run(request).instrument(span).await;
    let elapsed = started.elapsed();
    let status = response.status();
    metrics.record_request(method.as_str(), &route, status.as_u16(), elapsed);
    tracing::info!(
        id = %id,
        method = %method,
        route = %route,
        status = status.as_u16(),
        latency_us = elapsed.as_micros() as u64,
        "answered"
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// What `GET /metrics` serves, and the token it asks for, if any.
#[derive(Clone)]
pub struct MetricsPage {
    metrics: Metrics,
    /// SHA-256 of `--metrics-token`: comparing digests takes the same time
    /// whatever a wrong token shares with the right one.
    token_digest: Option<[u8; 32]>,
}

impl MetricsPage {
    /// The page of `metrics`, private to holders of `token` if given.
    pub fn new(metrics: Metrics, token: Option<String>) -> MetricsPage {
        MetricsPage {
            metrics,
            token_digest: token.map(|t| digest(t.as_bytes())),
        }
    }

    fn admits(&self, headers: &http::HeaderMap) -> bool {
        let Some(expected) = &self.token_digest else {
            return true;
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            Some(token) => {
                let got = digest(token.as_bytes());
                got.iter().zip(expected).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
            }
            None => false,
        }
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// `GET /metrics`: prometheus-client writes the OpenMetrics text format
/// (`_total` counters, a closing `# EOF`), so that is the content type.
pub async fn metrics(State(page): State<MetricsPage>, headers: http::HeaderMap) -> Response {
    if !page.admits(&headers) {
        let mut response = super::ApiError::new(
            http::StatusCode::UNAUTHORIZED,
            "metrics need the bearer token set with --metrics-token",
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"metrics\""),
        );
        return response;
    }
    let mut response = page.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// The clock on Cloudflare Workers, where `std::time::Instant` panics:
/// JavaScript's `Date.now()`, which there advances with I/O (so it measures
/// the time a request spent waiting, not computing).
#[cfg(target_arch = "wasm32")]
struct Instant(f64);

#[cfg(target_arch = "wasm32")]
impl Instant {
    fn now() -> Instant {
        Instant(js_sys::Date::now())
    }

    fn elapsed(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64((js_sys::Date::now() - self.0).max(0.0) / 1000.0)
    }
}
