//! The span a task spawned for a request carries, so that the scope it
//! opens (a `finish` route's, a `spawn_scoped` job's) captures the
//! request's span and provision's `settle` and `release` spans stay in the
//! request's trace.

use tracing::Span;

/// The current span if provision's spans (DEBUG, target `provision::span`)
/// are on, else none: when they are off, only tracing's cached callsite
/// check is paid.
pub(crate) fn for_task() -> Span {
    if tracing::enabled!(target: "provision::span", tracing::Level::DEBUG) {
        Span::current()
    } else {
        Span::none()
    }
}
