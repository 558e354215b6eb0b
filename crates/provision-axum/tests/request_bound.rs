//! The Workers rule on a native server: a request-bound value (a socket, in
//! the source documents) used from another request, or after its request
//! ended, fails with Workers' own error text instead of quietly working.

mod support;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use http::StatusCode;
use provision::{App, Dep, Error, Provide, Registry, Request, RequestBound, RequestScope};
use provision_axum::ProvisionLayer;
use support::{TestServer, eventually};
use tokio::sync::Notify;

const WORKERS: &str = "Cannot perform I/O on behalf of a different request.";

/// A request service holding a request-bound "socket".
struct Socket {
    io: RequestBound<u64>,
}

impl Provide for Socket {
    type Lifetime = Request;
    type Deps = ();
    async fn build(_: ()) -> Result<Self, Error> {
        let request = RequestScope::current()
            .expect("built inside a request")
            .id();
        Ok(Socket {
            io: RequestBound::new(request).named("Socket"),
        })
    }
}

/// The source documents' bug: a socket made once, at boot, kept by an app
/// service and used by every request. The registry refuses it.
struct BootSocket {
    io: RequestBound<u64>,
}

impl Provide for BootSocket {
    type Lifetime = App;
    type Deps = ();
    async fn build(_: ()) -> Result<Self, Error> {
        Ok(BootSocket {
            io: RequestBound::new(0).named("BootSocket"),
        })
    }
}

#[derive(Clone, Default)]
struct Leak {
    socket: Arc<Mutex<Option<Dep<Socket>>>>,
    leaked: Arc<Notify>,
    release_leaker: Arc<Notify>,
}

fn use_socket(socket: &Socket) -> (StatusCode, String) {
    match socket.io.get() {
        Ok(id) => (StatusCode::OK, format!("ok {id}")),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn leak(State(leak): State<Leak>, Dep(socket): Dep<Socket>) -> (StatusCode, String) {
    *leak.socket.lock().unwrap() = Some(Dep(socket.clone()));
    leak.leaked.notify_one();
    leak.release_leaker.notified().await;
    use_socket(&socket)
}

async fn use_leaked(State(leak): State<Leak>) -> (StatusCode, String) {
    let socket = leak.socket.lock().unwrap().clone().expect("leaked first");
    use_socket(&socket)
}

async fn spawned(Dep(socket): Dep<Socket>) -> String {
    let in_helper = {
        let socket = socket.clone();
        provision_axum::spawn(async move { socket.io.get().map(|_| ()).map_err(|e| e.to_string()) })
            .await
            .unwrap()
    };
    let in_plain_task = {
        let socket = socket.clone();
        tokio::spawn(async move { socket.io.get().map(|_| ()).map_err(|e| e.to_string()) })
            .await
            .unwrap()
    };
    serde_json::json!({
        "helper": in_helper.err(),
        "plain": in_plain_task.err(),
    })
    .to_string()
}

async fn boot(Dep(socket): Dep<BootSocket>) -> (StatusCode, String) {
    match socket.io.get() {
        Ok(_) => (StatusCode::OK, "ok".into()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn server() -> (TestServer, Registry, Leak) {
    let registry = Registry::builder()
        .register::<Socket>()
        .build()
        .await
        .unwrap();
    let state = Leak::default();
    let app = Router::new()
        .route("/leak", get(leak))
        .route("/use-leaked", get(use_leaked))
        .route("/spawned", get(spawned))
        .with_state(state.clone())
        .layer(ProvisionLayer::new(registry.clone()));
    (TestServer::start(app).await, registry, state)
}

#[tokio::test]
async fn use_from_a_concurrent_request_fails_with_the_workers_error() {
    let (server, _registry, state) = server().await;
    let leaker = tokio::spawn(support::get(server.addr, "/leak"));
    state.leaked.notified().await;

    let (status, body) = server.get("/use-leaked").await;

    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.starts_with(WORKERS), "{body}");
    let origin = state
        .socket
        .lock()
        .unwrap()
        .as_ref()
        .unwrap()
        .io
        .origin()
        .unwrap();
    assert!(
        body.contains(&format!(
            "`Socket` was created in request {origin} and used from request "
        )),
        "names the service and both requests: {body}"
    );
    assert!(!body.contains("ended"), "{body}");

    // Inside its own request the same value is fine.
    state.release_leaker.notify_one();
    let (status, body) = leaker.await.unwrap();
    assert_eq!((status, body), (StatusCode::OK, format!("ok {origin}")));
    server.stop().await;
}

#[tokio::test]
async fn use_after_the_request_ended_fails_and_the_escape_is_counted() {
    let (server, registry, state) = server().await;
    let leaker = tokio::spawn(support::get(server.addr, "/leak"));
    state.leaked.notified().await;
    state.release_leaker.notify_one();
    assert_eq!(leaker.await.unwrap().0, StatusCode::OK);
    let probe = registry.probe();
    eventually("the leaking request's scope closed", || {
        probe.open_scopes() == 0
    })
    .await;

    let (status, body) = server.get("/use-leaked").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.starts_with(WORKERS), "{body}");
    assert!(
        body.contains("used after that request ended (from request "),
        "{body}"
    );

    // Outside any request too.
    let leaked = state.socket.lock().unwrap().clone().unwrap();
    let outside = leaked.io.get().unwrap_err();
    assert!(outside.after_end());
    assert_eq!(outside.used_in(), None);
    assert!(outside.to_string().ends_with("(from outside any request)."));

    // The leaked handle kept the value alive past its request, so its release
    // could not run: the probe says so instead of pretending.
    assert_eq!(probe.report::<Socket>().escapes, 1);
    server.stop().await;
}

#[tokio::test]
async fn tasks_spawned_through_the_helper_carry_the_scope_and_plain_tasks_do_not() {
    let (server, registry, _state) = server().await;

    let (status, body) = server.get("/spawned").await;

    assert_eq!(status, StatusCode::OK);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        body["helper"].is_null(),
        "legitimate use inside the request: {body}"
    );
    let plain = body["plain"].as_str().unwrap();
    assert!(plain.starts_with(WORKERS), "{plain}");
    assert!(plain.ends_with("used from outside any request."), "{plain}");
    assert_eq!(registry.probe().report::<Socket>().escapes, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_socket_made_at_boot_is_refused_at_startup() {
    let error = Registry::builder()
        .register::<BootSocket>()
        .build()
        .await
        .map(|_| ())
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(
            "building app service `BootSocket` failed: app service `BootSocket` created a request-bound value (`u64`) while it was built"
        ),
        "{message}"
    );
    assert!(
        message.contains("Make `BootSocket` a Request service"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unregistered_socket_holding_app_service_is_refused_on_first_use() {
    let registry = Registry::builder().build().await.unwrap();
    let app = Router::new()
        .route("/boot", get(boot))
        .layer(ProvisionLayer::new(registry.clone()));
    let server = TestServer::start(app).await;

    let (status, body) = server.get("/boot").await;

    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        r#"{"error":"internal error: could not provide `BootSocket`"}"#
    );
    let probe = registry.probe();
    assert_eq!(probe.report::<BootSocket>().build_failures, 1);
    assert_eq!(probe.acquires::<BootSocket>(), 0);
    server.stop().await;
}
