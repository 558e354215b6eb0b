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
//! * `LOG_LEVEL`: `error`, `warn` (default), `info`, `debug`.
//!
//! Migrations are not run from the Worker: apply them natively with
//! `cloud-api migrate` (same migrations, same database).
//!
//! Build with `scripts/build-worker` (into `build/`), run locally in
//! workerd, deploy with wrangler (`wrangler.toml`): see the README.
#![cfg(target_arch = "wasm32")]

mod cron;
mod log;
#[cfg(feature = "test-routes")]
mod test_routes;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use cloud_api::app::{App, services};
use cloud_api::metrics::Metrics;
use cloud_api::services::Db;
use cloud_api::settings::Settings;
use cloud_api::store::{Connect, Connection, Database, StoreError};
use provision_worker::Isolate;
use provision_worker::postgres::{PgTarget, TlsSettingError};
use worker::{Context, Env, HttpRequest, ScheduleContext, ScheduledEvent};

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

/// Builds the app for this isolate: its services (no I/O: app services must
/// not open sockets) and the router.
async fn start(env: &Env) -> Result<App, provision::Error> {
    log::init(env);
    #[cfg(feature = "test-routes")]
    test_routes::cold_start(env).await;
    let target = PgTarget::from_env(env, "HYPERDRIVE", "DATABASE_URL")?;
    let metrics = Metrics::new();
    let db = Db::from_database(Database::Connector(connector(target)), metrics.clone());
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

/// A connection per request: the Workers rule.
#[cfg(not(feature = "isolate-connection"))]
fn connector(target: PgTarget) -> Arc<dyn Connect> {
    Arc::new(PerRequest { target })
}

/// Opens a socket and a PostgreSQL session for the request that asks,
/// bound to it (see [`PgTarget::connect`]); `Conn` closes it in its
/// release.
#[cfg(not(feature = "isolate-connection"))]
struct PerRequest {
    target: PgTarget,
}

#[cfg(not(feature = "isolate-connection"))]
impl Connect for PerRequest {
    fn connect(&self) -> Pin<Box<dyn Future<Output = Result<Connection, StoreError>> + Send + '_>> {
        Box::pin(async move {
            let session = self.target.connect().await.map_err(unavailable)?;
            // `Conn` binds the connection to this request again, by type.
            let (client, closed) = session.into_inner().into_parts();
            Ok(Connection::from_postgres_client_until(client, closed))
        })
    }
}

/// THE BUG, for the negative control only: one connection per isolate.
#[cfg(feature = "isolate-connection")]
fn connector(target: PgTarget) -> Arc<dyn Connect> {
    Arc::new(OncePerIsolate {
        target,
        client: std::sync::Mutex::new(None),
    })
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

fn unavailable(error: provision::Error) -> StoreError {
    if TlsSettingError::is_cause_of(&error) {
        // Says which setting to change: the client sees it (a 503).
        return StoreError::Misconfigured(error.to_string());
    }
    StoreError::Unavailable(error.to_string().into())
}
