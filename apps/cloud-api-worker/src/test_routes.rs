//! Routes for the end-to-end test in workerd (feature `test-routes`; never
//! deployed): what the production routes cannot show.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Query;
use axum::routing::get;
use axum::{Json, Router};
use cloud_api::app::App;
use cloud_api::domain::NewUser;
use cloud_api::http::ApiError;
use cloud_api::services::{Conn, Tx};
use http::StatusCode;
use provision::{
    App as AppLifetime, Dep, Error, Exit, Provide, Registry, RegistryBuilder, RequestBound,
    RequestScope,
};
use provision_axum::{Finish, ProvisionLayer};
use provision_worker::postgres::{PgSession, PgTarget};
use serde_json::{Value, json};
use worker::send::SendFuture;
use worker::{Context, Env, HttpRequest};

/// Services only the test routes use (none yet).
pub(crate) fn services(builder: RegistryBuilder) -> RegistryBuilder {
    builder
}

/// The deadline of `/__test/finish-write`: short, so that a test can run a
/// write past it (the production routes have 30 s).
const FINISH_DEADLINE: Duration = Duration::from_secs(2);

/// The production router plus the test routes, on the same registry.
pub(crate) fn add(router: Router, registry: &Registry) -> Router {
    let finish = Finish::within(FINISH_DEADLINE);
    let outcomes = finish.clone();
    let routes = Router::new()
        .route("/__test/panic", get(panic_now))
        .route("/__test/abort", get(abort_now))
        .route(
            "/__test/panic-holding-connection",
            get(panic_holding_connection),
        )
        .route("/__test/slow", get(slow))
        .route("/__test/slow-write", axum::routing::post(slow_write))
        // The same write with the `finish` disconnect policy.
        .route(
            "/__test/finish-write",
            axum::routing::post(slow_write).layer(finish),
        )
        .route(
            "/__test/finish-outcomes",
            get(move || finish_outcomes(outcomes.clone())),
        )
        .route("/__test/memory", get(memory))
        .route("/__test/sleep", get(sleep))
        .route("/__test/echo", axum::routing::post(echo))
        .layer(ProvisionLayer::new(registry.clone()));
    // Routes made here, not per request (see `cloud_api::http::router`).
    router.merge(routes).with_state(())
}

/// Panics before asking for anything.
async fn panic_now() -> &'static str {
    panic!("test route: a handler panic");
}

/// Traps without a panic (no panic hook runs): what the guard's
/// `WebAssembly.RuntimeError` listener is for (out of memory does the same).
async fn abort_now() -> &'static str {
    std::process::abort();
}

/// Opens this request's connection, uses it, then panics while holding it.
async fn panic_holding_connection(Dep(conn): Dep<Conn>) -> &'static str {
    conn.get().unwrap().ping().await.unwrap();
    panic!("test route: a handler panic while holding a database connection");
}

#[derive(serde::Deserialize)]
struct Slow {
    ms: u64,
}

/// Holds a connection for `ms` milliseconds, then answers.
async fn slow(Query(slow): Query<Slow>, Dep(conn): Dep<Conn>) -> Json<Value> {
    conn.get().unwrap().ping().await.unwrap();
    SendFuture::new(worker::Delay::from(Duration::from_millis(slow.ms))).await;
    conn.get().unwrap().ping().await.unwrap();
    Json(json!({ "slept_ms": slow.ms }))
}

#[derive(serde::Deserialize)]
struct SlowWrite {
    ms: u64,
    email: String,
}

/// Inserts a user in this request's transaction, then holds it open for
/// `ms` milliseconds before answering 201 (the commit is in `Tx::settle`).
/// On `/__test/slow-write` (policy `cancel`) a client that gives up
/// meanwhile must leave no row behind; on `/__test/finish-write` (policy
/// `finish`) the write commits all the same, unless it runs past the
/// route's deadline.
async fn slow_write(Query(write): Query<SlowWrite>, Dep(tx): Dep<Tx>) -> (StatusCode, Json<Value>) {
    let new = NewUser {
        name: "Slow".into(),
        email: write.email,
    };
    let user = tx.get().unwrap().create_user(&new).await.unwrap();
    SendFuture::new(worker::Delay::from(Duration::from_millis(write.ms))).await;
    (StatusCode::CREATED, Json(json!({ "id": user.id })))
}

/// What the `finish` routes of this isolate did so far.
async fn finish_outcomes(finish: Finish) -> Json<Value> {
    let outcomes = finish.outcomes();
    Json(json!({
        "answered": outcomes.answered,
        "disconnected": outcomes.disconnected,
        "finished_after_disconnect": outcomes.finished_after_disconnect,
        "cut_by_deadline": outcomes.cut_by_deadline,
    }))
}

#[derive(serde::Deserialize)]
struct Sleep {
    seconds: f64,
}

