//! Each case once, generic over the database; `main.rs` runs it on both.

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::{get, post};
use http::{Method, StatusCode};
use sqlx::ConnectOptions;
use std::any::TypeId;
use std::sync::{Arc, Mutex};

use provision::{Dep, Error, Exit, Observer, Registry, ServiceInfo};
use provision_axum::ProvisionLayer;
use provision_sqlx::{Conn, Pool, Tx};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use crate::backend::{Backend, Fixture, SQLITE_FILE};
use crate::server::{TestServer, eventually, read_to_end};

/// What the handlers tell the test, and what the test lets them do.
#[derive(Default)]
struct Signals {
    /// A handler has written inside its transaction.
    inserted: Notify,
    /// A streaming body may produce its first chunk; a task may go on.
    gate: Notify,
    /// What a task spawned by a handler got when it tried the transaction.
    task_outcome: Mutex<Option<String>>,
    task_done: Notify,
}
provision::supplied!(Signals);

/// Every release of every service: its type, the exit it was told, and
/// whether it failed.
#[derive(Clone, Default)]
struct Releases(Arc<Mutex<Vec<(TypeId, Exit, bool)>>>);

impl Observer for Releases {
    fn released(
        &self,
        service: &ServiceInfo,
        exit: Exit,
        error: Option<&Error>,
        _held: Option<std::time::Duration>,
    ) {
        self.0
            .lock()
            .unwrap()
            .push((service.type_id(), exit, error.is_some()));
    }
}

impl Releases {
    /// The exits the releases of `T` were told; each must have succeeded.
    fn of<T: 'static>(&self) -> Vec<Exit> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(id, _, _)| *id == TypeId::of::<T>())
            .map(|&(_, exit, failed)| {
                assert!(!failed, "a release failed");
                exit
            })
            .collect()
    }
}

struct Harness<D: Backend> {
    releases: Releases,
    fixture: Fixture<D>,
    registry: Registry,
    server: TestServer,
    signals: Dep<Signals>,
}

impl<D: Backend> Harness<D> {
    async fn start() -> Harness<D> {
        let fixture = D::fresh().await;
        let releases = Releases::default();
        let registry = Registry::builder()
            .observer(releases.clone())
            .supply(Pool::<D>::new(fixture.pool.clone()))
            .supply(Signals::default())
            .register::<Tx<D>>()
            .register::<Conn<D>>()
            .build()
            .await
            .expect("the registry builds");
        let router = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/items/{name}", post(create::<D>))
            .route("/fail/{name}", post(fail::<D>))
            .route("/panic/{name}", post(panics::<D>))
            .route("/hang/{name}", post(hang::<D>))
            .route("/orphan", post(orphan::<D>))
            .route("/stream/{name}", get(stream::<D>))
            .route("/conn/{name}", post(autocommit::<D>))
            .route("/task/{name}", post(with_task::<D>))
            .route("/read-then-write/{name}", post(read_then_write::<D>))
            .layer(ProvisionLayer::new(registry.clone()));
        let server = TestServer::start(router).await;
        let signals = registry.app::<Signals>().unwrap();
        Harness {
            releases,
            fixture,
            registry,
            server,
            signals,
        }
    }

    async fn count(&self, table: &'static str) -> i64 {
        D::count(&self.fixture.pool, table).await
    }

    /// Connections leased from the pool right now.
    fn leased(&self) -> u32 {
        self.fixture.pool.size() - self.fixture.pool.num_idle() as u32
    }

    /// Connections still leased once the test's own queries have given
    /// theirs back (sqlx returns a connection to the pool asynchronously),
    /// when at most one (the request's) should remain.
    async fn leased_by_the_request(&self) -> u32 {
        eventually("the test's own connections are back", || self.leased() <= 1).await;
        self.leased()
    }

    /// How each transaction's request ended, as its release was told.
    fn tx_exits(&self) -> Vec<Exit> {
        self.releases.of::<Tx<D>>()
    }

    fn tx_releases(&self) -> u64 {
        self.registry.probe().releases::<Tx<D>>()
    }

    /// Waits until every transaction begun has been released and its
    /// connection is back in the pool.
    async fn all_released(&self, begun: u64) {
        eventually("the transactions are released", || {
            self.tx_releases() == begun && self.tx_exits().len() as u64 == begun
        })
        .await;
        eventually("the connections are back in the pool", || {
            self.leased() == 0
        })
        .await;
    }

