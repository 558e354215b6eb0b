//! The reference service on Cloudflare Workers.
//!
//! The same router (`cloud_api::http::router`) and the same services as
//! the native server; only the database handle differs. `Db` (app, one per
//! isolate) holds where the database is, never a connection; `Conn`
//! (request) opens a socket through [`provision_worker::postgres`] on the
//! request's first query and closes it in its release, after the last byte
//! of the response. `GET /api/health` opens nothing.
//!
//! Configuration, from the Worker's bindings:
//!
//! * `HYPERDRIVE`: a Hyperdrive binding; if present, connections go
//!   through it.
//! * `DATABASE_URL`: otherwise, a secret or variable with the PostgreSQL
//!   URL (`sslmode=require` for TLS through StartTLS).
//! * `ACQUIRE_TIMEOUT` (default `5s`): how long getting a connection may
//!   take in all (the socket, the startup handshake, the retries of
//!   transient failures); past it, a JSON 503.
//! * `STATEMENT_TIMEOUT` (default `10s`): how long one statement may run;
//!   past it the statement is cancelled, the connection closed, and the
//!   request answers a JSON 503. Also `SET LOCAL` in every transaction:
//!   no session setting, so it works behind a transaction-mode pooler.
//! * `LOG_LEVEL`: `error`, `warn` (default), `info`, `debug`.
//!
//! Migrations are not run from the Worker: apply them natively with
//! `cloud-api migrate` (same migrations, same database).
//!
//! Build with `scripts/build-worker` (into `build/`), run locally in
//! workerd, deploy with wrangler (`wrangler.toml`): see the README.
#![cfg(target_arch = "wasm32")]

mod cron;
mod jobs;
mod log;
#[cfg(feature = "test-routes")]
mod test_routes;

#[cfg(feature = "isolate-connection")]
use std::future::Future;
#[cfg(feature = "isolate-connection")]
use std::pin::Pin;
#[cfg(feature = "isolate-connection")]
use std::sync::Arc;

use axum::body::Body;
use cloud_api::app::{App, services};
use cloud_api::metrics::Metrics;
use cloud_api::services::Db;
use cloud_api::settings::Settings;
use cloud_api::store::Database;
#[cfg(feature = "isolate-connection")]
use cloud_api::store::{Connect, Connection, StoreError};
use provision_worker::Isolate;
use provision_worker::postgres::PgTarget;
#[cfg(feature = "isolate-connection")]
use provision_worker::postgres::TlsSettingError;
use worker::{Context, Env, HttpRequest, MessageBatch, ScheduleContext, ScheduledEvent};

/// The app (router, registry, metrics), one per isolate.
static APP: Isolate<App> = Isolate::new();

async fn fetch(
    request: HttpRequest,
    env: Env,
    ctx: Context,
) -> worker::Result<http::Response<Body>> {
    let app = APP
        .get_or_try_init(|| start(&env))
        .await
        .map_err(|error| worker::Error::RustError(format!("the service cannot start: {error}")))?;
    #[cfg(feature = "test-routes")]
    if let Some(response) = test_routes::outside_axum(app, &request, &env, &ctx).await {
        return response;
    }
    Ok(provision_worker::serve(app.router.clone(), request, &ctx).await)
}

// The fetch entry point, with the panic guard (a panic answers its
// request's JSON 500) and the disconnect watch (a client that leaves
// cancels its request).
provision_worker::export_fetch!(fetch);

/// The cron trigger: deletes expired API tokens (see [`cron`]), in a
/// request scope of its own with the same services as a fetch.
#[worker::event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, ctx: ScheduleContext) {
    let app = match APP.get_or_try_init(|| start(&env)).await {
        Ok(app) => app,
        Err(error) => {
            worker::console_error!("cron {}: the service cannot start: {error}", event.cron());
            return;
        }
    };
    let days = cron::max_age_days(&env);
    let outcome = provision_worker::in_scope(&app.registry, &ctx, async {
        let deleted = cron::delete_expired_tokens(days).await?;
        #[cfg(feature = "test-routes")]
        test_routes::cron_hook(&event.cron());
        Ok(deleted)
    })
    .await;
    match outcome {
        Ok(deleted) => worker::console_log!(
            "cron {}: deleted {deleted} API tokens older than {days} days",
            event.cron()
        ),
        Err(error) => worker::console_error!("cron {}: failed: {error}", event.cron()),
    }
}

