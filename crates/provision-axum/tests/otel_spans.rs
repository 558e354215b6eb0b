//! provision's spans, exported by OpenTelemetry: the example
//! `examples/otel_spans.rs` (its router, its request), with an in-memory
//! exporter in place of stdout, so the parent of each span can be checked.

#[allow(dead_code)] // its `main` is the example's, not the test's
#[path = "../examples/otel_spans.rs"]
mod example;

use std::time::Duration;

use axum::body::Body;
use opentelemetry::trace::SpanId;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use tower_service::Service;

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one `{name}` span in {spans:#?}");
    found[0]
}

/// The exported spans once `name` has ended, polled for at most 5 s (a
/// release after the response ends on another task).
async fn spans_once_ended(exporter: &InMemorySpanExporter, name: &str) -> Vec<SpanData> {
    for _ in 0..500 {
        let spans = exporter.get_finished_spans().unwrap();
        if spans.iter().any(|s| s.name == name) {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no `{name}` span exported within 5 s");
}

#[tokio::test]
async fn build_settle_and_release_are_children_of_the_request_span() {
    let exporter = InMemorySpanExporter::default();
    let provider = example::tracer_provider(exporter.clone());
    let _guard = tracing::subscriber::set_default(example::subscriber(&provider));
    let mut app = example::router().await.unwrap();

    let (status, body) = example::send_one_request(&mut app).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "created"));

    let spans = spans_once_ended(&exporter, "request").await;
    let request = named(&spans, "request");
    assert_eq!(
        request.parent_span_id,
        SpanId::INVALID,
        "the request is the root"
    );
    for name in ["build", "settle", "release"] {
        let span = named(&spans, name);
        assert_eq!(
            span.parent_span_id,
            request.span_context.span_id(),
            "`{name}` is a child of the request span"
        );
        assert_eq!(
            span.span_context.trace_id(),
            request.span_context.trace_id(),
            "`{name}` is in the request's trace"
        );
        assert_eq!(attribute(span, "service").as_deref(), Some("Tx"), "{name}");
    }
    assert_eq!(
        attribute(named(&spans, "release"), "exit").as_deref(),
        Some("success")
    );
}

/// A client that leaves before the body's end: the release runs after the
/// response, on a task of its own (provision-axum's `Background`), and is
/// still the request's child, with the exit it was given.
#[tokio::test]
async fn a_release_after_the_response_is_still_a_child_of_the_request_span() {
    let exporter = InMemorySpanExporter::default();
    let provider = example::tracer_provider(exporter.clone());
    // The test's runtime has one thread: the release's task runs on it, so
    // it sees this subscriber, but not the request's span (a new task
    // starts with no current span): its parent comes from the scope.
    let _guard = tracing::subscriber::set_default(example::subscriber(&provider));
    let mut app = example::router().await.unwrap();

    let request = http::Request::post("/orders").body(Body::empty()).unwrap();
    let response = app.call(request).await.unwrap();
    assert_eq!(response.status(), 200);
    drop(response); // unread: the client went away

    let spans = spans_once_ended(&exporter, "release").await;
    let release = named(&spans, "release");
    assert_eq!(attribute(release, "exit").as_deref(), Some("cancelled"));
    let spans = spans_once_ended(&exporter, "request").await;
    let request = named(&spans, "request");
    assert_eq!(release.parent_span_id, request.span_context.span_id());
    assert_eq!(
        release.span_context.trace_id(),
        request.span_context.trace_id()
    );
}

/// A `finish` route runs on a task of its own, in a scope of its own: the
/// task carries the request's span, so its build, settle and release are
/// still the request's children.
#[tokio::test]
async fn a_finish_route_s_spans_are_children_of_the_request_span() {
    use axum::routing::post;
    use provision_axum::{Finish, ProvisionLayer};

    let exporter = InMemorySpanExporter::default();
    let provider = example::tracer_provider(exporter.clone());
    let _guard = tracing::subscriber::set_default(example::subscriber(&provider));
    let registry = provision::Registry::builder()
        .register::<example::Tx>()
        .build()
        .await
        .unwrap();
    let mut app = axum::Router::new()
        .route(
            "/orders",
            post(example::create_order).layer(Finish::within(Duration::from_secs(30))),
        )
        .layer(ProvisionLayer::new(registry))
        .layer(axum::middleware::from_fn(example::request_span));

    let (status, body) = example::send_one_request(&mut app).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "created"));

    let spans = spans_once_ended(&exporter, "request").await;
    let request = named(&spans, "request");
    for name in ["build", "settle", "release"] {
        assert_eq!(
            named(&spans, name).parent_span_id,
            request.span_context.span_id(),
            "`{name}` is a child of the request span"
        );
    }
}
