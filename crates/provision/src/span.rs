//! `tracing` spans for each service's build, settle and release: children
//! of the request's span, so a tracing subscriber (an OpenTelemetry
//! exporter through `tracing-opentelemetry`) shows them inside the
//! request's trace.
//!
//! Every span here is at DEBUG level with the target `provision::span`. A
//! subscriber that does not enable it (the usual `info`) pays for tracing's
//! cached callsite check and nothing else: no span is made, no parent
//! looked up, no field formatted, and a scope captures no span.

use tracing::Span;

use crate::{Exit, ServiceInfo};

/// The span a scope's settle and release spans are children of: the
/// span current when the scope opened (the request's, or a job's), kept by
/// the scope so that a release run after the response, on another task,
/// still belongs to the request. `Span::none()` when spans are off.
pub(crate) fn capture() -> Span {
    if tracing::enabled!(target: "provision::span", tracing::Level::DEBUG) {
        Span::current()
    } else {
        Span::none()
    }
}

/// The parent of a new span: `parent` if it is a span, else the span
/// current on this thread (none: a root span).
fn parent_id(parent: &Span) -> Option<tracing::Id> {
    parent.id().or_else(|| Span::current().id())
}

/// The span of one build of `service`. Its parent is the span current
/// where the build runs (the handler's, or the request's), else `scope`'s.
pub(crate) fn build(service: &ServiceInfo, scope: Option<&Span>) -> Span {
    let current = || Span::current().id().or_else(|| scope.and_then(Span::id));
    tracing::debug_span!(
        target: "provision::span",
        parent: current(),
        "build",
        service = service.name(),
        lifetime = service.lifetime().as_str(),
        error = tracing::field::Empty,
    )
}

/// The span of `service`'s settle step, a child of `scope` (the request's
/// span).
pub(crate) fn settle(service: &ServiceInfo, exit: Exit, scope: &Span) -> Span {
    tracing::debug_span!(
        target: "provision::span",
        parent: parent_id(scope),
        "settle",
        service = service.name(),
        lifetime = service.lifetime().as_str(),
        exit = exit.label(),
        error = tracing::field::Empty,
    )
}

/// The span of `service`'s release step, a child of `scope` (the
/// request's span) even when it runs after the response, on another task.
pub(crate) fn release(service: &ServiceInfo, exit: Exit, scope: &Span) -> Span {
    tracing::debug_span!(
        target: "provision::span",
        parent: parent_id(scope),
        "release",
        service = service.name(),
        lifetime = service.lifetime().as_str(),
        exit = exit.label(),
        error = tracing::field::Empty,
    )
}

/// Records `error` on `span` (nothing when the span is off).
pub(crate) fn record_error(span: &Span, error: &crate::Error) {
    if !span.is_disabled() {
        span.record("error", tracing::field::display(error));
    }
}