    async fn stop(self) {
        for report in [
            self.registry.probe().report::<Tx<D>>(),
            self.registry.probe().report::<Conn<D>>(),
        ] {
            assert_eq!(
                (report.held, report.escapes, report.release_failures),
                (0, 0, 0),
                "{}",
                report.name
            );
        }
        self.server.stop().await;
        drop(self.signals);
        self.registry.shutdown().await;
        assert!(self.fixture.pool.is_closed(), "shutdown closes the pool");
    }
}

async fn create<D: Backend>(Dep(tx): Dep<Tx<D>>, Path(name): Path<String>) -> StatusCode {
    let mut conn = tx.acquire().await.unwrap();
    D::insert(&mut conn, &name).await.unwrap();
    StatusCode::CREATED
}

async fn fail<D: Backend>(Dep(tx): Dep<Tx<D>>, Path(name): Path<String>) -> StatusCode {
    let mut conn = tx.acquire().await.unwrap();
    D::insert(&mut conn, &name).await.unwrap();
    StatusCode::UNPROCESSABLE_ENTITY
}

async fn panics<D: Backend>(Dep(tx): Dep<Tx<D>>, Path(name): Path<String>) -> StatusCode {
    let mut conn = tx.acquire().await.unwrap();
    D::insert(&mut conn, &name).await.unwrap();
    drop(conn);
    panic!("the handler panics after writing {name:?}");
}

async fn hang<D: Backend>(
    Dep(tx): Dep<Tx<D>>,
    Dep(signals): Dep<Signals>,
    Path(name): Path<String>,
) -> StatusCode {
    let mut conn = tx.acquire().await.unwrap();
    D::insert(&mut conn, &name).await.unwrap();
    drop(conn);
    signals.inserted.notify_one();
    std::future::pending::<()>().await;
    StatusCode::CREATED
}

async fn orphan<D: Backend>(Dep(tx): Dep<Tx<D>>) -> StatusCode {
    let mut conn = tx.acquire().await.unwrap();
    D::insert_orphan(&mut conn).await.unwrap();
    StatusCode::CREATED
}

/// Writes, then answers with a body that holds the transaction: its first
/// chunk waits for the test's gate; its second tries to write again.
async fn stream<D: Backend>(
    Dep(tx): Dep<Tx<D>>,
    Dep(signals): Dep<Signals>,
    Path(name): Path<String>,
) -> Body {
    let mut conn = tx.acquire().await.unwrap();
    D::insert(&mut conn, &name).await.unwrap();
    drop(conn);
    let chunks = futures_util::stream::unfold(0u8, move |step| {
        let tx = tx.clone();
        let signals = signals.clone();
        async move {
            let chunk = match step {
                0 => {
                    signals.gate.notified().await;
                    "first\n".to_owned()
                }
                1 => match tx.acquire().await {
                    Ok(mut conn) => match D::insert(&mut conn, "late").await {
                        Ok(()) => "late write ran\n".to_owned(),
                        Err(e) => format!("late write failed: {e}\n"),
                    },
                    Err(e) => format!("refused: {e}\n"),
                },
                _ => return None,
            };
            Some((Ok::<_, std::convert::Infallible>(chunk), step + 1))
        }
    });
    Body::from_stream(chunks)
}

