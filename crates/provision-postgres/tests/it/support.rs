//! The test server: a router whose handlers exercise `PgConn` and `PgTx`,
//! a fresh database per test, and a separate admin connection to look at
//! what is committed and which connections are open.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use provision::{Dep, Registry};
use provision_axum::ProvisionLayer;
use provision_postgres::{Mode, PgConn, PgError, PgOptions, PgTx, Postgres};
use tokio::sync::Notify;

/// Lets a test and a handler wait for each other without sleeping.
#[derive(Default)]
pub struct Signals {
    /// The handler has written and reached the point the test waits for.
    pub reached: Notify,
    /// The test lets the handler (or its body) go on.
    pub proceed: Notify,
}
provision::supplied!(Signals);

const SCHEMA: &str = "
    CREATE TABLE items (name text PRIMARY KEY);
    CREATE TABLE parents (id int PRIMARY KEY);
    CREATE TABLE children (
        id int PRIMARY KEY,
        parent int NOT NULL REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED
    );
";

async fn insert(tx: &PgTx, name: &str) -> Result<(), PgError> {
    tx.get()?
        .execute("INSERT INTO items (name) VALUES ($1)", &[&name])
        .await
        .map(drop)
}

async fn create(Dep(tx): Dep<PgTx>, Path(name): Path<String>) -> Result<StatusCode, PgError> {
    insert(&tx, &name).await?;
    Ok(StatusCode::CREATED)
}

async fn create_then_fail(
    Dep(tx): Dep<PgTx>,
    Path(name): Path<String>,
) -> Result<StatusCode, PgError> {
    insert(&tx, &name).await?;
    Ok(StatusCode::BAD_REQUEST)
}

async fn create_then_panic(
    Dep(tx): Dep<PgTx>,
    Path(name): Path<String>,
) -> Result<StatusCode, PgError> {
    insert(&tx, &name).await?;
    panic!("the handler panics after writing {name}");
}

/// Writes, tells the test, then never answers: the client will leave.
async fn create_then_hang(
    Dep(tx): Dep<PgTx>,
    Dep(signals): Dep<Signals>,
    Path(name): Path<String>,
) -> Result<StatusCode, PgError> {
    insert(&tx, &name).await?;
    signals.reached.notify_one();
    std::future::pending().await
}

/// A child whose parent does not exist: accepted by the INSERT (the
/// foreign key is deferred), refused by COMMIT.
async fn orphan(Dep(tx): Dep<PgTx>, Path(id): Path<i32>) -> Result<StatusCode, PgError> {
    tx.get()?
        .execute("INSERT INTO children (id, parent) VALUES ($1, 999)", &[&id])
        .await?;
    Ok(StatusCode::CREATED)
}

/// Writes in a transaction, then streams: a first chunk, then (once the
/// test says so) a last chunk that reads through the connection the body
/// still holds, and reports what the settled transaction handle says.
async fn stream(
    Dep(tx): Dep<PgTx>,
    Dep(conn): Dep<PgConn>,
    Dep(signals): Dep<Signals>,
    Path(name): Path<String>,
) -> Result<Body, PgError> {
    insert(&tx, &name).await?;
    let chunks = futures_util::stream::unfold(0, move |step| {
        let (tx, conn, signals) = (tx.clone(), conn.clone(), signals.clone());
        async move {
            let chunk = match step {
                0 => "first\n".to_owned(),
                1 => {
                    signals.proceed.notified().await;
                    let count: i64 = match conn.get() {
                        Ok(c) => match c.query_one("SELECT count(*) FROM items", &[]).await {
                            Ok(row) => row.get(0),
                            Err(_) => -1,
                        },
                        Err(_) => -2,
                    };
                    let tx_after_settle = match tx.get() {
                        Ok(_) => "usable",
                        Err(_) => "refused",
                    };
                    format!("items={count} tx={tx_after_settle}\n")
                }
                _ => return None,
            };
            Some((Ok::<_, std::io::Error>(chunk), step + 1))
        }
    });
    Ok(Body::from_stream(chunks))
}

