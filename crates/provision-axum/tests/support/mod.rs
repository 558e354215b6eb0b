//! Shared by the integration tests: counting services that write what
//! happens to them into a journal, and a real axum server on loopback.
#![allow(dead_code)] // each test binary uses its own subset

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use provision::{App, Dep, Error, Exit, Provide, Registry, Request};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What happened to the counting services, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Built(&'static str, u64),
    Released(&'static str, u64, Exit),
}

/// An app service: numbers builds and records builds and releases.
#[derive(Default)]
pub struct Journal {
    next_id: AtomicU64,
    events: Mutex<Vec<Event>>,
}
provision::supplied!(Journal);

impl Journal {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::SeqCst) + 1
    }
    pub fn push(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
    pub fn released(&self, service: &str) -> Vec<(u64, Exit)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Released(s, id, exit) if s == service => Some((id, exit)),
                _ => None,
            })
            .collect()
    }
}

/// Test knobs, supplied per registry.
#[derive(Default)]
pub struct Knobs {
    /// How long `Conn::build` sleeps (the concurrent regression case).
    pub build_delay: Duration,
}
provision::supplied!(Knobs);

/// A request-lifetime counting service, standing in for a connection:
/// `{id: n}` where n counts builds.
pub struct Conn {
    pub id: u64,
    journal: Dep<Journal>,
}

impl Provide for Conn {
    type Lifetime = Request;
    type Deps = (Journal, Knobs);

    async fn build((journal, knobs): (Dep<Journal>, Dep<Knobs>)) -> Result<Self, Error> {
        if !knobs.build_delay.is_zero() {
            tokio::time::sleep(knobs.build_delay).await;
        }
        let id = journal.next_id();
        journal.push(Event::Built("Conn", id));
        Ok(Conn { id, journal })
    }

    async fn release(self, exit: Exit) -> Result<(), Error> {
        self.journal.push(Event::Released("Conn", self.id, exit));
        Ok(())
    }
}

/// The same counting service with app lifetime: built once at boot.
pub struct BootConn {
    pub id: u64,
    journal: Dep<Journal>,
}

impl Provide for BootConn {
    type Lifetime = App;
    type Deps = (Journal,);

    async fn build((journal,): (Dep<Journal>,)) -> Result<Self, Error> {
        let id = journal.next_id();
        journal.push(Event::Built("BootConn", id));
        Ok(BootConn { id, journal })
    }

    async fn release(self, exit: Exit) -> Result<(), Error> {
        self.journal
            .push(Event::Released("BootConn", self.id, exit));
        Ok(())
    }
}

/// A registry with the counting services and fresh knobs.
pub async fn registry(knobs: Knobs) -> Registry {
    Registry::builder()
        .supply(Journal::default())
        .supply(knobs)
        .register::<Conn>()
        .register::<BootConn>()
        .build()
        .await
        .expect("the test registry builds")
}

pub fn journal(registry: &Registry) -> Dep<Journal> {
    registry.app::<Journal>().expect("Journal is registered")
}

/// A real axum server on an ephemeral loopback port.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
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
        TestServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// GET `path`; the status and the body as text.
    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        get(self.addr, path).await
    }

    /// Graceful shutdown: stop accepting, finish in-flight requests.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri = format!("http://{addr}{path}").parse().unwrap();
    let response = client.get(uri).await.expect("the server answers");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// Waits (at most five seconds) until `done` holds: for releases that run
/// after the response has been read.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

/// How each released `Conn`'s request ended.
pub fn exits(registry: &Registry) -> Vec<Exit> {
    journal(registry)
        .released("Conn")
        .into_iter()
        .map(|(_, exit)| exit)
        .collect()
}

/// Polls `future` once, with a waker that does nothing: what a host does
/// before it drops a request whose client left.
pub fn poll_once<F: std::future::Future>(
    future: std::pin::Pin<&mut F>,
) -> std::task::Poll<F::Output> {
    future.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
}

/// A [`Background`](provision_axum::Background) that only collects its
/// tasks, so the test sees each one and decides when (and whether) it runs.
#[derive(Clone, Default)]
pub struct Collect(pub std::sync::Arc<Mutex<Vec<provision_axum::BackgroundTask>>>);

impl Collect {
    /// The background to put in a request's extensions.
    pub fn background(&self) -> provision_axum::Background {
        let tasks = self.0.clone();
        provision_axum::Background::new(move |task| tasks.lock().unwrap().push(task))
    }

    /// The tasks collected so far.
    pub fn take(&self) -> Vec<provision_axum::BackgroundTask> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// Runs every task collected so far to its end.
    pub async fn run_all(&self) {
        for task in self.take() {
            task.await;
        }
    }
}
