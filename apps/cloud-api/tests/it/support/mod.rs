//! The one fixture of cloud-api's tests: the real service on a loopback
//! port over a fresh database (SQLite, or PostgreSQL in either mode), a
//! client that checks every response against the service's own OpenAPI
//! document, a fresh store for the store contract, the macro that runs a
//! body on every backend, and a raw-socket GET for the binary's tests.

#[macro_use]
mod on_every_backend;
pub mod contract;
pub mod openapi_check;
pub mod raw_http;
pub mod store_contract;

use std::any::Any;
use std::net::SocketAddr;

use cloud_api::app::{App, services};
use cloud_api::domain::NewUser;
use cloud_api::metrics::Metrics;
use cloud_api::services::Db;
use cloud_api::settings::{DbMode, Settings};
use cloud_api::store::{Database, PostgresMode};
use provision::{Registry, RegistryBuilder};
use reqwest::Method;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Where the service keeps its data in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    PostgresPool,
    PostgresPerRequest,
    /// PostgreSQL behind PgBouncer in transaction mode, pool mode.
    PgBouncerPool,
    /// PostgreSQL behind PgBouncer in transaction mode, per-request mode.
    PgBouncerPerRequest,
}

/// Settings for a fresh database of `backend`, and what must outlive it.
pub fn settings(backend: Backend) -> (Settings, Box<dyn Any + Send + Sync>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("a temp dir");
            let settings = Settings::for_database(None, dir.path().to_owned());
            (settings, Box::new(dir))
        }
        Backend::PostgresPool | Backend::PostgresPerRequest => {
            let cluster = throwaway_postgres::shared();
            let name = cluster.create_database().expect("a fresh database");
            let mut settings = Settings::for_database(Some(cluster.url(&name)), "unused".into());
            settings.db_mode = if backend == Backend::PostgresPool {
                DbMode::Pool
            } else {
                DbMode::PerRequest
            };
            settings.pool_size = 4;
            (settings, Box::new(name))
        }
        Backend::PgBouncerPool | Backend::PgBouncerPerRequest => {
            let cluster = throwaway_postgres::shared();
            let name = cluster.create_database().expect("a fresh database");
            let bouncer = cluster
                .pgbouncer()
                .unwrap_or_else(|e| panic!("cannot start PgBouncer: {e}"));
            let mut settings = Settings::for_database(Some(bouncer.url(&name)), "unused".into());
            // Migrations hold a session lock: they go straight to the server.
            settings.migrations_database_url = Some(cluster.url(&name));
            settings.db_mode = if backend == Backend::PgBouncerPool {
                DbMode::Pool
            } else {
                DbMode::PerRequest
            };
            settings.pool_size = 4;
            (settings, Box::new((name, bouncer)))
        }
    }
}

/// A store for one test, plus whatever must live as long as it (a
/// temporary directory, a database name).
pub struct TestDb {
    pub db: Database,
    /// Held only to be dropped after `db`.
    pub _keep: Box<dyn Any + Send>,
}

/// A fresh, migrated store of `backend` (SQLite or PostgreSQL directly: the
/// store has no PgBouncer variant).
pub async fn store_db(backend: Backend) -> TestDb {
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
    let (mode, pool_size) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("a temp dir");
            let db = Database::open_sqlite(dir.path().join("cloud-api.db")).expect("SQLite opens");
            return TestDb {
                db,
                _keep: Box::new(dir),
            };
        }
        Backend::PostgresPool => (PostgresMode::Pool, 4),
        Backend::PostgresPerRequest => (PostgresMode::PerRequest, 0),
        Backend::PgBouncerPool | Backend::PgBouncerPerRequest => {
            unreachable!("the store contract runs on PostgreSQL directly")
        }
    };
    let cluster = throwaway_postgres::shared();
    let name = cluster.create_database().expect("a fresh database");
    let db = Database::connect_postgres(&cluster.url(&name), mode, pool_size, TIMEOUT, TIMEOUT)
        .expect("PostgreSQL connects");
    db.migrate().await.expect("migrations apply");
    TestDb {
        db,
        _keep: Box::new(name),
    }
}

/// The service, running.
pub struct TestApp {
    pub addr: SocketAddr,
    pub registry: Registry,
    pub metrics: Metrics,
    pub settings: Settings,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    _keep: Box<dyn Any + Send + Sync>,
}

