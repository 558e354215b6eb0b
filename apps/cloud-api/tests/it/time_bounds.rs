//! The server's time bounds, over real HTTP:
//!
//! - a request that runs past `--request-timeout` is stopped: a JSON 504,
//!   and its services released;
//! - slow and idle clients do not starve the server: with 1,000 connections
//!   that send nothing and 100 slowloris clients (a request head trickled a
//!   byte at a time), ordinary requests keep succeeding, and the server
//!   closes the idle and slow connections once `--header-read-timeout` has
//!   passed instead of holding them for ever.

use std::time::Duration;

use crate::support::{self, Backend, TestApp};
use axum::Router;
use axum::routing::get;
use cloud_api::services::Conn;
use provision::{Dep, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IDLE: usize = 1000;
const SLOWLORIS: usize = 100;

/// Waits (bounded: 60 s) until the server closes `stream`: a read returns
/// end of file, an error, or an answer (a `408`) followed by one of those.
async fn closed_by_server(mut stream: TcpStream) -> bool {
    let mut buffer = [0u8; 1024];
    let read_until_closed = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read_until_closed)
        .await
        .is_ok()
}

/// A slowloris client: the start of a request head, then one byte every
/// 100 ms, never finishing it. Ends when the server closes the connection.
async fn slowloris(addr: std::net::SocketAddr) -> bool {
    let stream = TcpStream::connect(addr).await.expect("connects");
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(b"GET /api/health HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .expect("the first bytes are accepted");
    let trickle = async move {
        for byte in b"x-slow: ".iter().cycle() {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let closed = async move {
        let mut buffer = [0u8; 1024];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::select! {
        () = trickle => {}
        () = closed => {}
        () = tokio::time::sleep(Duration::from_secs(60)) => return false,
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slowloris_clients_do_not_starve_ordinary_requests_and_are_closed() {
    let (mut settings, keep) = support::settings(Backend::Sqlite);
    settings.header_read_timeout = Duration::from_secs(3);
    let app = TestApp::start_with(settings, keep, |s| s).await;
    let addr = app.addr;

    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(addr).await.expect("connects"));
    }
    let slow: Vec<_> = (0..SLOWLORIS)
        .map(|_| tokio::spawn(slowloris(addr)))
        .collect();

    // Meanwhile, ordinary requests: each answered, on a fresh connection.
    for _ in 0..50 {
        let response = reqwest::Client::new()
            .get(format!("http://{addr}/api/health"))
            .send()
            .await
            .expect("an ordinary request is answered");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.json::<serde_json::Value>().await.unwrap(),
            serde_json::json!({"status": "ok"})
        );
    }

    let closed = futures_util::future::join_all(idle.into_iter().map(closed_by_server)).await;
    assert_eq!(
        closed.iter().filter(|c| **c).count(),
        IDLE,
        "every idle connection is closed by the server"
    );
    let slow_closed = futures_util::future::join_all(slow).await;
    assert_eq!(
        slow_closed
            .into_iter()
            .filter(|c| *c.as_ref().unwrap())
            .count(),
        SLOWLORIS,
        "every slowloris connection is closed by the server"
    );
    // And the server still serves.
    app.get("/api/health", &[], None).await.expect(200);
    app.stop().await;
}

/// Holds the request's connection and never answers.
async fn hang(Dep(conn): Dep<Conn>) -> &'static str {
    conn.get().unwrap().ping().await.unwrap();
    std::future::pending().await
}

fn hang_route(_: &Registry) -> Router {
    Router::new().route("/test/hang", get(hang))
}

#[tokio::test]
async fn a_request_past_its_time_bound_is_a_json_504_and_its_services_are_released() {
    let (mut settings, keep) = support::settings(Backend::Sqlite);
    settings.request_timeout = Duration::from_millis(300);
    let app = TestApp::start_with_routes(settings, keep, |s| s, hang_route).await;

    let response = reqwest::Client::new()
        .get(format!("http://{}/test/hang", app.addr))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("an answer, not a hang");

    assert_eq!(response.status(), 504);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"error": "the request did not finish within 300 ms, so it was stopped"})
    );
    let probe = app.registry.probe();
    support::eventually("the connection's release", || probe.releases::<Conn>() == 1).await;
    assert_eq!(probe.acquires::<Conn>(), 1);
    assert_eq!(probe.held::<Conn>(), 0);
    // The server still serves.
    app.get("/api/health", &[], None).await.expect(200);
    app.stop().await;
}