async fn sleep_in_transaction(
    Dep(tx): Dep<PgTx>,
    Path(seconds): Path<f64>,
) -> Result<StatusCode, PgError> {
    tx.get()?
        .execute("SELECT pg_sleep($1)", &[&seconds])
        .await?;
    Ok(StatusCode::OK)
}

async fn sleep_outside_transaction(
    Dep(conn): Dep<PgConn>,
    Path(seconds): Path<f64>,
) -> Result<StatusCode, PgError> {
    conn.get()?
        .execute("SELECT pg_sleep($1)", &[&seconds])
        .await?;
    Ok(StatusCode::OK)
}

async fn count(Dep(conn): Dep<PgConn>) -> Result<String, PgError> {
    let row = conn
        .get()?
        .query_one("SELECT count(*) FROM items", &[])
        .await?;
    Ok(row.get::<_, i64>(0).to_string())
}

/// One test's server and database.
pub struct Harness {
    pub base: String,
    pub registry: Registry,
    pub database: Postgres,
    pub signals: Dep<Signals>,
    /// The `application_name` of the server's connections.
    pub app_name: String,
    /// The database's URL, for the test's own connections.
    pub db_url: String,
    admin: tokio_postgres::Client,
}

impl Harness {
    /// A fresh database, the server on it in `mode`.
    pub async fn start(mode: Mode) -> Harness {
        Harness::start_with(mode, PgOptions::default(), |url| url).await
    }

    /// A fresh database; the server reaches it at `route(url)` (a proxy, a
    /// silent listener) with `options` (its mode and name are set here).
    pub async fn start_with(
        mode: Mode,
        options: PgOptions,
        route: impl FnOnce(String) -> String,
    ) -> Harness {
        let cluster = throwaway_postgres::shared();
        let db = cluster.create_database().expect("a fresh database");
        let url = cluster.url(&db);
        let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("the admin connection");
        tokio::spawn(connection);
        admin.batch_execute(SCHEMA).await.expect("the schema");

        let app_name = format!("it-{db}");
        let options = options.mode(mode).application_name(&app_name);
        let database = Postgres::new(&route(url.clone()), options).expect("a valid URL");
        let registry = Registry::builder()
            .supply(database.clone())
            .supply(Signals::default())
            .register::<PgTx>()
            .build()
            .await
            .expect("the registry");
        let signals = registry.app::<Signals>().expect("supplied");
        let router = Router::new()
            .route("/items/{name}", post(create))
            .route("/items/{name}/fail", post(create_then_fail))
            .route("/items/{name}/panic", post(create_then_panic))
            .route("/items/{name}/hang", post(create_then_hang))
            .route("/items/{name}/stream", post(stream))
            .route("/orphans/{id}", post(orphan))
            .route("/sleep/tx/{seconds}", get(sleep_in_transaction))
            .route("/sleep/conn/{seconds}", get(sleep_outside_transaction))
            .route("/count", get(count))
            .layer(ProvisionLayer::new(registry.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Harness {
            base,
            registry,
            database,
            signals,
            app_name,
            db_url: url,
            admin,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Committed rows of `table`, seen from another connection.
    pub async fn rows(&self, table: &str) -> i64 {
        self.admin
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0)
    }

    /// The server's connections open on the database right now.
    pub async fn server_connections(&self) -> i64 {
        self.admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&self.app_name],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// The server's connections waiting on a lock right now.
    pub async fn lock_waiters(&self) -> i64 {
        self.admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
                &[&self.app_name],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// Waits (bounded: 10 s) until the server has no connection open on
    /// the database.
    pub async fn no_server_connections(&self) {
        eventually("the server's connections to close", || async {
            self.server_connections().await == 0
        })
        .await;
    }
}

/// Polls `condition` every 10 ms until it holds; panics after 10 s.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The `{"error": ...}` body of a response, asserting its shape.
pub async fn error_of(response: reqwest::Response) -> String {
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let body: serde_json::Value = response.json().await.unwrap();
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"))
        .to_owned()
}
