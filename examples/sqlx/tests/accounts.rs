//! Through HTTP on a real SQLite file: a write is committed by the time its
//! `201` arrives; a failed request's write is never visible.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode};
use example_sqlx::app;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use provision_sqlx::SqliteTx;
use sqlx::sqlite::SqliteConnectOptions;

async fn send(addr: SocketAddr, method: Method, path: &str) -> (StatusCode, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(Empty::new())
        .unwrap();
    let response = client.request(request).await.expect("the server answers");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn only_committed_writes_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("accounts.db"))
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let (router, registry) = app(pool.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    let committed = || async {
        sqlx::query_scalar::<_, String>("SELECT name FROM accounts ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap()
    };

    // Committed by the time the client has the 201 (no waiting).
    let (status, _) = send(addr, Method::POST, "/accounts/alice").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(committed().await, ["alice"]);

    let (status, body) = send(addr, Method::POST, "/accounts/alice").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body,
        r#"{"error":"the change conflicts with data already stored"}"#
    );

    // Written, then the handler answered 400: rolled back.
    let (status, _) = send(addr, Method::POST, "/fail/bob").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, listed) = send(addr, Method::GET, "/accounts").await;
    assert_eq!((status, listed.as_str()), (StatusCode::OK, "alice"));
    assert_eq!(
        registry.probe().acquires::<SqliteTx>(),
        3,
        "GET /accounts began none"
    );

    let _ = stop.send(());
    server.await.unwrap();
    registry.shutdown().await;
    assert_eq!(registry.probe().releases::<SqliteTx>(), 3);
    assert!(pool.is_closed(), "shutdown closes the pool");
}
