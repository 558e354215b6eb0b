//! [`spawn`]: a tokio task that runs inside the current request's scope;
//! [`spawn_scoped`]: one that outlives it, in a scope of its own.

use std::future::Future;

use provision::{Error, RequestScope};
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
/// # use provision::{Error, RequestScope};
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

/// Spawns `work` on tokio as a job with a scope of its own
/// ([`Registry::job`](provision::Registry::job)), from inside a request, for
/// work that must outlive the response (send the e-mail, index the upload).
///
/// Unlike [`spawn`], it does not hold the request's services back: the
/// request settles and releases at its own end, and the task's services
/// (its own transaction, its own connection) are built in the task's scope,
/// settled when `work` returns `Ok`, and released with the task's exit
/// (success, failure, panic, shutdown, or cancelled if the task is aborted).
/// Nothing of the request's scope crosses over: a request-bound value moved
/// into `work` refuses to be used there, as on Cloudflare Workers.
///
/// Outside a request (no registry to open a scope from) the task returns an
/// error at once; call [`Registry::job`](provision::Registry::job) there.
///
/// ```
/// # use provision::{Error, RequestScope};
/// async fn handler() -> &'static str {
///     provision_axum::spawn_scoped("send-welcome-mail", async {
///         let scope = RequestScope::current().expect("the task's own scope");
///         // scope.resolve::<Tx>().await? ... a Tx of its own, committed when this returns Ok
///         Ok(())
///     });
///     "accepted"
/// }
/// ```
pub fn spawn_scoped<T, F>(name: &'static str, work: F) -> JoinHandle<Result<T, Error>>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    let registry = RequestScope::current().map(|scope| scope.registry().clone());
    let background = crate::background::current_runtime_background();
    let span = crate::span::for_task();
    let task = async move {
        let Some(registry) = registry else {
            return Err(Error::new(format!(
                "spawn_scoped(\"{name}\") called outside a request; use Registry::job there"
            )));
        };
        registry
            .job(name)
            .on_drop(move |close| {
                if let Some(background) = background {
                    background.spawn(close);
                }
            })
            .run(work)
            .await
    };
    tokio::spawn(tracing::Instrument::instrument(task, span))
}
