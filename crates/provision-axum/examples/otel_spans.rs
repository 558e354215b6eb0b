//! provision's `build`, `settle` and `release` spans, exported by
//! OpenTelemetry as children of the request's span, with no collector: the
//! stdout exporter prints them.
//!
//! ```sh
//! cargo run -p provision-axum --example otel_spans
//! ```
//!
//! The spans are at DEBUG level (target `provision::span`), so a subscriber
//! must enable that level for them; at the usual `info` they cost only
//! tracing's cached callsite check. `tests/otel_spans.rs` runs this
//! example's router and request and checks the parents of the spans
//! exported.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::post;
use http_body_util::BodyExt;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use provision::{Error, Exit, Lazy, Registry, provide};
use provision_axum::ProvisionLayer;
use tower_service::Service;
use tracing::Instrument;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, Registry as Subscribers};

/// A transaction, as far as spans can tell: built on first use, committed
/// in `settle`, released after the response.
pub struct Tx;

#[provide(Request)]
impl Tx {
    async fn build() -> Result<Self, Error> {
        Ok(Tx)
    }
    async fn settle(&self, _exit: Exit) -> Result<(), Error> {
        Ok(()) // COMMIT
    }
    async fn release(self, _exit: Exit) -> Result<(), Error> {
        Ok(()) // ROLLBACK what is still open; the connection goes back
    }
}

/// `POST /orders`: builds the transaction.
pub async fn create_order(tx: Lazy<Tx>) -> Result<&'static str, Error> {
    let _tx = tx.get().await?;
    Ok("created")
}

/// Each request in a span of its own: the parent of provision's spans.
pub async fn request_span(request: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = request.uri().path(),
    );
    next.run(request).instrument(span).await
}

/// The application: one route that builds a transaction.
pub async fn router() -> Result<Router, Error> {
    let registry = Registry::builder().register::<Tx>().build().await?;
    Ok(Router::new()
        .route("/orders", post(create_order))
        .layer(ProvisionLayer::new(registry))
        .layer(middleware::from_fn(request_span)))
}

/// A tracer provider that hands each span to `exporter` when it ends.
pub fn tracer_provider(exporter: impl SpanExporter + 'static) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .build()
}

/// A subscriber that sends spans at DEBUG and above (provision's
/// included) to `provider`.
pub fn subscriber(provider: &SdkTracerProvider) -> impl tracing::Subscriber + Send + Sync {
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("otel_spans"))
        .with_filter(LevelFilter::DEBUG);
    Subscribers::default().with(otel)
}

/// Sends `POST /orders` to `router` in-process and reads the answer to its
/// end (the transaction is released by then).
pub async fn send_one_request(router: &mut Router) -> (http::StatusCode, String) {
    let request = http::Request::post("/orders").body(Body::empty()).unwrap();
    let response = router.call(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let provider = tracer_provider(opentelemetry_stdout::SpanExporter::default());
    let _guard = tracing::subscriber::set_default(subscriber(&provider));
    let mut app = router().await?;
    let (status, body) = send_one_request(&mut app).await;
    println!("POST /orders: {status} {body}");
    // Printed as each span ends: `build`, `settle` and `release`, each with
    // the `request` span's id as its parent, then `request` itself.
    provider.shutdown().expect("spans flushed");
    Ok(())
}
