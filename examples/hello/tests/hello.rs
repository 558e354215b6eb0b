//! `GET /` builds nothing: the only acquisition is the supplied `Settings`.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::StatusCode;
use example_hello::{Expensive, Settings, app};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

async fn get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client
        .get(format!("http://{addr}{path}").parse().unwrap())
        .await
        .expect("the server answers");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn hello_builds_nothing() {
    let (router, registry) = app().await.unwrap();
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
    let probe = registry.probe();
    assert_eq!(probe.total_acquires(), 1, "only the supplied Settings");

    for _ in 0..3 {
        assert_eq!(get(addr, "/").await, (StatusCode::OK, "hello".to_owned()));
    }
    let (status, graph) = get(addr, "/graph").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(graph, "Settings (app)\nExpensive (request) <- Settings\n");

    assert_eq!(probe.total_acquires(), 1, "requests acquired nothing");
    assert_eq!(probe.acquires::<Settings>(), 1);
    assert_eq!(probe.acquires::<Expensive>(), 0);
    assert_eq!(probe.open_scopes(), 0);

    let _ = stop.send(());
    server.await.unwrap();
    registry.shutdown().await;
    assert_eq!(probe.releases::<Settings>(), 1);
}
