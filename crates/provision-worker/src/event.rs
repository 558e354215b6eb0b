//! [`in_scope`]: a request scope for an event that is not a fetch: a cron
//! trigger (`scheduled`), a queue batch (`queue`).

use std::future::Future;
use std::pin::pin;

use http::StatusCode;
use provision::integration::{CatchUnwind, RegistryControl, ScopeControl, panic_message};
use provision::{Error, Exit, Registry, RequestScope};
use provision_axum::Background;

use crate::background::WaitUntil;

/// Runs `work` inside a new request scope of `registry`, as a fetch event
/// runs its handler: services are built on first use
/// (`RequestScope::current()?.resolve::<Tx>()`), settled when `work`
/// returns (`Exit::Success` if it returned `Ok`, so a transaction commits;
/// `Exit::Failure` otherwise, so it rolls back), and released, newest
/// first, before this returns. A panic in `work` (in a `panic=unwind`
/// build) releases with `Exit::Panic` and returns an error; if this future
/// is dropped before the end, the release runs through `ctx`'s
/// `wait_until` with `Exit::Cancelled`.
///
/// `ctx` is the event's context: `worker::ScheduleContext` for a cron
/// trigger, `worker::Context` for a queue batch or a fetch. A service that
/// depends on [`RequestHead`](provision::RequestHead) cannot be built here
/// (there is no HTTP request).
///
/// ```ignore
/// #[worker::event(scheduled)]
/// async fn scheduled(event: ScheduledEvent, env: Env, ctx: ScheduleContext) {
///     let app = APP.get_or_try_init(|| start(&env)).await.unwrap();
///     let outcome = provision_worker::in_scope(&app.registry, &ctx, async {
///         let tx = RequestScope::current().unwrap().resolve::<Tx>().await?;
///         tx.get()?.delete_expired_tokens().await?;
///         Ok(())
///     })
///     .await;
/// }
/// ```
pub async fn in_scope<T, F>(registry: &Registry, ctx: &impl WaitUntil, work: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    let mut event = pin!(registry.request(CatchUnwind::new(work)));
    let outcome = event.as_mut().await;
    let Some(scope) = event.as_mut().take_scope() else {
        return unwound(outcome); // it asked for nothing
    };
    let guard = CloseOnDrop(Some(scope), ctx.background());
    let scope = guard.0.as_ref().expect("set above");
    let exit = match &outcome {
        Ok(Ok(_)) => Exit::Success(StatusCode::OK),
        Ok(Err(error)) => {
            Exit::Failure(error.status().unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        }
        Err(_) => Exit::Panic,
    };
    let (outcome, exit) = match scope.settle(exit).await {
        Ok(()) => (unwound(outcome), exit),
        Err(error) => (Err(error), Exit::Failure(StatusCode::INTERNAL_SERVER_ERROR)),
    };
    scope.close(exit).await;
    outcome
}

/// A caught panic as an error (it has been logged by the panic hook).
fn unwound<T>(
    outcome: Result<Result<T, Error>, Box<dyn std::any::Any + Send>>,
) -> Result<T, Error> {
    outcome.unwrap_or_else(|panic| {
        Err(Error::new(format!(
            "the event panicked: {}",
            panic_message(&*panic)
        )))
    })
}

struct CloseOnDrop(Option<RequestScope>, Background);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(scope) = self.0.take()
            && !scope.is_closing()
        {
            self.1
                .spawn(async move { scope.close(Exit::Cancelled).await });
        }
    }
}