/// An answer: its status and JSON body (`Value::Null` if empty).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The `error` message of an error body.
    pub fn error(&self) -> &str {
        self.body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {self:?}"))
    }

    /// Asserts the status, showing the body if it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        self
    }
}

impl TestApp {
    /// The production service on `backend`.
    pub async fn start(backend: Backend) -> TestApp {
        let (settings, keep) = settings(backend);
        TestApp::start_with(settings, keep, |s| s).await
    }

    /// The production service with its services adjusted (overrides).
    pub async fn start_with(
        settings: Settings,
        keep: Box<dyn Any + Send + Sync>,
        adjust: impl FnOnce(RegistryBuilder) -> RegistryBuilder,
    ) -> TestApp {
        TestApp::start_with_routes(settings, keep, adjust, |_| axum::Router::new()).await
    }

    /// The production service plus test-only routes (inside their own
    /// `ProvisionLayer` on the same registry, so they share its services).
    pub async fn start_with_routes(
        settings: Settings,
        keep: Box<dyn Any + Send + Sync>,
        adjust: impl FnOnce(RegistryBuilder) -> RegistryBuilder,
        extra: impl FnOnce(&Registry) -> axum::Router,
    ) -> TestApp {
        let builder = adjust(services(settings.clone(), Metrics::new()));
        let mut app = App::from_services(builder, &settings)
            .await
            .expect("the service starts");
        let routes =
            extra(&app.registry).layer(provision_axum::ProvisionLayer::new(app.registry.clone()));
        app.router = app.router.merge(routes);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let registry = app.registry.clone();
        let metrics = app.metrics.clone();
        let server = tokio::spawn(async move {
            cloud_api::server::serve_on(listener, app, std::time::Duration::from_secs(5), async {
                let _ = stopped.await;
            })
            .await
            .expect("the server shuts down cleanly");
        });
        TestApp {
            addr,
            registry,
            metrics,
            settings,
            client: reqwest::Client::new(),
            stop: Some(stop),
            server: Some(server),
            _keep: keep,
        }
    }

    /// Some of every kind of users traffic, signed in with `token`: a list
    /// (200), a user who does not exist (404), a create (201, a `finish`
    /// route) and a token that does not exist (401).
    pub async fn users_traffic(&self, token: &str) {
        self.get("/api/users", &[], Some(token)).await.expect(200);
        self.get("/api/users/{id}", &[&987_654], Some(token))
            .await
            .expect(404);
        self.post(
            "/api/users",
            &[],
            Some(token),
            serde_json::json!({"name": "Grace", "email": "grace@example.com"}),
        )
        .await
        .expect(201);
        self.get("/api/users", &[], Some("not-a-real-token"))
            .await
            .expect(401);
    }

    /// Creates a user and a token for them, directly in the database (the
    /// way `cloud-api token create` does).
    pub async fn user(&self, name: &str, email: &str) -> (i64, String) {
        let db = self.registry.app::<Db>().expect("Db is registered");
        let connection = db.database().acquire().await.expect("a connection");
        let new = NewUser {
            name: name.into(),
            email: email.into(),
        };
        let (user, _) = connection
            .find_or_create_user(&new)
            .await
            .expect("the user");
        let token = connection.create_token(user.id).await.expect("a token");
        connection.close().await;
        (user.id, token.token)
    }