/// Reads inside the transaction, waits for the test's gate, then writes:
/// the pattern (check, then insert) that a transaction exists for.
async fn read_then_write<D: Backend>(
    Dep(tx): Dep<Tx<D>>,
    Dep(signals): Dep<Signals>,
    Path(name): Path<String>,
) -> (StatusCode, String) {
    let mut conn = tx.acquire().await.unwrap();
    let before = D::count_in(&mut conn).await;
    drop(conn);
    signals.inserted.notify_one();
    signals.gate.notified().await;
    let mut conn = tx.acquire().await.unwrap();
    match D::insert(&mut conn, &name).await {
        Ok(()) => (StatusCode::CREATED, format!("{before} before")),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Writes, then leaves a task holding the transaction: it waits for the
/// test's gate, then tries to write again.
async fn with_task<D: Backend>(
    Dep(tx): Dep<Tx<D>>,
    Dep(signals): Dep<Signals>,
    Path(name): Path<String>,
) -> StatusCode {
    let mut conn = tx.acquire().await.unwrap();
    D::insert(&mut conn, &name).await.unwrap();
    drop(conn);
    provision_axum::spawn(async move {
        signals.gate.notified().await;
        let outcome = match tx.acquire().await {
            Ok(_) => "acquired".to_owned(),
            Err(e) => format!("refused: {e}"),
        };
        *signals.task_outcome.lock().unwrap() = Some(outcome);
        signals.task_done.notify_one();
    });
    StatusCode::ACCEPTED
}

async fn autocommit<D: Backend>(Dep(conn): Dep<Conn<D>>, Path(name): Path<String>) -> StatusCode {
    let mut conn = conn.acquire().await;
    D::insert(&mut conn, &name).await.unwrap();
    StatusCode::CREATED
}

pub async fn commits_before_the_answer<D: Backend>() {
    let h = Harness::<D>::start().await;
    let response = h.server.head(Method::POST, "/items/ada").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    // The head has arrived, the body is unread: already committed.
    assert_eq!(h.count("items").await, 1);
    read_to_end(response).await;
    h.all_released(1).await;
    assert_eq!(h.tx_exits(), [Exit::Success(StatusCode::CREATED)]);
    h.stop().await;
}

pub async fn rolls_back_on_an_error_status<D: Backend>() {
    let h = Harness::<D>::start().await;
    let (status, _) = h.server.send(Method::POST, "/fail/ada").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    h.all_released(1).await;
    assert_eq!(
        h.tx_exits(),
        [Exit::Failure(StatusCode::UNPROCESSABLE_ENTITY)]
    );
    assert_eq!(h.count("items").await, 0);
    // Nothing of the rolled-back write is left in the way.
    let (status, _) = h.server.send(Method::POST, "/items/ada").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(h.count("items").await, 1);
    h.all_released(2).await;
    h.stop().await;
}

pub async fn rolls_back_on_a_panic<D: Backend>() {
    let h = Harness::<D>::start().await;
    let (status, _) = h.server.send(Method::POST, "/panic/ada").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    h.all_released(1).await;
    assert_eq!(h.tx_exits(), [Exit::Panic]);
    assert_eq!(h.count("items").await, 0);
    let (status, _) = h.server.send(Method::POST, "/items/ada").await;
    assert_eq!(status, StatusCode::CREATED);
    h.all_released(2).await;
    h.stop().await;
}

pub async fn rolls_back_when_the_client_leaves<D: Backend>() {
    let h = Harness::<D>::start().await;
    let mut socket = tokio::net::TcpStream::connect(h.server.addr).await.unwrap();
    socket
        .write_all(b"POST /hang/ada HTTP/1.1\r\nhost: test\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    h.signals.inserted.notified().await;
    assert_eq!(h.tx_releases(), 0, "held while the handler runs");
    assert_eq!(h.leased_by_the_request().await, 1);
    drop(socket);
    h.all_released(1).await;
    assert_eq!(h.tx_exits(), [Exit::Cancelled]);
    assert_eq!(h.count("items").await, 0);
    let (status, _) = h.server.send(Method::POST, "/items/ada").await;
    assert_eq!(status, StatusCode::CREATED);
    h.all_released(2).await;
    h.stop().await;
}

pub async fn a_failed_commit_answers_conflict<D: Backend>() {
    let h = Harness::<D>::start().await;
    let (status, body) = h.server.send(Method::POST, "/orphan").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": "the change conflicts with data already stored"})
    );
    h.all_released(1).await;
    // Release is told the answer the client got, not the handler's 201.
    assert_eq!(h.tx_exits(), [Exit::Failure(StatusCode::CONFLICT)]);
    assert_eq!(h.count("children").await, 0);
    // The failed transaction was ended (SQLite keeps it open after a failed
    // commit; release rolls it back), so the next write goes through.
    let (status, _) = h.server.send(Method::POST, "/items/ada").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(h.count("items").await, 1);
    h.all_released(2).await;
    h.stop().await;
}

/// axum-sqlx-tx's anti-example: there, a body (or task) that still holds
/// the transaction when the handler returns makes the middleware skip the
/// commit, silently. Here the commit runs before the first byte, and the
/// connection stays leased until the last one.
pub async fn streaming_body_holding_the_tx_does_not_skip_the_commit<D: Backend>() {
    let h = Harness::<D>::start().await;
    let response = h.server.head(Method::GET, "/stream/ada").await;
    assert_eq!(response.status(), StatusCode::OK);
    // No byte of the body can have been produced (it waits for the gate).
    assert_eq!(h.count("items").await, 1, "committed before the first byte");
    assert_eq!(h.tx_releases(), 0, "the body still holds the transaction");
    assert_eq!(
        h.leased_by_the_request().await,
        1,
        "its connection is still leased"
    );
    assert_eq!(h.tx_releases(), 0);
    h.signals.gate.notify_one();
    let body = read_to_end(response).await;
    assert!(body.starts_with("first\n"), "{body}");
    h.all_released(1).await;
    assert_eq!(h.tx_exits(), [Exit::Success(StatusCode::OK)]);
    h.stop().await;
}

/// axum-sqlx-tx's other case of a handle held elsewhere: a task the handler
/// left running. The commit still runs before the answer; the task, later,
/// is refused.
pub async fn a_task_holding_the_tx_does_not_skip_the_commit<D: Backend>() {
    let h = Harness::<D>::start().await;
    let (status, _) = h.server.send(Method::POST, "/task/ada").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(h.count("items").await, 1, "committed before the answer");
    assert_eq!(h.tx_releases(), 0, "the task still holds the transaction");
    h.signals.gate.notify_one();
    h.signals.task_done.notified().await;
    assert_eq!(
        h.signals.task_outcome.lock().unwrap().as_deref(),
        Some(
            "refused: the request's transaction has already ended (it commits before the \
             response is sent): a query here would run outside it"
        )
    );
    h.all_released(1).await;
    assert_eq!(h.tx_exits(), [Exit::Success(StatusCode::ACCEPTED)]);
    h.stop().await;
}

/// The body's write after the commit: refused with an error, never run as
/// an autocommitted statement outside the transaction.
pub async fn a_query_after_the_commit_is_refused<D: Backend>() {
    let h = Harness::<D>::start().await;
    let response = h.server.head(Method::GET, "/stream/ada").await;
    h.signals.gate.notify_one();
    let body = read_to_end(response).await;
    assert_eq!(
        body,
        "first\nrefused: the request's transaction has already ended (it commits before the \
         response is sent): a query here would run outside it\n"
    );
    h.all_released(1).await;
    assert_eq!(h.tx_exits(), [Exit::Success(StatusCode::OK)]);
    assert_eq!(h.count("items").await, 1, "only the handler's write");
    h.stop().await;
}

/// More requests at once than the pool has connections: each gets its own
/// transaction (they wait for a connection, never share one), each commits.
pub async fn concurrent_requests_each_commit_their_own<D: Backend>() {
    const REQUESTS: usize = 12;
    let h = Harness::<D>::start().await;
    let paths: Vec<String> = (0..REQUESTS).map(|i| format!("/items/n{i}")).collect();
    let statuses =
        futures_util::future::join_all(paths.iter().map(|p| h.server.send(Method::POST, p))).await;
    for (status, body) in statuses {
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    assert_eq!(h.count("items").await, REQUESTS as i64);
    h.all_released(REQUESTS as u64).await;
    assert_eq!(h.tx_exits(), [Exit::Success(StatusCode::CREATED); REQUESTS]);
    h.stop().await;
}

pub async fn conn_is_leased_only_when_asked_and_returned<D: Backend>() {
    let h = Harness::<D>::start().await;
    let probe = h.registry.probe();
    let (status, _) = h.server.send(Method::GET, "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(probe.acquires::<Conn<D>>(), 0);
    assert_eq!(probe.acquires::<Tx<D>>(), 0);
    let (status, _) = h.server.send(Method::POST, "/conn/ada").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(h.count("items").await, 1);
    eventually("the connection is released", || {
        probe.releases::<Conn<D>>() == 1
    })
    .await;
    eventually("the connection is back in the pool", || h.leased() == 0).await;
    assert_eq!(probe.acquires::<Tx<D>>(), 0);
    h.stop().await;
}

/// SQLite only. A transaction that reads, then writes, must not find its
/// snapshot stale when it comes to write (another writer committed in
/// between: `SQLITE_BUSY`, which no busy timeout cures). So a `Tx` on
/// SQLite takes the write lock when it begins (`BEGIN IMMEDIATE`), as the
/// reference service's SQLite store does: another writer waits for it
/// instead.
pub async fn sqlite_tx_holds_the_write_lock_from_its_begin() {
    let h = Harness::<sqlx::Sqlite>::start().await;
    let addr = h.server.addr;
    let request = tokio::spawn(async move {
        crate::server::send_to(addr, Method::POST, "/read-then-write/ada").await
    });
    h.signals.inserted.notified().await; // it has read, and waits
    let file = h.fixture.dir.as_ref().unwrap().path().join(SQLITE_FILE);
    let mut other = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(file)
        .busy_timeout(std::time::Duration::ZERO)
        .connect()
        .await
        .unwrap();
    let other_write = sqlx::query("INSERT INTO items (name) VALUES ('other')")
        .execute(&mut other)
        .await;
    let refused = other_write.expect_err("another writer must wait for the request's transaction");
    assert!(
        refused.to_string().contains("database is locked"),
        "{refused}"
    );
    h.signals.gate.notify_one();
    let (status, body) = request.await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::CREATED, "0 before"));
    h.all_released(1).await;
    assert_eq!(h.count("items").await, 1);
    h.stop().await;
}
