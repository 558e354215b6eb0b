//! `bench-baseline`: the users contract of `cloud-api`, written by hand the
//! way a competent axum user would without provision. It is the "1.0" every
//! provision figure in `bench/RESULTS.md` is divided by.
//!
//! Same routes, JSON, status codes and error texts as `cloud-api` for
//! `GET /api/health`, `GET|POST /api/users` and `GET /api/users/{id}`;
//! bearer-token authentication resolved per request from the same tables;
//! byte-for-byte the same SQL (see `users.rs` and `auth.rs`); the same
//! request metrics and log line per request as `cloud-api`'s `observe`
//! middleware, so that the comparison isolates provision. The database must
//! already be migrated (`cloud-api migrate`).
//!
//! Two database modes, as in `cloud-api`:
//!
//! * `pool`: a deadpool-postgres pool, leased by the handler's extractor and
//!   returned when the handler's future is dropped;
//! * `per-request`: the extractor connects (`tokio_postgres::connect`) and the
//!   connection is closed when the handler is done with it.
//!
//! Served as a production server is: hyper's http1 connection with a header
//! read timeout (slow or idle clients are closed) and a time bound on every
//! request (`tokio::time::timeout`, a JSON 504), cloud-api's two defaults;
//! and in pool mode the list route under cloud-api's list cap (half the
//! pool, `auth.rs` `ListAuthed`), so that what the benchmark measures is
//! provision, not these guards.

mod auth;
mod db;
mod error;
mod observe;
mod users;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use clap::{Parser, ValueEnum};
use http::{Method, StatusCode, Uri};

use crate::db::Db;
use crate::error::ApiError;
use crate::observe::Metrics;

/// How requests get a PostgreSQL connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DbMode {
    /// Lease from a pool shared by all requests.
    Pool,
    /// Connect for each request that needs the database; close at its end.
    PerRequest,
}

/// The hand-written axum baseline of the provision benchmark.
#[derive(Debug, Parser)]
#[command(name = "bench-baseline", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// PostgreSQL URL of a database migrated by `cloud-api migrate`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// How requests get a PostgreSQL connection.
    #[arg(long, env = "DB_MODE", value_enum, default_value_t = DbMode::Pool)]
    db_mode: DbMode,
    /// Connections in the pool (pool mode); cloud-api's default.
    #[arg(long, env = "POOL_SIZE", default_value_t = 16)]
    pool_size: usize,
    /// Longest a request waits for a connection, in seconds; cloud-api's
    /// default.
    #[arg(long, env = "ACQUIRE_TIMEOUT_SECS", default_value_t = 5)]
    acquire_timeout_secs: u64,
    /// Largest request body accepted, in bytes; cloud-api's default.
    #[arg(long, env = "BODY_LIMIT", default_value_t = 64 * 1024)]
    body_limit: usize,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    db: Db,
    metrics: Metrics,
    /// The list routes' cap (pool mode), as cloud-api's `lists` group.
    lists: Option<ListCap>,
}

/// At most half the pool's connections for the list routes, so that a burst
/// of lists leaves connections to single reads and writes: cloud-api's
/// `--list-connections` default. In per-request mode there is no pool to
/// keep connections for, and cloud-api sets no cap either.
#[derive(Clone)]
pub struct ListCap {
    slots: Arc<tokio::sync::Semaphore>,
    /// For the slot, the connection and authentication together.
    wait: Duration,
}

fn router(state: AppState, body_limit: usize) -> Router {
    let metrics = state.metrics.clone();
    let api = Router::new()
        .route("/api/health", get(health))
        .route("/api/users", get(users::list).post(users::create))
        .route("/api/users/{id}", get(users::get))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state);
    Router::new()
        .route("/metrics", get(observe::metrics))
        .with_state(metrics.clone())
        .merge(api)
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            observe::observe,
        ))
}

/// The body of `GET /api/health`.
#[derive(serde::Serialize)]
struct Status {
    status: &'static str,
}

/// `GET /api/health`: touches no database.
async fn health() -> axum::Json<Status> {
    axum::Json(Status { status: "ok" })
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

fn main() -> ExitCode {
    init_tracing();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let metrics = Metrics::new();
    let timeout = Duration::from_secs(args.acquire_timeout_secs.max(1));
    let db = match args.db_mode {
        DbMode::Pool => Db::pool(&args.database_url, args.pool_size, timeout)?,
        DbMode::PerRequest => Db::per_request(&args.database_url, timeout)?,
    };
    let lists = (args.db_mode == DbMode::Pool).then(|| ListCap {
        slots: Arc::new(tokio::sync::Semaphore::new((args.pool_size / 2).max(1))),
        wait: timeout * 2,
    });
    let state = AppState {
        db: db.clone(),
        metrics,
        lists,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, mode = ?args.db_mode, "listening");
    accept(listener, router(state, args.body_limit), shutdown_signal()).await?;
    db.close();
    tracing::info!("shut down");
    Ok(())
}

/// cloud-api's `--request-timeout` default.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// cloud-api's `--header-read-timeout` default.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections and serves each on its own task until `stop`, then
/// lets the open ones finish.
async fn accept(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    tracing::error!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |request| {
            let call = tower_service::Service::call(&mut router.clone(), request);
            async move {
                Ok::<_, std::convert::Infallible>(
                    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
                        Ok(Ok(response)) => response,
                        Ok(Err(never)) => match never {},
                        Err(_) => axum::response::IntoResponse::into_response(ApiError::new(
                            StatusCode::GATEWAY_TIMEOUT,
                            format!(
                                "the request did not finish within {} ms, so it was stopped",
                                REQUEST_TIMEOUT.as_millis()
                            ),
                        )),
                    },
                )
            }
        });
        let connection =
            connections.watch(http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service));
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    drop(listener);
    connections.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut terminate), Ok(mut interrupt)) => tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        },
        _ => std::future::pending::<()>().await,
    }
}

/// Logs to stderr; `RUST_LOG` filters (default `info`), as in cloud-api.
fn init_tracing() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(filter)
        .init();
}