    /// Calls `method route` (an OpenAPI path template, with `params`
    /// substituted in order), checks the answer against the OpenAPI
    /// document, and returns it.
    pub async fn call(
        &self,
        method: Method,
        route: &str,
        params: &[&(dyn ToString + Sync)],
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let path = substitute(route, params);
        let mut request = self
            .client
            .request(method.clone(), format!("http://{}{}", self.addr, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply = into_reply(request.send().await.expect("the service answers")).await;
        openapi_check::check(method.as_str(), route, reply.status, &reply.body);
        reply
    }

    /// A raw request (for malformed input the typed client cannot send);
    /// the answer is still checked against the document.
    pub async fn raw(
        &self,
        method: Method,
        route: &str,
        params: &[&(dyn ToString + Sync)],
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Reply {
        let path = substitute(route, params);
        let request = build(
            self.client
                .request(method.clone(), format!("http://{}{}", self.addr, path)),
        );
        let reply = into_reply(request.send().await.expect("the service answers")).await;
        openapi_check::check(method.as_str(), route, reply.status, &reply.body);
        reply
    }

    pub async fn get(
        &self,
        route: &str,
        params: &[&(dyn ToString + Sync)],
        token: Option<&str>,
    ) -> Reply {
        self.call(Method::GET, route, params, token, None).await
    }

    pub async fn post(
        &self,
        route: &str,
        params: &[&(dyn ToString + Sync)],
        token: Option<&str>,
        body: Value,
    ) -> Reply {
        self.call(Method::POST, route, params, token, Some(body))
            .await
    }

    pub async fn patch(
        &self,
        route: &str,
        params: &[&(dyn ToString + Sync)],
        token: Option<&str>,
        body: Value,
    ) -> Reply {
        self.call(Method::PATCH, route, params, token, Some(body))
            .await
    }

    pub async fn delete(
        &self,
        route: &str,
        params: &[&(dyn ToString + Sync)],
        token: Option<&str>,
    ) -> Reply {
        self.call(Method::DELETE, route, params, token, None).await
    }

    /// A PostgreSQL client of the test's own on the service's database,
    /// named `observer` so that it is told apart from the service's
    /// connections (`application_name = 'cloud-api'`).
    pub async fn observer(&self) -> tokio_postgres::Client {
        let url = format!(
            "{}?application_name=observer",
            self.settings
                .database_url
                .as_deref()
                .expect("a PostgreSQL backend")
        );
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    /// Stops the server gracefully; everything is released afterwards.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.server
            .take()
            .unwrap()
            .await
            .expect("the server task ends");
    }
}

fn substitute(route: &str, params: &[&(dyn ToString + Sync)]) -> String {
    let mut path = String::new();
    let mut params = params.iter();
    let mut rest = route;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').expect("a closed template parameter") + open;
        path.push_str(&rest[..open]);
        path.push_str(
            &params
                .next()
                .expect("a value for every parameter")
                .to_string(),
        );
        rest = &rest[close + 1..];
    }
    path.push_str(rest);
    assert!(
        params.next().is_none(),
        "more values than parameters in {route}"
    );
    path
}

async fn into_reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("a JSON body, got: {text}"))
    };
    Reply { status, body }
}

/// Waits (at most ten seconds) until `done` holds.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Organisations missing their org scope or their admin: what a write
/// interrupted between its statements would leave if it were not one
/// transaction. Always 0 after an outage or a crash.
pub async fn half_created_organisations(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "select count(*) from organisations o
             where not exists (select 1 from scopes s where s.org_id = o.id and s.user_id is null)
                or not exists (select 1 from memberships m where m.org_id = o.id and m.role = 'admin')",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Values of request service `service` released with `exit` (`success`,
/// `cancelled`, ...), as the service's own metrics (`/metrics`) count them.
pub fn releases(metrics: &Metrics, service: &str, exit: &str) -> u64 {
    // Any lifetime: a transient's series says `lifetime="transient"`.
    let start = format!(r#"provision_service_releases_total{{service="{service}",lifetime=""#);
    let end = format!(r#"",exit="{exit}"}} "#);
    let labels = format!("{start}...{end}");
    let text = metrics.encode();
    text.lines()
        .filter_map(|l| l.strip_prefix(&start))
        .find_map(|l| Some(l.split_once(end.as_str())?.1))
        // Every exit's series exists, at 0, once the service was built: a
        // missing one is a wrong name, not a zero.
        .unwrap_or_else(|| panic!("no series `{labels}` in /metrics"))
        .parse()
        .expect("a count")
}

/// `Tx` values released with `exit`: [`releases`] of the transaction.
pub fn tx_releases(metrics: &Metrics, exit: &str) -> u64 {
    releases(metrics, "Tx", exit)
}

/// `finish` routes whose client left before the answer, counted by
/// `/metrics` as ending with `outcome` (`completed`, `cut`, `panicked`).
pub fn finish_total(metrics: &Metrics, method: &str, route: &str, outcome: &str) -> u64 {
    let labels = format!(
        r#"provision_finish_total{{method="{method}",route="{route}",outcome="{outcome}"}} "#
    );
    metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(&labels))
        .map_or(0, |n| n.parse().expect("a count"))
}
