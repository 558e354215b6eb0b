//! A real axum server on a loopback port, and a client that can stop
//! between the response's head and its body.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestServer {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(router: Router) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        TestServer { addr, stop, task }
    }

    /// The response once its head has arrived; the body is still unread.
    pub async fn head(&self, method: Method, path: &str) -> Response<Incoming> {
        head(self.addr, method, path).await
    }

    /// The status and the whole body as text.
    pub async fn send(&self, method: Method, path: &str) -> (StatusCode, String) {
        send_to(self.addr, method, path).await
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

pub async fn head(addr: SocketAddr, method: Method, path: &str) -> Response<Incoming> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(Empty::new())
        .unwrap();
    client.request(request).await.expect("the server answers")
}

/// The status and the whole body as text.
pub async fn send_to(addr: SocketAddr, method: Method, path: &str) -> (StatusCode, String) {
    let response = head(addr, method, path).await;
    let status = response.status();
    (status, read_to_end(response).await)
}

pub async fn read_to_end(response: Response<Incoming>) -> String {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// Waits (at most five seconds) until `done` holds: for releases, which
/// run after the client has read the response.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}