/// The queue consumer: each message is a job (see [`jobs`]) run in a
/// request scope of its own, acknowledged when it succeeds, retried when it
/// fails or panics.
#[worker::event(queue)]
async fn queue(
    batch: MessageBatch<serde_json::Value>,
    env: Env,
    ctx: Context,
) -> worker::Result<()> {
    let app = match APP.get_or_try_init(|| start(&env)).await {
        Ok(app) => app,
        Err(error) => {
            // Not an `Err`: workers-rs would turn it into a panic. The
            // batch is delivered again later.
            worker::console_error!("queue {}: the service cannot start: {error}", batch.queue());
            batch.retry_all();
            return Ok(());
        }
    };
    jobs::run(app, &batch, &ctx).await;
    Ok(())
}

/// Builds the app for this isolate: its services (no I/O: app services must
/// not open sockets) and the router.
async fn start(env: &Env) -> Result<App, provision::Error> {
    log::init(env);
    #[cfg(feature = "test-routes")]
    test_routes::cold_start(env).await;
    let target = PgTarget::from_env(env, "HYPERDRIVE", "DATABASE_URL")?;
    let metrics = Metrics::new();
    let db = Db::from_database(database(target, env)?, metrics.clone());
    let settings = Settings::for_database(None, "unused".into());
    let builder = services(settings.clone(), metrics).supply(db);
    #[cfg(feature = "test-routes")]
    let builder = test_routes::services(builder);
    let mut app = App::from_services(builder, &settings).await?;
    #[cfg(feature = "test-routes")]
    {
        app.router = test_routes::add(app.router, &app.registry);
    }
    #[cfg(not(feature = "test-routes"))]
    let _ = &mut app;
    Ok(app)
}

/// A connection per request (the Workers rule), through provision-postgres:
/// each request that asks opens a socket and a session (see
/// [`PgTarget::postgres`]), within `ACQUIRE_TIMEOUT`, transient failures
/// retried; each statement runs within `STATEMENT_TIMEOUT`; `Conn` closes
/// the connection in its release.
#[cfg(not(feature = "isolate-connection"))]
fn database(target: PgTarget, env: &Env) -> Result<Database, provision::Error> {
    let options = provision_postgres::PgOptions::default()
        .acquire_timeout(duration(env, "ACQUIRE_TIMEOUT", "5s")?)
        .statement_timeout(duration(env, "STATEMENT_TIMEOUT", "10s")?);
    Ok(Database::PostgresConnector(target.postgres(options)))
}

/// A duration setting (`500ms`, `5s`, `2m`) from the Worker's variables.
#[cfg(not(feature = "isolate-connection"))]
fn duration(env: &Env, name: &str, default: &str) -> Result<std::time::Duration, provision::Error> {
    let value = env.var(name).map(|v| v.to_string());
    let text = value.as_deref().unwrap_or(default);
    cloud_api::settings::parse_duration(text)
        .map_err(|why| provision::Error::new(format!("{name}: {why}")))
}

/// THE BUG, for the negative control only: one connection per isolate.
#[cfg(feature = "isolate-connection")]
fn database(target: PgTarget, _env: &Env) -> Result<Database, provision::Error> {
    Ok(Database::Connector(Arc::new(OncePerIsolate {
        target,
        client: std::sync::Mutex::new(None),
    })))
}

/// The source documents' bug: the database is "provided" once, at the
/// first request, and every later request gets the same connection. It
/// steps around every guard on purpose: the `RequestBound` session is
/// unwrapped and its client kept in the app-lifetime `Db`. Workers then
/// refuses the second request's I/O on the first request's socket.
#[cfg(feature = "isolate-connection")]
struct OncePerIsolate {
    target: PgTarget,
    client: std::sync::Mutex<Option<Arc<tokio_postgres::Client>>>,
}

#[cfg(feature = "isolate-connection")]
impl Connect for OncePerIsolate {
    fn connect(&self) -> Pin<Box<dyn Future<Output = Result<Connection, StoreError>> + Send + '_>> {
        Box::pin(async move {
            let kept = self
                .client
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let client = match kept {
                Some(client) => client,
                None => {
                    let session = self.target.connect().await.map_err(unavailable)?;
                    let (client, _closed) = session.into_inner().into_parts();
                    let client = Arc::new(client);
                    *self.client.lock().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
                    client
                }
            };
            Ok(Connection::from_shared_postgres_client(client))
        })
    }
}

#[cfg(feature = "isolate-connection")]
fn unavailable(error: provision::Error) -> StoreError {
    if TlsSettingError::is_cause_of(&error) {
        // Says which setting to change: the client sees it (a 503).
        return StoreError::Misconfigured(error.to_string());
    }
    StoreError::Unavailable(error.to_string().into())
}
