//! The reference service in the real Workers runtime: the wasm build of
//! `cloud-api-worker` served by workerd (npm's `workerd`, the runtime behind
//! Cloudflare Workers and `wrangler dev`) against a throwaway PostgreSQL.
//!
//! * the users contract, every status and JSON shape, each answer also
//!   checked against the service's OpenAPI document;
//! * 300 sequential and 300 concurrent (32 at a time) requests, all correct,
//!   and afterwards no connection of the Worker left in `pg_stat_activity`;
//! * health opens no connection;
//! * a handler panic answers a JSON 500 and the isolate keeps serving;
//! * an app service that opens a socket is refused at startup;
//! * a database that hangs or drops: a silent one answers 503 within the
//!   acquire timeout, a statement past the statement timeout answers 503
//!   and its backend goes, a refused first connect is retried;
//! * the users contract behind PgBouncer in transaction mode;
//! * cron and queue events in request scopes of their own;
//! * the negative control: a build that provides one database connection
//!   per isolate (the source documents' bug) fails on its second request:
//!   workerd refuses the I/O ("Cannot perform I/O on behalf of a different
//!   request") and the request is answered a JSON 503 at once. If that stops
//!   happening, the test fails: the test would no longer catch the bug.
//!
//! The builds and workerd come from `scripts/test-worker`, which runs these
//! tests (`scripts/test-all` runs it). Without them every test here fails,
//! saying so; `cargo test` alone lists them as ignored.

#[path = "../../cloud-api/tests/it/support/openapi_check.rs"]
mod openapi_check;
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::{Options, TestDb, Workerd, env_path, migrated_db};

const WHY_IGNORED: &str = "run by scripts/test-worker";

/// The I/O rule's own words, from workerd.
const CROSS_REQUEST_IO: &str = "Cannot perform I/O on behalf of a different request";

// ---------------------------------------------------------------------------
// What scripts/test-worker provides

struct Setup {
    workerd: PathBuf,
    build: PathBuf,
    negative_build: PathBuf,
}

fn setup() -> Setup {
    let _ = WHY_IGNORED;
    Setup {
        workerd: env_path("WORKERD"),
        build: env_path("CLOUD_API_WORKER_BUILD"),
        negative_build: env_path("CLOUD_API_WORKER_NEGATIVE_BUILD"),
    }
}

// ---------------------------------------------------------------------------
// A database with the schema and a user with a token

/// A fresh database on the shared cluster (see `support::migrated_db`).
async fn test_db() -> TestDb {
    migrated_db(throwaway_postgres::shared()).await
}

impl TestDb {
    /// Backends the Worker has open now (it names itself
    /// `cloud-api-worker`), from `pg_stat_activity`.
    fn worker_connections(&self) -> usize {
        let sql = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'cloud-api-worker'",
            self.name
        );
        self.cluster
            .psql("postgres", &sql)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Inserts four tokens of Ada's, hashes starting with `prefix`: one 10
    /// days old and three 100 days old.
    fn insert_aged_tokens(&self, prefix: &str) {
        let p = prefix;
        let insert = format!(
            "INSERT INTO api_tokens (user_id, hash, created_at) VALUES \
             ({ada}, '{p}10', now() - interval '10 days'), ({ada}, '{p}100a', now() - interval '100 days'), \
             ({ada}, '{p}100b', now() - interval '100 days'), ({ada}, '{p}100c', now() - interval '100 days')",
            ada = self.ada
        );
        self.cluster.psql(&self.name, &insert).unwrap();
    }