/// Runs `SELECT pg_sleep(seconds)` on this request's connection, outside
/// any transaction: only the client-side statement deadline can cut it.
async fn sleep(Query(sleep): Query<Sleep>, Dep(conn): Dep<Conn>) -> Result<Json<Value>, ApiError> {
    conn.get()?.sleep(sleep.seconds).await?;
    Ok(Json(json!({ "slept_s": sleep.seconds })))
}

/// What a handler sees of its request after provision-worker's conversion:
/// method, URI, version, a header, the body, and whether workers-rs's
/// `Cf` and `AbortSignal` are in the extensions.
async fn echo(request: http::Request<axum::body::Body>) -> Json<Value> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 16)
        .await
        .unwrap_or_default();
    let test_header: Vec<&str> = parts
        .headers
        .get_all("x-test")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    Json(json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "x_test": test_header,
        "body": String::from_utf8_lossy(&body),
        "cf": parts.extensions.get::<worker::Cf>().is_some(),
        "signal": parts.extensions.get::<worker::AbortSignal>().is_some(),
    }))
}

/// The size of this instance's Wasm memory, in bytes (it only grows).
async fn memory() -> Json<Value> {
    let pages = core::arch::wasm32::memory_size::<0>();
    Json(json!({ "bytes": pages * 65536 }))
}

/// The cron expression that makes the test build's cron job panic.
pub(crate) const PANIC_CRON: &str = "0 0 31 2 *";

/// Runs at the end of the cron job in test builds, after its delete and
/// before its commit: panics for [`PANIC_CRON`].
pub(crate) fn cron_hook(cron: &str) {
    if cron == PANIC_CRON {
        panic!("test: a cron job panicked");
    }
}

/// Called at the start of every app build (test builds only): logs it, so
/// the test can count builds, and, if the `TEST_START_DELAY_MS` binding is
/// set, waits that long on a timer (I/O owned by the building request).
pub(crate) async fn cold_start(env: &Env) {
    worker::console_log!("cold start: building the app");
    let delay = env
        .var("TEST_START_DELAY_MS")
        .ok()
        .and_then(|ms| ms.to_string().parse::<u64>().ok());
    if let Some(ms) = delay {
        worker::Delay::from(Duration::from_millis(ms)).await;
    }
}

/// Test routes served without axum: `None` for every other path.
pub(crate) async fn outside_axum(
    app: &App,
    request: &HttpRequest,
    env: &Env,
    ctx: &Context,
) -> Option<worker::Result<http::Response<Body>>> {
    let response = match request.uri().path() {
        "/__test/scoped" => scoped(app, ctx).await,
        "/__test/app-service-with-socket" => app_service_with_socket(env).await,
        _ => return None,
    };
    Some(response.map(http::Response::<Body>::from))
}

/// A plain workers-rs handler inside `provision_worker::scoped`: the
/// connection is released before the response is returned.
async fn scoped(app: &App, ctx: &Context) -> worker::Result<worker::Response> {
    provision_worker::scoped(&app.registry, ctx, async {
        let scope = RequestScope::current().expect("inside the request's scope");
        let conn = scope.resolve::<Conn>().await.map_err(rust_error)?;
        let connection = conn.get().map_err(rust_error)?;
        connection
            .ping()
            .await
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        worker::Response::from_json(&json!({ "request": scope.id(), "pinged": true }))
    })
    .await
}

/// Where the database is, as an app service.
struct Target(PgTarget);
provision::supplied!(Target);

/// The mistake the registry must refuse: an app service that opens a
/// database socket while it is built (on Workers, the first request's
/// socket, which no other request may use).
struct SocketAtBoot {
    session: RequestBound<PgSession>,
}

impl Provide for SocketAtBoot {
    type Lifetime = AppLifetime;
    type Deps = (Target,);

    async fn build((target,): (Dep<Target>,)) -> Result<Self, Error> {
        let target: &Target = &target;
        Ok(SocketAtBoot {
            session: target.0.connect().await?,
        })
    }

    async fn release(self, _exit: Exit) -> Result<(), Error> {
        SendFuture::new(self.session.into_inner().close()).await;
        Ok(())
    }
}

/// Builds a registry with [`SocketAtBoot`]: answers 500 with the
/// registry's refusal, or 200 if it was (wrongly) accepted.
async fn app_service_with_socket(env: &Env) -> worker::Result<worker::Response> {
    let target = PgTarget::from_env(env, "HYPERDRIVE", "DATABASE_URL").map_err(rust_error)?;
    let built = Registry::builder()
        .supply(Target(target))
        .register::<SocketAtBoot>()
        .build()
        .await;
    match built {
        Err(error) => Ok(
            worker::Response::from_json(&json!({ "error": error.to_string() }))?.with_status(500),
        ),
        Ok(registry) => {
            registry.shutdown().await;
            worker::Response::from_json(&json!({ "error": null }))
        }
    }
}

fn rust_error(error: Error) -> worker::Error {
    worker::Error::RustError(error.to_string())
}
