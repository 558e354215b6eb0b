//! [`spawn`]: a tokio task that runs inside the current request's scope.

use std::future::Future;

use provision::RequestScope;
use tokio::task::JoinHandle;

/// Spawns `future` on tokio inside the current request's scope, if there is
/// one (outside a request it is plain `tokio::spawn`).
///
/// Inside, services resolve from the request's scope and request-bound values
/// of that request may be used. The request's services are not released
/// until the task has finished or been dropped, so a task may keep using
/// them after the response has been sent.
///
/// ```
/// # use provision::RequestScope;
/// async fn handler() -> &'static str {
///     provision_axum::spawn(async {
///         // Still inside the request: services resolve from its scope.
///         assert!(RequestScope::current().is_some());
///     });
///     "accepted"
/// }
/// ```
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match RequestScope::current() {
        Some(scope) => tokio::spawn(scope.bind(future)),
        None => tokio::spawn(future),
    }
}