    /// How many API tokens the database holds.
    fn tokens(&self) -> usize {
        self.cluster
            .psql(&self.name, "SELECT count(*) FROM api_tokens")
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Waits (at most ten seconds) until the Worker has no connection open.
    async fn no_worker_connections_left(&self) -> Duration {
        let started = Instant::now();
        loop {
            let open = self.worker_connections();
            if open == 0 {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{open} connection(s) of the Worker still open in pg_stat_activity after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

// ---------------------------------------------------------------------------
// workerd

impl Workerd {
    async fn start(setup: &Setup, build: &Path, database_url: &str) -> Workerd {
        Workerd::start_with(setup, build, database_url, Options::default()).await
    }

    async fn start_with(
        setup: &Setup,
        build: &Path,
        database_url: &str,
        options: Options<'_>,
    ) -> Workerd {
        Workerd::serve(&setup.workerd, build, database_url, options).await
    }

    /// Fires the main Worker's cron trigger with `cron`, through workerd's
    /// own service binding (`trigger.js`); the runtime's outcome.
    async fn fire_scheduled(&self, cron: &str) -> Value {
        let reply = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}/scheduled", self.events_port))
            .query(&[("cron", cron)])
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("the trigger Worker answers");
        assert_eq!(reply.status(), 200);
        reply.json().await.unwrap()
    }

    /// Delivers one batch of `messages` (`[{"id", "body"}]`) to the main
    /// Worker's queue handler, through workerd's own service binding
    /// (`trigger.js`); the runtime's outcome (what was acked and retried).
    async fn fire_queue(&self, queue: &str, messages: Value) -> Value {
        let reply = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/queue", self.events_port))
            .query(&[("name", queue)])
            .json(&messages)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("the trigger Worker answers");
        assert_eq!(reply.status(), 200);
        reply.json().await.unwrap()
    }

    /// Waits (at most `within`) until the log holds `line` at least `n`
    /// times; returns how many times it does.
    async fn log_count_reaches(&self, line: &str, n: usize, within: Duration) -> usize {
        let started = Instant::now();
        loop {
            let count = self.log().matches(line).count();
            if count >= n {
                return count;
            }
            assert!(
                started.elapsed() < within,
                "the log holds {line:?} {count} times, not {n}, after {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ---------------------------------------------------------------------------
// A client that checks every answer against the OpenAPI document

#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
}

impl Reply {
    #[track_caller]
    fn expect(self, status: u16) -> Reply {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        self
    }

    #[track_caller]
    fn error(&self) -> &str {
        self.body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {self:?}"))
    }
}

enum Auth<'a> {
    Token,
    None,
    Header(&'a str),
}

impl Api {
    fn new(workerd: &Workerd, token: &str) -> Api {
        Api {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
            base: workerd.url(""),
            token: token.to_owned(),
        }
    }

    /// `method route` (an OpenAPI path template; `path` is the actual path),
    /// checked against the document.
    async fn call(
        &self,
        method: Method,
        route: &str,
        path: &str,
        auth: Auth<'_>,
        body: Option<Body>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        request = match auth {
            Auth::Token => request.bearer_auth(&self.token),
            Auth::None => request,
            Auth::Header(value) => request.header("authorization", value),
        };
        request = match body {
            Some(Body::Json(value)) => request.json(&value),
            Some(Body::Raw(text)) => request
                .header("content-type", "application/json")
                .body(text),
            None => request,
        };
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: no answer: {e}"));
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "{method} {path} {status}: not JSON: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        openapi_check::check(method.as_str(), route, status, &body);
        Reply { status, body }
    }

    async fn get(&self, route: &str, path: &str) -> Reply {
        self.call(Method::GET, route, path, Auth::Token, None).await
    }

    async fn create_user(&self, name: &str, email: &str) -> Reply {
        let body = json!({ "name": name, "email": email });
        self.call(
            Method::POST,
            "/api/users",
            "/api/users",
            Auth::Token,
            Some(Body::Json(body)),
        )
        .await
    }

    /// The Worker's Prometheus text (`GET /metrics`).
    async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

enum Body {
    Json(Value),
    Raw(&'static str),
}

/// The sum of the samples of `metric` whose labels include all of
/// `labels` (0 if there are none).
fn metric(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(name, _)| {
            let bare = name.split('{').next().unwrap_or(name);
            bare == metric && labels.iter().all(|l| name.contains(l))
        })
        .map(|(_, value)| value.parse::<f64>().unwrap())
        // An empty sum is -0.0; printed, that reads oddly.
        .fold(0.0, |sum, value| sum + value)
}

#[track_caller]
fn assert_user(body: &Value, name: &str, email: &str) -> i64 {
    assert_eq!(body["name"], name, "{body}");
    assert_eq!(body["email"], email, "{body}");
    let created = body["created_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no created_at: {body}"));
    assert!(
        created.ends_with('Z') && created.contains('T'),
        "created_at {created:?} is not RFC 3339 UTC"
    );
    let keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys.len(),
        4,
        "a user is exactly id, name, email, created_at: {body}"
    );
    body["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no integer id: {body}"))
}

/// The e2e build (with its test routes) in workerd against a fresh
/// database, and a client holding that database's token.
async fn serve_e2e_build() -> (TestDb, Workerd, Api) {
    let setup = setup();
    let db = test_db().await;
    let workerd = Workerd::start(&setup, &setup.build, &db.url).await;
    let api = Api::new(&workerd, &db.token);
    (db, workerd, api)
}

// ---------------------------------------------------------------------------
// The tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn users_contract_load_and_connections_in_workerd() {
    let (db, _workerd, api) = serve_e2e_build().await;

    // Health: public, and opens no connection.
    for _ in 0..20 {
        let reply = api
            .call(Method::GET, "/api/health", "/api/health", Auth::None, None)
            .await
            .expect(200);
        assert_eq!(reply.body, json!({ "status": "ok" }));
    }
    let metrics = api.metrics().await;
    assert_eq!(
        metric(&metrics, "db_connections_opened_total", &[]),
        0.0,
        "health opened a connection"
    );
    assert_eq!(
        metric(
            &metrics,
            "provision_service_acquisitions_total",
            &[r#"service="Conn""#]
        ),
        0.0
    );
    assert_eq!(db.worker_connections(), 0);

    let (contract_created, _) = users_contract(&api, db.ada).await;
    assert_eq!(contract_created, 5);
    let users = "/api/users";
    db.no_worker_connections_left().await;

    // 300 sequential requests, all correct.
    let started = Instant::now();
    let mut created = 0;
    for i in 0..300 {
        if mixed_request(&api, &db, i).await {
            created += 1;
        }
    }
    let sequential = started.elapsed();

    // 300 concurrent requests, 32 at a time, all correct.
    let started = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    let db_ada = db.ada;
    for i in 300..600 {
        let (api, limit) = (api.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            mixed_request_for(&api, db_ada, i).await
        });
    }
    let mut concurrent_created = 0;
    while let Some(done) = tasks.join_next().await {
        if done.expect("a concurrent request panicked") {
            concurrent_created += 1;
        }
    }
    let concurrent = started.elapsed();
    let total = api.get(users, "/api/users?limit=1").await.expect(200);
    assert_eq!(
        total.body["total"],
        6 + created + concurrent_created,
        "every 201 was kept"
    );

    // Afterwards: no connection left, every connection released.
    let drained = db.no_worker_connections_left().await;
    let metrics = api.metrics().await;
    let acquired = metric(
        &metrics,
        "provision_service_acquisitions_total",
        &[r#"service="Conn""#],
    );
    let released = metric(
        &metrics,
        "provision_service_releases_total",
        &[r#"service="Conn""#],
    );
    let opened = metric(&metrics, "db_connections_opened_total", &[]);
    assert_eq!(acquired, released, "every Conn acquired was released");
    assert_eq!(
        opened, acquired,
        "one connection per request that needed one"
    );
    assert_eq!(
        metric(&metrics, "provision_service_held", &[r#"service="Conn""#]),
        0.0
    );

    // Health still opens nothing.
    for _ in 0..50 {
        api.call(Method::GET, "/api/health", "/api/health", Auth::None, None)
            .await
            .expect(200);
    }
    let after = api.metrics().await;
    assert_eq!(
        metric(&after, "db_connections_opened_total", &[]),
        opened,
        "health opened a connection"
    );
    assert_eq!(db.worker_connections(), 0);

    println!(
        "workerd users contract: ok; 300 sequential in {:.1} s ({:.0} req/s), 300 concurrent (32 at a time) in {:.1} s ({:.0} req/s), \
         {created}+{concurrent_created} users created; {opened} connections opened and closed; 0 left ({:.2} s to drain)",
        sequential.as_secs_f64(),
        300.0 / sequential.as_secs_f64(),
        concurrent.as_secs_f64(),
        300.0 / concurrent.as_secs_f64(),
        drained.as_secs_f64(),
    );
}

/// The users contract (every status and JSON shape, each answer checked
/// against the OpenAPI document) on a fresh database holding only `ada`:
/// how many users it created, and the ids in order (`ada` first).
async fn users_contract(api: &Api, ada: i64) -> (usize, Vec<i64>) {
    // 401: without a token, with a bad one, with another scheme.
    let users = "/api/users";
    let missing = api
        .call(Method::GET, users, users, Auth::None, None)
        .await
        .expect(401);
    assert!(
        missing.error().contains("missing bearer token"),
        "{}",
        missing.error()
    );
    let bad = api
        .call(
            Method::GET,
            users,
            users,
            Auth::Header("Bearer pv_1_00"),
            None,
        )
        .await
        .expect(401);
    assert_eq!(
        bad.error(),
        "the bearer token is invalid or has been revoked"
    );
    api.call(
        Method::GET,
        users,
        users,
        Auth::Header("Basic YWRhOnB3"),
        None,
    )
    .await
    .expect(401);
    let bad_post = api
        .call(
            Method::POST,
            users,
            users,
            Auth::None,
            Some(Body::Json(json!({"name": "X", "email": "x@example.com"}))),
        )
        .await
        .expect(401);
    assert!(bad_post.error().contains("bearer"), "{}", bad_post.error());

    // List and get.
    let list = api.get(users, users).await.expect(200);
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["users"].as_array().unwrap().len(), 1);
    assert_user(&list.body["users"][0], "Ada", "ada@example.com");
    let one = "/api/users/{id}";
    let found = api.get(one, &format!("/api/users/{ada}")).await.expect(200);
    assert_eq!(assert_user(&found.body, "Ada", "ada@example.com"), ada);
    let missing = api.get(one, "/api/users/999999999").await.expect(404);
    assert!(!missing.error().is_empty());
    let not_int = api.get(one, "/api/users/abc").await.expect(400);
    assert!(!not_int.error().is_empty());

    // Create: 201, then every kind of bad input.
    let mut ids = vec![ada];
    for n in 1..=5 {
        let email = format!("user{n}@example.com");
        let reply = api
            .create_user(&format!("User {n}"), &email)
            .await
            .expect(201);
        ids.push(assert_user(&reply.body, &format!("User {n}"), &email));
    }
    let duplicate = api
        .create_user("Another Ada", "ada@example.com")
        .await
        .expect(409);
    assert_eq!(duplicate.error(), "a user with this email already exists");
    for body in [
        Body::Raw("{"),
        Body::Raw("[1, 2]"),
        Body::Json(json!({ "name": "No email" })),
        Body::Json(json!({ "email": "no-name@example.com" })),
        Body::Json(json!({ "name": "Bad", "email": "not-an-email" })),
        Body::Json(json!({ "name": "", "email": "empty@example.com" })),
        Body::Json(json!({ "name": 5, "email": "number@example.com" })),
    ] {
        let reply = api
            .call(Method::POST, users, users, Auth::Token, Some(body))
            .await
            .expect(400);
        assert!(!reply.error().is_empty());
    }

    // Pagination: by id, with the total.
    let page = api
        .get(users, "/api/users?limit=2&offset=1")
        .await
        .expect(200);
    assert_eq!(page.body["total"], 6);
    let page_ids: Vec<i64> = page.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert_eq!(page_ids, ids[1..3]);
    let past_end = api.get(users, "/api/users?offset=100").await.expect(200);
    assert_eq!(past_end.body["users"], json!([]));
    assert_eq!(past_end.body["total"], 6);
    for bad in ["limit=0", "limit=501", "limit=abc", "offset=-1"] {
        api.get(users, &format!("/api/users?{bad}"))
            .await
            .expect(400);
    }
    (ids.len() - 1, ids)
}

/// Waits (at most ten seconds) until the Worker holds `n` connections
/// (`provision_service_held` of `Conn` in its metrics).
async fn conn_held(api: &Api, n: usize) {
    let started = Instant::now();
    loop {
        let held = metric(
            &api.metrics().await,
            "provision_service_held",
            &[r#"service="Conn""#],
        );
        if held == n as f64 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the Worker holds {held} connections, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One request of the load mix (a user by id, a page of users, a new
/// user, health), checked; `true` if it created a user.
async fn mixed_request(api: &Api, db: &TestDb, i: usize) -> bool {
    mixed_request_for(api, db.ada, i).await
}

async fn mixed_request_for(api: &Api, ada: i64, i: usize) -> bool {
    match i % 4 {
        0 => {
            let reply = api
                .get("/api/users/{id}", &format!("/api/users/{ada}"))
                .await
                .expect(200);
            assert_user(&reply.body, "Ada", "ada@example.com");
            false
        }
        1 => {
            let reply = api
                .get("/api/users", "/api/users?limit=5")
                .await
                .expect(200);
            let users = reply.body["users"].as_array().unwrap();
            assert!(!users.is_empty() && users.len() <= 5, "{}", reply.body);
            assert_eq!(users[0]["id"], ada, "ordered by id");
            assert!(reply.body["total"].as_i64().unwrap() >= users.len() as i64);
            false
        }
        2 => {
            let email = format!("load{i}@example.com");
            let reply = api
                .create_user(&format!("Load {i}"), &email)
                .await
                .expect(201);
            assert_user(&reply.body, &format!("Load {i}"), &email);
            true
        }
        _ => {
            let reply = api
                .call(Method::GET, "/api/health", "/api/health", Auth::None, None)
                .await
                .expect(200);
            assert_eq!(reply.body, json!({ "status": "ok" }));
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn a_panic_answers_json_500_and_the_isolate_keeps_serving() {
    let (db, _workerd, api) = serve_e2e_build().await;
    let panicked = json!({ "error": "internal error: the handler panicked" });
    let test_route = |path: &'static str| {
        let api = api.clone();
        async move { api.call(Method::GET, path, path, Auth::Token, None).await }
    };

    // A panic, then the same isolate serves, database included.
    let reply = test_route("/__test/panic").await.expect(500);
    assert_eq!(reply.body, panicked);
    api.call(Method::GET, "/api/health", "/api/health", Auth::None, None)
        .await
        .expect(200);
    api.get("/api/users", "/api/users").await.expect(200);

    // A trap that is not a panic (`abort`: no panic hook runs) is caught by
    // the guard's `WebAssembly.RuntimeError` listener.
    let reply = test_route("/__test/abort").await.expect(500);
    assert_eq!(reply.body, panicked);
    api.get("/api/users", "/api/users").await.expect(200);

    // A panic while the request holds an open database connection: still a
    // 500, and the runtime closes the socket with the request.
    let reply = test_route("/__test/panic-holding-connection")
        .await
        .expect(500);
    assert_eq!(reply.body, panicked);
    db.no_worker_connections_left().await;
    api.get("/api/users", "/api/users").await.expect(200);

    // Ten more, alternating with database requests.
    for _ in 0..10 {
        assert_eq!(
            test_route("/__test/panic-holding-connection")
                .await
                .expect(500)
                .body,
            panicked
        );
        api.get("/api/users/{id}", &format!("/api/users/{}", db.ada))
            .await
            .expect(200);
    }

    // With panic=unwind each of those released its connection itself,
    // with the panic exit (counted since the abort reset the instance).
    let metrics = api.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "provision_service_releases_total",
            &[r#"service="Conn""#, r#"exit="panic""#]
        ),
        11.0,
        "{metrics}"
    );

    // A panic fails only its own request: another one in flight in the
    // same isolate completes normally.
    let slow = || {
        let api = api.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let reply = api
                .call(
                    Method::GET,
                    "/__test/slow",
                    "/__test/slow?ms=3000",
                    Auth::Token,
                    None,
                )
                .await;
            (reply, started.elapsed())
        })
    };
    let in_flight = slow();
    conn_held(&api, 1).await;
    assert_eq!(test_route("/__test/panic").await.expect(500).body, panicked);
    let (reply, _) = in_flight.await.unwrap();
    assert_eq!(reply.expect(200).body, json!({ "slept_ms": 3000 }));

    // What the guard does not save: a trap that is not a panic kills the
    // instance, and a request in flight dies with it (its Wasm state is
    // gone); it gets the same 500, at once rather than never.
    let in_flight = slow();
    conn_held(&api, 1).await;
    assert_eq!(test_route("/__test/abort").await.expect(500).body, panicked);
    let (reply, took) = in_flight.await.unwrap();
    assert_eq!(
        reply.expect(500).body,
        panicked,
        "the in-flight request is answered, not left hanging"
    );
    assert!(
        took < Duration::from_millis(2900),
        "answered at the trap, not after its 3 s: {took:?}"
    );
    db.no_worker_connections_left().await;

    // And the isolate keeps serving, sequentially and concurrently.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32 {
        let api = api.clone();
        let ada = db.ada;
        tasks.spawn(async move { mixed_request_for(&api, ada, i).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }

    // A slow request on its own completes normally.
    let reply = api
        .call(
            Method::GET,
            "/__test/slow",
            "/__test/slow?ms=50",
            Auth::Token,
            None,
        )
        .await
        .expect(200);
    assert_eq!(reply.body, json!({ "slept_ms": 50 }));
    db.no_worker_connections_left().await;
    println!(
        "workerd panic guard: 13 panics and 2 aborts answered 500 JSON; a request in flight completed through a panic and was answered 500 at a trap ({took:?}); the isolate served every later request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn scopes_outside_axum_and_socket_holding_app_services_in_workerd() {
    let (db, _workerd, api) = serve_e2e_build().await;

    // A plain workers-rs handler inside provision_worker::scoped: its
    // connection is released before the response is returned.
    for _ in 0..20 {
        let reply = api
            .call(
                Method::GET,
                "/__test/scoped",
                "/__test/scoped",
                Auth::None,
                None,
            )
            .await
            .expect(200);
        assert_eq!(reply.body["pinged"], true);
    }
    db.no_worker_connections_left().await;

    // An app service that opens a socket while it is built: the registry
    // refuses it, naming the service and saying why; the socket it opened
    // is released.
    let reply = api
        .call(
            Method::GET,
            "/__test/app-service-with-socket",
            "/__test/app-service-with-socket",
            Auth::None,
            None,
        )
        .await
        .expect(500);
    let error = reply.error();
    assert!(
        error.contains("app service `SocketAtBoot` created a request-bound value (`PgSession`)"),
        "{error}"
    );
    assert!(error.contains(CROSS_REQUEST_IO), "{error}");
    db.no_worker_connections_left().await;
    println!(
        "workerd: scoped() released 20 connections before answering; the socket-holding app service was refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn negative_control_one_connection_per_isolate_fails_the_second_request() {
    let setup = setup();
    let db = test_db().await;
    let workerd = Workerd::start(&setup, &setup.negative_build, &db.url).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let list = || {
        client
            .get(workerd.url("/api/users"))
            .bearer_auth(&db.token)
            .send()
    };

    // The first request opens the isolate's connection and works: the
    // build is sound apart from the bug.
    let first = list().await.expect("the first request is answered");
    assert_eq!(
        first.status(),
        200,
        "first request: {}",
        first.text().await.unwrap_or_default()
    );

    // The second request reuses it. workerd refuses that I/O at once; the
    // store maps the refusal to its "unavailable" 503 (measured: 8 ms).
    let started = Instant::now();
    let second = list()
        .await
        .expect("the second request is answered, not left hanging (10 s client bound)");
    let took = started.elapsed();
    let status = second.status();
    let body = second.text().await.unwrap_or_default();
    assert_ne!(
        status,
        200,
        "THE NEGATIVE CONTROL NO LONGER FAILS: a connection opened by one request was used by the next \
         and workerd allowed it, so this test can no longer show the bug. Body: {body}\nworkerd log:\n{}",
        workerd.log()
    );
    // Because workerd refused the I/O (it logs the refusal; the wait fails
    // the test, showing the log, if it never does).
    workerd
        .log_count_reaches(CROSS_REQUEST_IO, 1, Duration::from_secs(5))
        .await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (
            503,
            r#"{"error":"the database is unavailable; try again shortly"}"#
        ),
        "the refused I/O is answered as the database being unavailable"
    );
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    println!(
        "negative control (one connection per isolate): second request answered {status} after {took:?}: {body}; workerd said \"{CROSS_REQUEST_IO}\""
    );
}

// ---------------------------------------------------------------------------
// Issue 10: cold starts, panics, clients that go away

/// Values of the request services (`Conn`, `Tx`) the Worker holds now.
fn request_services_held(metrics: &str) -> f64 {
    metric(metrics, "provision_service_held", &[r#"service="Conn""#])
        + metric(metrics, "provision_service_held", &[r#"service="Tx""#])
}

/// `Tx` releases with `exit` (`success`, `panic`...), from the metrics.
fn tx_releases(metrics: &str, exit: &str) -> f64 {
    metric(
        metrics,
        "provision_service_releases_total",
        &[r#"service="Tx""#, &format!("exit=\"{exit}\"")],
    )
}

/// Asserts `Tx` was released `success` times with the success exit and
/// `cancelled` times with the cancelled one.
#[track_caller]
fn assert_tx_exits(metrics: &str, success: f64, cancelled: f64) {
    assert_eq!(
        (
            tx_releases(metrics, "success"),
            tx_releases(metrics, "cancelled")
        ),
        (success, cancelled),
        "Tx releases (success, cancelled)"
    );
}

/// Asserts `Conn` and `Tx` were each acquired and released `n` times, once
/// per `what` (an event, a job that ran).
#[track_caller]
fn assert_conn_and_tx_acquired_and_released(metrics: &str, n: f64, what: &str) {
    for service in ["Conn", "Tx"] {
        let label = format!("service=\"{service}\"");
        assert_eq!(
            metric(metrics, "provision_service_acquisitions_total", &[&label]),
            n,
            "{service}: one per {what}"
        );
        assert_eq!(
            metric(metrics, "provision_service_releases_total", &[&label]),
            n,
            "{service}: released once per {what}"
        );
    }
}

/// A test's own figure: `name` from the environment, else `default`.
fn sized(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn a_cold_start_cut_off_by_its_client_makes_no_request_wait() {
    let setup = setup();
    let db = test_db().await;
    // Every app build waits 2 s on a timer, I/O owned by the request that
    // builds; the first request is the test's own.
    let workerd = Workerd::start_with(
        &setup,
        &setup.build,
        &db.url,
        Options {
            bindings: &[("TEST_START_DELAY_MS", "2000")],
            cold: true,
            ..Options::default()
        },
    )
    .await;
    let api = Api::new(&workerd, &db.token);
    const BUILDING: &str = "cold start: building the app";

    // The first request starts the build; its client gives up mid-build.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let first = tokio::spawn({
        let request = impatient
            .get(workerd.url("/api/users"))
            .bearer_auth(&db.token);
        async move { request.send().await }
    });
    workerd
        .log_count_reaches(BUILDING, 1, Duration::from_secs(10))
        .await;

    // A second request arrives while that build runs.
    let started = Instant::now();
    let second = api.get("/api/users", "/api/users").await;
    let second_took = started.elapsed();
    let first = first.await.unwrap();
    assert!(
        first.as_ref().is_err_and(reqwest::Error::is_timeout),
        "the first client gave up mid-build: {first:?}"
    );
    let second = second.expect(200);
    assert_eq!(second.body["total"], 1);

    // Every later request is served, one by one and concurrently.
    for _ in 0..10 {
        api.get("/api/users", "/api/users").await.expect(200);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32 {
        let api = api.clone();
        let ada = db.ada;
        tasks.spawn(async move { mixed_request_for(&api, ada, i).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    db.no_worker_connections_left().await;
    let builds = workerd.log().matches(BUILDING).count();
    println!(
        "workerd cold start: the first client gave up mid-build; the second request answered 200 in {second_took:?}; \
         42 later requests served; app builds started: {builds}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn a_panic_among_concurrent_writes_never_answers_5xx_for_a_committed_write() {
    let (db, workerd, api) = serve_e2e_build().await;
    let rounds = sized("CLOUD_API_WORKER_PANIC_ROUNDS", 100);
    const WRITERS: usize = 50;
    let panicked = json!({ "error": "internal error: the handler panicked" });
    let started = Instant::now();
    let mut answers: Vec<(String, u16)> = Vec::with_capacity(rounds * WRITERS);
    let mut rounds_with_5xx = 0;
    for round in 0..rounds {
        let mut writes = tokio::task::JoinSet::new();
        for i in 0..WRITERS {
            let api = api.clone();
            let email = format!("r{round}w{i}@example.com");
            writes.spawn(async move {
                // Not checked against the OpenAPI document: a 5xx here is
                // what this test counts.
                let status = api
                    .client
                    .post(format!("{}/api/users", api.base))
                    .bearer_auth(&api.token)
                    .json(&json!({ "name": "Writer", "email": email }))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("POST /api/users {email}: no answer: {e}"))
                    .status()
                    .as_u16();
                (email, status)
            });
        }
        let panic = {
            let api = api.clone();
            tokio::spawn(async move {
                api.call(
                    Method::GET,
                    "/__test/panic",
                    "/__test/panic",
                    Auth::None,
                    None,
                )
                .await
            })
        };
        let mut fives = 0;
        while let Some(done) = writes.join_next().await {
            let (email, status) = done.unwrap();
            assert!(
                status == 201 || status >= 500,
                "{email}: answered {status}, neither created nor a server error"
            );
            if status >= 500 {
                fives += 1;
            }
            answers.push((email, status));
        }
        if fives > 0 {
            rounds_with_5xx += 1;
        }
        assert_eq!(panic.await.unwrap().expect(500).body, panicked);
    }
    let took = started.elapsed();

    // What the database kept, against what each client was told.
    let kept = db
        .cluster
        .psql(
            &db.name,
            "SELECT email FROM users WHERE email LIKE 'r%w%@example.com'",
        )
        .unwrap();
    let kept: std::collections::HashSet<&str> = kept.lines().map(str::trim).collect();
    let told_5xx_but_kept: Vec<&str> = answers
        .iter()
        .filter(|(email, status)| *status >= 500 && kept.contains(email.as_str()))
        .map(|(email, _)| email.as_str())
        .collect();
    let told_201_but_lost: Vec<&str> = answers
        .iter()
        .filter(|(email, status)| *status == 201 && !kept.contains(email.as_str()))
        .map(|(email, _)| email.as_str())
        .collect();
    let fives = answers.iter().filter(|(_, s)| *s >= 500).count();
    println!(
        "workerd panics among writes: {rounds} rounds of {WRITERS} POST /api/users + 1 panic in {:.1} s; \
         {fives} of {} writes answered 5xx (in {rounds_with_5xx} rounds), {} of them committed; {} answered 201 but lost",
        took.as_secs_f64(),
        answers.len(),
        told_5xx_but_kept.len(),
        told_201_but_lost.len(),
    );
    assert!(
        told_201_but_lost.is_empty(),
        "answered 201 but not in the database: {told_201_but_lost:?}"
    );
    assert!(
        told_5xx_but_kept.is_empty(),
        "{} writes answered 5xx were committed, e.g. {:?}",
        told_5xx_but_kept.len(),
        &told_5xx_but_kept[..told_5xx_but_kept.len().min(5)]
    );
    // Better than required: the panic fails only its own request.
    assert_eq!(
        fives, 0,
        "a panic failed other requests in flight in the isolate"
    );
    api.get("/api/users", "/api/users").await.expect(200);
    db.no_worker_connections_left().await;
    drop(workerd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn clients_that_go_away_mid_write_leave_no_row_and_every_release_runs() {
    let (db, workerd, api) = serve_e2e_build().await;
    let small = sized("CLOUD_API_WORKER_DISCONNECTS_SMALL", 100);
    let large = sized("CLOUD_API_WORKER_DISCONNECTS_LARGE", 2000);
    const AT_ONCE: usize = 40;
    let memory = || async {
        api.call(
            Method::GET,
            "/__test/memory",
            "/__test/memory",
            Auth::None,
            None,
        )
        .await
        .expect(200)
        .body["bytes"]
            .as_u64()
            .unwrap()
    };

    // `count` clients, in rounds of AT_ONCE, each giving up 0.3 s into a
    // write that holds its transaction for 2 s, by resetting its
    // connection: what Cloudflare's edge passes on when a client goes
    // away (workerd, like the edge, cancels the request and aborts its
    // `signal`; a client's FIN alone goes unnoticed by workerd until it
    // writes the response). A round starts once the last one's releases
    // (rollbacks through `waitUntil`) have all run, so that at most
    // AT_ONCE requests are ever in the isolate, however slow the machine:
    // the Wasm memory only grows (to its high-water mark), and with
    // releases left to pile up on a loaded machine, it measured the load
    // (2.9 -> 7.5 MB in one run), not what each disconnect keeps.
    let port = workerd.port;
    let rounds_api = api.clone();
    let disconnect = move |from: usize, count: usize| {
        let api = rounds_api.clone();
        async move {
            let started = Instant::now();
            let ids: Vec<usize> = (from..from + count).collect();
            for round in ids.chunks(AT_ONCE) {
                let mut tasks = tokio::task::JoinSet::new();
                for &i in round {
                    tasks.spawn(give_up_mid_write(port, i));
                }
                while let Some(done) = tasks.join_next().await {
                    done.unwrap();
                }
                drained(&api).await;
            }
            started.elapsed()
        }
    };

    // Every release has run once the Worker holds nothing and has released
    // all it acquired, twice in a row (a bounded wait). A request reset
    // before its handler built anything acquires nothing: that is fine.
    let settled = || {
        let api = api.clone();
        async move {
            let started = Instant::now();
            let mut quiet = 0;
            loop {
                let metrics = api.metrics().await;
                let acquired = metric(
                    &metrics,
                    "provision_service_acquisitions_total",
                    &[r#"service="Tx""#],
                );
                let held = request_services_held(&metrics);
                let released = metric(
                    &metrics,
                    "provision_service_releases_total",
                    &[r#"service="Tx""#],
                );
                quiet = if released == acquired && held == 0.0 {
                    quiet + 1
                } else {
                    0
                };
                if quiet == 2 {
                    return metrics;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "releases did not complete within 60 s: Tx acquired {acquired}, released {released}, \
                     request services held {held}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };

    let small_took = disconnect(0, small).await;
    let metrics = settled().await;
    db.no_worker_connections_left().await;
    let memory_small = memory().await;

    let rows = |db: &TestDb| -> usize {
        db.cluster
            .psql(
                &db.name,
                "SELECT count(*) FROM users WHERE email LIKE 'gone%'",
            )
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let written = rows(&db);
    let by_exit = |metrics: &str, service: &str, exit: &str| {
        metric(
            metrics,
            "provision_service_releases_total",
            &[
                &format!("service=\"{service}\""),
                &format!("exit=\"{exit}\""),
            ],
        )
    };
    println!(
        "workerd disconnects: {small} clients gave up mid-write in {:.1} s; rows written {written}; \
         Tx releases cancelled {} / success {}; Conn releases cancelled {} / success {}; memory {memory_small} bytes",
        small_took.as_secs_f64(),
        by_exit(&metrics, "Tx", "cancelled"),
        by_exit(&metrics, "Tx", "success"),
        by_exit(&metrics, "Conn", "cancelled"),
        by_exit(&metrics, "Conn", "success"),
    );
    assert_eq!(written, 0, "a write whose client went away was committed");
    for service in ["Conn", "Tx"] {
        let label = format!("service=\"{service}\"");
        assert_eq!(
            metric(&metrics, "provision_service_acquisitions_total", &[&label]),
            metric(&metrics, "provision_service_releases_total", &[&label]),
            "{service}: releases == acquisitions"
        );
        assert_eq!(
            by_exit(&metrics, service, "cancelled"),
            metric(&metrics, "provision_service_releases_total", &[&label]),
            "{service}: every release saw the cancelled exit"
        );
    }
    assert_eq!(request_services_held(&metrics), 0.0);

    // Many more: the instance's memory does not grow with them.
    let large_took = disconnect(small, large - small).await;
    let metrics = settled().await;
    db.no_worker_connections_left().await;
    let memory_large = memory().await;
    assert_eq!(rows(&db), 0);
    for service in ["Conn", "Tx"] {
        let label = format!("service=\"{service}\"");
        let acquired = metric(&metrics, "provision_service_acquisitions_total", &[&label]);
        assert!(
            acquired > 0.0 && acquired <= large as f64,
            "{service}: {acquired}"
        );
        assert_eq!(
            by_exit(&metrics, service, "cancelled"),
            acquired,
            "{service}"
        );
        assert_eq!(
            metric(&metrics, "provision_service_releases_total", &[&label]),
            acquired,
            "{service}"
        );
    }
    println!(
        "workerd disconnects: {} more in {:.1} s ({} of {large} had opened their transaction, all released cancelled); \
         memory after {small}: {memory_small} bytes, after {large}: {memory_large} bytes",
        large - small,
        large_took.as_secs_f64(),
        metric(
            &metrics,
            "provision_service_acquisitions_total",
            &[r#"service="Tx""#]
        ),
    );
    // The allocator grows the memory in steps: one step of 15 pages
    // (983,040 bytes) was seen in every window measured, 1,900, 3,000 and
    // 6,000 disconnects alike (3,000 -> 9,000: 4.26 -> 5.24 MB), so this
    // bound allows one step and fails on growth in proportion to N (500
    // bytes kept per disconnect would be 0.95 MB more over 1,900).
    assert!(
        memory_large <= memory_small + (3 << 19),
        "Wasm memory grew by {} bytes between {small} and {large} disconnects",
        memory_large - memory_small
    );
    // And the isolate serves on.
    api.get("/api/users", "/api/users").await.expect(200);
}

/// One client that starts a 2 s write as `gone{i}@example.com`, gives up
/// 0.3 s in (nothing answered by then) and resets its connection.
async fn give_up_mid_write(port: u16, i: usize) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "POST /__test/slow-write?ms=2000&email=gone{i}@example.com HTTP/1.1\r\n\
         host: 127.0.0.1\r\ncontent-length: 0\r\n\r\n"
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    let mut answer = [0u8; 1];
    let read = tokio::time::timeout(
        Duration::from_millis(300),
        tokio::io::AsyncReadExt::read(&mut stream, &mut answer),
    )
    .await;
    assert!(
        read.is_err(),
        "answered before the client gave up: {read:?}"
    );
    stream.set_zero_linger().unwrap();
    drop(stream); // RST
}

/// Waits (at most 60 s) until the Worker holds no request service and has
/// released every transaction it acquired.
async fn drained(api: &Api) {
    let started = Instant::now();
    loop {
        let metrics = api.metrics().await;
        let tx = [r#"service="Tx""#];
        let acquired = metric(&metrics, "provision_service_acquisitions_total", &tx);
        let released = metric(&metrics, "provision_service_releases_total", &tx);
        let held = request_services_held(&metrics);
        if released == acquired && held == 0.0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "releases did not complete within 60 s: Tx acquired {acquired}, released {released}, \
             request services held {held}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `POST path` on a connection of its own, checks that nothing is
/// answered within `after`, then resets the connection (RST): a client that
/// gave up, as Cloudflare's edge passes it on.
async fn give_up_after(port: u16, path: &str, after: Duration) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!("POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    let mut answer = [0u8; 1];
    let read = tokio::time::timeout(
        after,
        tokio::io::AsyncReadExt::read(&mut stream, &mut answer),
    )
    .await;
    assert!(read.is_err(), "{path}: answered before the client gave up");
    stream.set_zero_linger().unwrap();
    drop(stream);
}

/// Polls the Worker's metrics until `Tx` has `n` releases in all, at most
/// 30 s; returns the metrics then.
async fn tx_releases_reach(api: &Api, n: f64) -> String {
    let started = Instant::now();
    loop {
        let metrics = api.metrics().await;
        let released = metric(
            &metrics,
            "provision_service_releases_total",
            &[r#"service="Tx""#],
        );
        if released >= n {
            return metrics;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "Tx: {released} releases after 30 s, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client that gives up on `path` 0.3 s in; the metrics once `Tx` has
/// `releases` releases in all.
async fn leave_mid_write(workerd: &Workerd, api: &Api, path: &str, releases: f64) -> String {
    give_up_after(workerd.port, path, Duration::from_millis(300)).await;
    tx_releases_reach(api, releases).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn a_finish_route_commits_after_its_client_left_and_is_cut_at_its_deadline() {
    let (db, workerd, api) = serve_e2e_build().await;
    let rows = |email: &str| -> usize {
        db.cluster
            .psql(
                &db.name,
                &format!("SELECT count(*) FROM users WHERE email = '{email}'"),
            )
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let outcomes = || async {
        api.call(
            Method::GET,
            "/__test/finish-outcomes",
            "/__test/finish-outcomes",
            Auth::None,
            None,
        )
        .await
        .expect(200)
        .body
    };

    // `finish` (deadline 2 s): the client leaves 0.3 s into a 1 s write;
    // the write runs on, commits, and its transaction is released with the
    // success exit.
    let metrics = leave_mid_write(
        &workerd,
        &api,
        "/__test/finish-write?ms=1000&email=finished@example.com",
        1.0,
    )
    .await;
    let after_finish = outcomes().await;
    println!(
        "finish, client gone: rows {}, Tx success {} cancelled {}, outcomes {after_finish}",
        rows("finished@example.com"),
        tx_releases(&metrics, "success"),
        tx_releases(&metrics, "cancelled"),
    );
    assert_eq!(
        rows("finished@example.com"),
        1,
        "the finished write is kept"
    );
    assert_tx_exits(&metrics, 1.0, 0.0);
    assert_eq!(after_finish["disconnected"], 1);
    assert_eq!(after_finish["finished_after_disconnect"], 1);
    db.no_worker_connections_left().await;

    // `cancel` (the default), the same write: rolled back, released with
    // the cancelled exit.
    let metrics = leave_mid_write(
        &workerd,
        &api,
        "/__test/slow-write?ms=1000&email=cancelled@example.com",
        2.0,
    )
    .await;
    println!(
        "cancel, client gone: rows {}, Tx success {} cancelled {}",
        rows("cancelled@example.com"),
        tx_releases(&metrics, "success"),
        tx_releases(&metrics, "cancelled"),
    );
    assert_eq!(
        rows("cancelled@example.com"),
        0,
        "the cancelled write is gone"
    );
    assert_tx_exits(&metrics, 1.0, 1.0);
    db.no_worker_connections_left().await;

    // `finish` past its deadline, the client still there: cut at 2 s,
    // answered 503 in JSON, rolled back, released cancelled, counted.
    let started = Instant::now();
    let cut = api
        .call(
            Method::POST,
            "/__test/finish-write",
            "/__test/finish-write?ms=6000&email=late@example.com",
            Auth::None,
            None,
        )
        .await;
    let took = started.elapsed();
    let metrics = tx_releases_reach(&api, 3.0).await;
    let after_cut = outcomes().await;
    println!(
        "finish past its deadline, client there: {} {} in {:.2} s; rows {}, Tx success {} cancelled {}, outcomes {after_cut}",
        cut.status,
        cut.body,
        took.as_secs_f64(),
        rows("late@example.com"),
        tx_releases(&metrics, "success"),
        tx_releases(&metrics, "cancelled"),
    );
    let cut = cut.expect(503);
    assert!(cut.error().contains("deadline"), "{}", cut.body);
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "cut after {took:?}, not at its 2 s deadline"
    );
    assert_eq!(rows("late@example.com"), 0, "a cut write is rolled back");
    assert_eq!(tx_releases(&metrics, "cancelled"), 2.0);
    assert_eq!(after_cut["cut_by_deadline"], 1);

    // And with its client gone: cut all the same, nothing kept, counted.
    let metrics = leave_mid_write(
        &workerd,
        &api,
        "/__test/finish-write?ms=6000&email=late-and-gone@example.com",
        4.0,
    )
    .await;
    let after_gone = outcomes().await;
    println!(
        "finish past its deadline, client gone: rows {}, Tx success {} cancelled {}, outcomes {after_gone}",
        rows("late-and-gone@example.com"),
        tx_releases(&metrics, "success"),
        tx_releases(&metrics, "cancelled"),
    );
    assert_eq!(rows("late-and-gone@example.com"), 0);
    assert_tx_exits(&metrics, 1.0, 3.0);
    assert_eq!(after_gone["cut_by_deadline"], 2);
    assert_eq!(after_gone["finished_after_disconnect"], 1);
    db.no_worker_connections_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn the_cron_trigger_deletes_expired_tokens_in_a_scope_of_its_own() {
    let (db, workerd, api) = serve_e2e_build().await;
    // Ada's token (new), one 10 days old, three 100 days old.
    db.insert_aged_tokens("h");
    assert_eq!(db.tokens(), 5);

    // A job that panics after its delete: rolled back, released with the
    // panic exit, and the isolate serves on.
    let outcome = workerd.fire_scheduled("0 0 31 2 *").await;
    assert_eq!(outcome["outcome"], "ok", "{outcome}");
    assert_eq!(db.tokens(), 5, "the panicking job's delete was rolled back");
    let metrics = api.metrics().await;
    assert_eq!(tx_releases(&metrics, "panic"), 1.0, "{metrics}");
    assert_eq!(request_services_held(&metrics), 0.0);
    db.no_worker_connections_left().await;

    // The daily job: the three old tokens go, in a committed transaction.
    let outcome = workerd.fire_scheduled("0 3 * * *").await;
    assert_eq!(outcome["outcome"], "ok", "{outcome}");
    assert_eq!(db.tokens(), 2, "tokens older than 90 days are deleted");
    let metrics = api.metrics().await;
    assert_eq!(tx_releases(&metrics, "success"), 1.0);
    assert_conn_and_tx_acquired_and_released(&metrics, 2.0, "event");
    assert_eq!(request_services_held(&metrics), 0.0);
    db.no_worker_connections_left().await;
    // Ada's token survived and works.
    api.get("/api/users", "/api/users").await.expect(200);
    let log = workerd.log();
    assert!(
        log.contains("cron 0 3 * * *: deleted 3 API tokens older than 90 days"),
        "{log}"
    );
    println!(
        "workerd cron: fired through a service binding; a panicking run rolled back and released with exit=panic; the daily run deleted 3 expired tokens and kept 2"
    );
}

// ---------------------------------------------------------------------------
// A database that hangs or drops (issue 10, part 3)

/// Settings of these tests, as the Worker's bindings (the native CLI's
/// names): bounds short enough to test, long enough for a loaded machine.
const TIGHT_BOUNDS: &[(&str, &str)] = &[("ACQUIRE_TIMEOUT", "1s"), ("STATEMENT_TIMEOUT", "1s")];

impl Workerd {
    /// The e2e build against `database_url`, with `TIGHT_BOUNDS`.
    async fn start_tight(setup: &Setup, database_url: &str) -> Workerd {
        let options = Options {
            bindings: TIGHT_BOUNDS,
            ..Options::default()
        };
        Workerd::start_with(setup, &setup.build, database_url, options).await
    }
}

/// How far past its bound an answer may come and still count: a
/// correctness margin for a busy 2-core machine, not a speed target.
const MARGIN: Duration = Duration::from_secs(8);

/// `GET path` with a token, timed; the status and the JSON body. `None`
/// when no answer came within `wait`.
async fn timed_get(
    workerd: &Workerd,
    path: &str,
    token: &str,
    wait: Duration,
) -> (Option<(u16, Value)>, Duration) {
    let started = Instant::now();
    let sent = reqwest::Client::new()
        .get(workerd.url(path))
        .bearer_auth(token)
        .timeout(wait)
        .send()
        .await;
    let reply = match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            let body = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("GET {path} {status}: not JSON: {text}"));
            Some((status, body))
        }
        Err(error) if error.is_timeout() => None,
        Err(error) => panic!("GET {path}: {error}"),
    };
    (reply, started.elapsed())
}

#[track_caller]
fn assert_json_503_within(
    reply: Option<(u16, Value)>,
    took: Duration,
    bound: Duration,
    what: &str,
) -> String {
    let (status, body) =
        reply.unwrap_or_else(|| panic!("{what}: no answer within {took:?} (bound {bound:?})"));
    assert_eq!(status, 503, "{what}: {body}");
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: not an error body: {body}"))
        .to_owned();
    assert!(
        took < bound + MARGIN,
        "{what}: answered after {took:?}, past the bound {bound:?} (+{MARGIN:?})"
    );
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn a_database_that_accepts_and_never_answers_gets_a_json_503_within_the_acquire_timeout() {
    let setup = setup();
    // Accepts every connection and keeps it, never writing a byte.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    let url = format!("postgres://app:secret@127.0.0.1:{port}/app");
    let workerd = Workerd::start_tight(&setup, &url).await;
    let bound = Duration::from_secs(1);
    for round in 0..2 {
        let (reply, took) =
            timed_get(&workerd, "/api/users", "any-token", Duration::from_secs(20)).await;
        let message = assert_json_503_within(reply, took, bound, &format!("request {round}"));
        println!("silent database, request {round}: 503 {message:?} after {took:?}");
    }
    assert!(accepted.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    // The isolate still serves what needs no database.
    let health = reqwest::get(workerd.url("/api/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    silent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn a_statement_past_the_statement_timeout_answers_503_and_its_backend_goes() {
    let setup = setup();
    let db = test_db().await;
    let workerd = Workerd::start_tight(&setup, &db.url).await;
    // pg_sleep(30) outside a transaction: only the client's deadline can
    // stop it, by cancelling it on the server.
    let (reply, took) = timed_get(
        &workerd,
        "/__test/sleep?seconds=30",
        &db.token,
        Duration::from_secs(20),
    )
    .await;
    let message = assert_json_503_within(reply, took, Duration::from_secs(1), "pg_sleep(30)");
    let gone = db.no_worker_connections_left().await;
    println!(
        "statement timeout 1 s: pg_sleep(30) answered 503 {message:?} after {took:?}; its backend left pg_stat_activity {gone:?} later"
    );
    // A statement within the bound still works, on a new connection.
    let (reply, _) = timed_get(
        &workerd,
        "/__test/sleep?seconds=0.1",
        &db.token,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(reply.map(|(status, _)| status), Some(200));
    db.no_worker_connections_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn a_first_connect_that_is_refused_is_retried_and_the_request_succeeds() {
    let setup = setup();
    let db = test_db().await;
    // A proxy that closes its first connection at once, then forwards.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = db.cluster.port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let proxy = tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                drop(client);
                continue;
            }
            tokio::spawn(async move {
                if let Ok(mut server) =
                    tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    let url = db
        .url
        .replace(&format!(":{upstream}/"), &format!(":{port}/"));
    assert_ne!(url, db.url);
    let workerd = Workerd::start(&setup, &setup.build, &url).await;
    let api = Api::new(&workerd, &db.token);
    let reply = api.get("/api/users", "/api/users").await;
    let connects = accepted.load(std::sync::atomic::Ordering::SeqCst);
    println!(
        "proxy refusing the first connect: the request answered {} after {connects} connect(s)",
        reply.status
    );
    reply.expect(200);
    assert!(
        connects >= 2,
        "{connects} connect(s): the refused one was not retried"
    );
    proxy.abort();
    db.no_worker_connections_left().await;
}

// ---------------------------------------------------------------------------
// Behind PgBouncer in transaction mode (issue 10, part 4)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn the_users_contract_passes_behind_pgbouncer_in_transaction_mode() {
    let setup = setup();
    let db = test_db().await;
    let pgbouncer = db.cluster.pgbouncer().expect("pgbouncer starts");
    let workerd = Workerd::start(&setup, &setup.build, &pgbouncer.url(&db.name)).await;
    let api = Api::new(&workerd, &db.token);

    let (created, _) = users_contract(&api, db.ada).await;
    // Reads, writes (each a transaction with its SET LOCAL) and conflicts,
    // 16 at a time, through the pooler.
    let limit = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..120 {
        let (api, limit, ada) = (api.clone(), limit.clone(), db.ada);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            mixed_request_for(&api, ada, i).await
        });
    }
    let mut mixed_created = 0;
    while let Some(done) = tasks.join_next().await {
        if done.expect("a request through PgBouncer failed") {
            mixed_created += 1;
        }
    }
    let total = api
        .get("/api/users", "/api/users?limit=1")
        .await
        .expect(200);
    assert_eq!(
        total.body["total"],
        1 + created + mixed_created,
        "every 201 was kept"
    );

    let metrics = api.metrics().await;
    let acquired = metric(
        &metrics,
        "provision_service_acquisitions_total",
        &[r#"service="Conn""#],
    );
    let released = metric(
        &metrics,
        "provision_service_releases_total",
        &[r#"service="Conn""#],
    );
    assert_eq!(acquired, released, "every Conn acquired was released");
    assert_eq!(
        metric(&metrics, "provision_service_held", &[r#"service="Conn""#]),
        0.0
    );
    // No transaction left open on a server connection PgBouncer pools.
    let open = db
        .cluster
        .psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND state LIKE 'idle in transaction%'",
                db.name
            ),
        )
        .unwrap();
    assert_eq!(open.trim(), "0");
    let log = pgbouncer.log();
    assert!(!log.contains("unsupported startup parameter"), "{log}");
    println!(
        "workerd behind PgBouncer (transaction mode): users contract ok, {created}+{mixed_created} users created, {acquired} connections acquired and released"
    );
}

// ---------------------------------------------------------------------------
// Queue events (issue 10, part 6)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn queue_messages_run_each_in_a_scope_of_its_own_acked_or_retried() {
    let (db, workerd, api) = serve_e2e_build().await;
    // Ada's token (new), one 10 days old, three 100 days old.
    db.insert_aged_tokens("q");
    assert_eq!(db.tokens(), 5);

    // One batch: a job that panics after deleting everything older than
    // 5 days, one that deletes what is older than 50 days, and a body
    // that is no job.
    let outcome = workerd
        .fire_queue(
            "cloud-api-jobs",
            json!([
                { "id": "panics", "body": { "delete_tokens_older_than_days": 5, "panic": true } },
                { "id": "deletes", "body": { "delete_tokens_older_than_days": 50 } },
                { "id": "garbage", "body": { "what": "no job" } },
            ]),
        )
        .await;
    assert_eq!(outcome["outcome"], "ok", "{outcome}");
    assert_eq!(outcome["explicitRetries"], json!(["panics"]), "{outcome}");
    assert_eq!(
        outcome["explicitAcks"],
        json!(["deletes", "garbage"]),
        "{outcome}"
    );
    assert_eq!(outcome["retryAll"], false, "{outcome}");
    // The panicking job's delete rolled back; the other's committed.
    assert_eq!(db.tokens(), 2, "the 10-day token and Ada's remain");

    let metrics = api.metrics().await;
    assert_eq!(tx_releases(&metrics, "panic"), 1.0, "{metrics}");
    assert_eq!(tx_releases(&metrics, "success"), 1.0, "{metrics}");
    assert_conn_and_tx_acquired_and_released(&metrics, 2.0, "job that ran");
    assert_eq!(request_services_held(&metrics), 0.0);
    db.no_worker_connections_left().await;
    // The isolate serves on, and Ada's token works.
    api.get("/api/users", "/api/users").await.expect(200);
    println!(
        "workerd queue: one batch through a service binding; the panicking job rolled back and was retried, the other committed and was acked, the malformed one dropped (acked)"
    );
}

// ---------------------------------------------------------------------------
// The request conversion (issue 14, part 6)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn handlers_see_the_whole_request_after_the_conversion() {
    let (_db, workerd, _api) = serve_e2e_build().await;
    let reply = reqwest::Client::new()
        .post(workerd.url("/__test/echo?a=1&b=two"))
        .header("x-test", "first")
        .header("x-test", "second")
        .body("the body")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let seen: Value = reply.json().await.unwrap();
    assert_eq!(seen["method"], "POST", "{seen}");
    assert!(
        seen["uri"]
            .as_str()
            .unwrap()
            .ends_with("/__test/echo?a=1&b=two"),
        "{seen}"
    );
    assert_eq!(seen["version"], "HTTP/1.1", "{seen}");
    // The Fetch API's `Headers` joins a repeated header into one value,
    // as workers-rs's own conversion also hands it over.
    assert_eq!(seen["x_test"], json!(["first, second"]), "{seen}");
    assert_eq!(seen["body"], "the body", "{seen}");
    assert_eq!(seen["cf"], true, "workers-rs's Cf is kept: {seen}");
    assert_eq!(seen["signal"], true, "the AbortSignal is kept: {seen}");
}
