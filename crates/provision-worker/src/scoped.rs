//! [`scoped`]: a plain workers-rs handler inside a request scope.

use std::future::Future;
use std::pin::pin;

use http::StatusCode;
use provision::integration::{RegistryControl, ScopeControl};
use provision::{Exit, Registry, RequestScope};
use worker::Context;

/// Runs `handler` (a plain workers-rs handler, without axum) inside a new
/// request scope of `registry`, then settles and releases everything it
/// acquired **before** returning its response.
///
/// Inside, `RequestScope::current()` resolves services
/// (`scope.resolve::<Conn>().await`). The response must not stream from a
/// request service: the service is released when this returns. A service
/// that depends on [`RequestHead`](provision::RequestHead) cannot be built
/// here (it is seeded by the axum extractors).
///
/// If settling fails (a commit, say), the response becomes that error as
/// JSON. If this future is dropped before the end, the release goes to the
/// event's `wait_until`.
pub async fn scoped<F>(
    registry: &Registry,
    ctx: &Context,
    handler: F,
) -> worker::Result<worker::Response>
where
    F: Future<Output = worker::Result<worker::Response>>,
{
    let mut request = pin!(registry.request(handler));
    let outcome = request.as_mut().await;
    let Some(scope) = request.as_mut().take_scope() else {
        return outcome; // it asked for nothing
    };
    let guard = CloseOnDrop(Some(scope), ctx);
    let scope = guard.0.as_ref().expect("set above");
    let exit = match &outcome {
        Ok(response) => Exit::from_status(
            StatusCode::from_u16(response.status_code())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        ),
        Err(_) => Exit::Failure(StatusCode::INTERNAL_SERVER_ERROR),
    };
    let (outcome, exit) = match scope.settle(exit).await {
        Ok(()) => (outcome, exit),
        Err(error) => {
            let status = error.status().unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = if status.is_server_error() {
                "internal error: the request's work could not be completed"
            } else {
                error.message()
            };
            (json_error(status, message), Exit::Failure(status))
        }
    };
    scope.close(exit).await;
    outcome
}

/// A JSON error response, `{"error": "..."}`.
pub(crate) fn json_error(status: StatusCode, message: &str) -> worker::Result<worker::Response> {
    Ok(
        worker::Response::from_json(&serde_json::json!({ "error": message }))?
            .with_status(status.as_u16()),
    )
}

struct CloseOnDrop<'a>(Option<RequestScope>, &'a Context);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(scope) = self.0.take()
            && !scope.is_closing()
        {
            crate::background(self.1).spawn(async move { scope.close(Exit::Cancelled).await });
        }
    }
}
