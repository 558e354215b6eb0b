//! [`in_scope`]: a request scope for an event that is not a fetch: a cron
//! trigger (`scheduled`), a queue batch (`queue`).

use std::future::Future;

use provision::{Error, Registry};

use crate::background::WaitUntil;

/// Runs `work` inside a new request scope of `registry`
/// ([`Registry::job`](provision::Registry::job)), as a fetch event runs its
/// handler: services are built on first use
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
    // The core's job scope, with the event's `wait_until` for a release
    // that nothing can await any more.
    let background = ctx.background();
    registry
        .job("event")
        .on_drop(move |close| background.spawn(close))
        .run(work)
        .await
}
