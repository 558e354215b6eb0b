//! A request refused for bad input builds nothing: for every endpoint that
//! takes input and every kind of bad input it can get (path, query, body
//! syntax, missing or wrong fields, validation, size, content type), on
//! PostgreSQL in per-request mode with a valid token, the answer is the
//! documented 4xx with a JSON error, and the request opened no database
//! connection (the service's `db_connections_opened_total`, and the
//! server's own `pg_stat_database.sessions`) and built no service that
//! does I/O (the registry's probe).

use std::time::Duration;

use crate::support::{self, Backend, TestApp};
use provision::LifetimeKind;
use reqwest::Method;
use serde_json::json;

/// One request that must be refused.
struct Cell {
    /// Names the cell in failure messages.
    name: String,
    method: Method,
    route: &'static str,
    params: Vec<String>,
    query: Option<&'static str>,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
    status: u16,
    /// A piece of the error message that says what is wrong.
    error_says: &'static str,
}

/// The ids the valid parts of each request refer to: real rows the caller
/// may act on, so that only the bad part can be the reason for a refusal.
struct Ids {
    user: i64,
    org: i64,
    scope: i64,
    source: i64,
}

const JSON: Option<&str> = Some("application/json");

fn cell(
    name: impl Into<String>,
    method: Method,
    route: &'static str,
    params: &[&dyn ToString],
    status: u16,
    error_says: &'static str,
) -> Cell {
    Cell {
        name: name.into(),
        method,
        route,
        params: params.iter().map(|p| p.to_string()).collect(),
        query: None,
        content_type: None,
        body: None,
        status,
        error_says,
    }
}

impl Cell {
    fn body(mut self, content_type: Option<&'static str>, body: impl Into<Vec<u8>>) -> Cell {
        self.content_type = content_type;
        self.body = Some(body.into());
        self
    }

    fn json(self, body: serde_json::Value) -> Cell {
        self.body(JSON, body.to_string())
    }
}

/// Bad ids in a path: not integers, or out of `i64`'s range.
const BAD_IDS: [&str; 3] = ["abc", "1.5", "9223372036854775808"];

/// The kinds of bad body every JSON endpoint can get: syntax, shape, size
/// and content type. `valid` is a body the endpoint would accept.
fn bad_bodies(
    endpoint: &str,
    method: Method,
    route: &'static str,
    params: &[&dyn ToString],
    valid: &serde_json::Value,
) -> Vec<Cell> {
    let c = |kind: &str, status, says| {
        cell(
            format!("{endpoint}: {kind}"),
            method.clone(),
            route,
            params,
            status,
            says,
        )
    };
    let oversize = format!(r#"{{"name": "{}"}}"#, "x".repeat(100 * 1024));
    vec![
        c("malformed JSON", 400, "JSON").body(JSON, "{\"name\": "),
        c("not an object", 400, "").json(json!([])),
        c("null", 400, "").json(json!(null)),
        c("invalid UTF-8", 400, "").body(JSON, b"{\"name\": \"\xff\xfe\"}".to_vec()),
        c("text/plain", 415, "application/json").body(Some("text/plain"), valid.to_string()),
        c("no content type", 415, "application/json").body(None, valid.to_string()),
        c("form content type", 415, "application/json")
            .body(Some("application/x-www-form-urlencoded"), "name=x"),
        c("over the size limit", 413, "length limit").body(JSON, oversize),
    ]
}

fn matrix(ids: &Ids) -> Vec<Cell> {
    use Method as M;
    let mut cells = Vec::new();

    // GET /api/users: the query.
    for query in [
        "limit=0",
        "limit=501",
        "limit=-1",
        "offset=-1",
        "limit=abc",
        "offset=1e3",
    ] {
        let mut list = cell(
            format!("GET /api/users?{query}"),
            M::GET,
            "/api/users",
            &[],
            400,
            "",
        );
        list.query = Some(query);
        cells.push(list);
    }

    // GET /api/users/{id}
    for id in BAD_IDS {
        cells.push(cell(
            format!("GET /api/users/{id}"),
            M::GET,
            "/api/users/{id}",
            &[&id],
            400,
            id,
        ));
    }

    // POST /api/users
    let valid_user = json!({"name": "Grace", "email": "grace@example.com"});
    cells.extend(bad_bodies(
        "POST /api/users",
        M::POST,
        "/api/users",
        &[],
        &valid_user,
    ));
    for (kind, body, says) in [
        ("missing email", json!({"name": "Grace"}), "email"),
        (
            "missing name",
            json!({"email": "grace@example.com"}),
            "name",
        ),
        (
            "name of the wrong type",
            json!({"name": 5, "email": "g@example.com"}),
            "name",
        ),
        (
            "empty name",
            json!({"name": "  ", "email": "g@example.com"}),
            "name",
        ),
        (
            "name too long",
            json!({"name": "x".repeat(201), "email": "g@example.com"}),
            "name",
        ),
        (
            "control character in name",
            json!({"name": "a\u{7}b", "email": "g@example.com"}),
            "name",
        ),
        (
            "bad email",
            json!({"name": "Grace", "email": "not-an-email"}),
            "email",
        ),
        (
            "empty email",
            json!({"name": "Grace", "email": ""}),
            "email",
        ),
    ] {
        cells.push(
            cell(
                format!("POST /api/users: {kind}"),
                M::POST,
                "/api/users",
                &[],
                400,
                says,
            )
            .json(body),
        );
    }

    // POST /api/orgs
    let valid_org = json!({"name": "Initech"});
    cells.extend(bad_bodies(
        "POST /api/orgs",
        M::POST,
        "/api/orgs",
        &[],
        &valid_org,
    ));
    for (kind, body) in [
        ("missing name", json!({})),
        ("empty name", json!({"name": ""})),
        ("name too long", json!({"name": "x".repeat(201)})),
        ("name of the wrong type", json!({"name": ["x"]})),
    ] {
        cells.push(
            cell(
                format!("POST /api/orgs: {kind}"),
                M::POST,
                "/api/orgs",
                &[],
                400,
                "name",
            )
            .json(body),
        );
    }

    // GET /api/orgs/{org_id} and its members
    for id in BAD_IDS {
        cells.push(cell(
            format!("GET /api/orgs/{id}"),
            M::GET,
            "/api/orgs/{org_id}",
            &[&id],
            400,
            id,
        ));
        cells.push(cell(
            format!("GET /api/orgs/{id}/members"),
            M::GET,
            "/api/orgs/{org_id}/members",
            &[&id],
            400,
            id,
        ));
        cells.push(
            cell(
                format!("POST /api/orgs/{id}/members"),
                M::POST,
                "/api/orgs/{org_id}/members",
                &[&id],
                400,
                id,
            )
            .json(json!({"email": "ada@example.com"})),
        );
        for (org, user) in [
            (id.to_owned(), ids.user.to_string()),
            (ids.org.to_string(), id.to_owned()),
        ] {
            cells.push(
                cell(
                    format!("PATCH /api/orgs/{org}/members/{user}"),
                    M::PATCH,
                    "/api/orgs/{org_id}/members/{user_id}",
                    &[&org, &user],
                    400,
                    id,
                )
                .json(json!({"role": "member"})),
            );
            cells.push(cell(
                format!("DELETE /api/orgs/{org}/members/{user}"),
                M::DELETE,
                "/api/orgs/{org_id}/members/{user_id}",
                &[&org, &user],
                400,
                id,
            ));
        }
    }

    // POST /api/orgs/{org_id}/members
    let members = format!("POST /api/orgs/{}/members", ids.org);
    cells.extend(bad_bodies(
        &members,
        M::POST,
        "/api/orgs/{org_id}/members",
        &[&ids.org],
        &json!({"email": "ada@example.com"}),
    ));
    for (kind, body, says) in [
        ("missing email", json!({"role": "member"}), "email"),
        (
            "unknown role",
            json!({"email": "ada@example.com", "role": "owner"}),
            "owner",
        ),
        (
            "unknown field",
            json!({"email": "ada@example.com", "admin": true}),
            "admin",
        ),
    ] {
        cells.push(
            cell(
                format!("{members}: {kind}"),
                M::POST,
                "/api/orgs/{org_id}/members",
                &[&ids.org],
                400,
                says,
            )
            .json(body),
        );
    }

    // PATCH /api/orgs/{org_id}/members/{user_id}
    let role = format!("PATCH /api/orgs/{}/members/{}", ids.org, ids.user);
    let member_params: [&dyn ToString; 2] = [&ids.org, &ids.user];
    cells.extend(bad_bodies(
        &role,
        M::PATCH,
        "/api/orgs/{org_id}/members/{user_id}",
        &member_params,
        &json!({"role": "member"}),
    ));
    for (kind, body, says) in [
        ("missing role", json!({}), "role"),
        ("unknown role", json!({"role": "owner"}), "owner"),
        (
            "unknown field",
            json!({"role": "admin", "email": "x@example.com"}),
            "email",
        ),
    ] {
        cells.push(
            cell(
                format!("{role}: {kind}"),
                M::PATCH,
                "/api/orgs/{org_id}/members/{user_id}",
                &member_params,
                400,
                says,
            )
            .json(body),
        );
    }

    // The sources of a scope.
    for id in BAD_IDS {
        cells.push(cell(
            format!("GET /api/scopes/{id}/sources"),
            M::GET,
            "/api/scopes/{scope_id}/sources",
            &[&id],
            400,
            id,
        ));
        cells.push(
            cell(
                format!("POST /api/scopes/{id}/sources"),
                M::POST,
                "/api/scopes/{scope_id}/sources",
                &[&id],
                400,
                id,
            )
            .json(json!({"name": "n", "kind": "mcp", "url": "https://x.example.com"})),
        );
        for (scope, source) in [
            (id.to_owned(), ids.source.to_string()),
            (ids.scope.to_string(), id.to_owned()),
        ] {
            let params: [&dyn ToString; 2] = [&scope, &source];
            let route = "/api/scopes/{scope_id}/sources/{source_id}";
            let path = format!("/api/scopes/{scope}/sources/{source}");
            cells.push(cell(format!("GET {path}"), M::GET, route, &params, 400, id));
            cells.push(
                cell(format!("PATCH {path}"), M::PATCH, route, &params, 400, id)
                    .json(json!({"name": "n"})),
            );
            cells.push(cell(
                format!("DELETE {path}"),
                M::DELETE,
                route,
                &params,
                400,
                id,
            ));
        }
    }

    // POST /api/scopes/{scope_id}/sources
    let create = format!("POST /api/scopes/{}/sources", ids.scope);
    let valid_source =
        json!({"name": "petstore", "kind": "openapi", "url": "https://petstore.example.com"});
    cells.extend(bad_bodies(
        &create,
        M::POST,
        "/api/scopes/{scope_id}/sources",
        &[&ids.scope],
        &valid_source,
    ));
    for (kind, body, says) in [
        ("missing url", json!({"name": "n", "kind": "mcp"}), "url"),
        (
            "unknown kind",
            json!({"name": "n", "kind": "soap", "url": "https://x.example.com"}),
            "soap",
        ),
        (
            "empty name",
            json!({"name": " ", "kind": "mcp", "url": "https://x.example.com"}),
            "name",
        ),
        (
            "relative url",
            json!({"name": "n", "kind": "mcp", "url": "x.example.com"}),
            "url",
        ),
        (
            "ftp url",
            json!({"name": "n", "kind": "mcp", "url": "ftp://x.example.com"}),
            "url",
        ),
        (
            "config not an object",
            json!({"name": "n", "kind": "mcp", "url": "https://x.example.com", "config": [1]}),
            "config",
        ),
    ] {
        cells.push(
            cell(
                format!("{create}: {kind}"),
                M::POST,
                "/api/scopes/{scope_id}/sources",
                &[&ids.scope],
                400,
                says,
            )
            .json(body),
        );
    }

    // PATCH /api/scopes/{scope_id}/sources/{source_id}
    let update = format!("PATCH /api/scopes/{}/sources/{}", ids.scope, ids.source);
    let source_params: [&dyn ToString; 2] = [&ids.scope, &ids.source];
    let route = "/api/scopes/{scope_id}/sources/{source_id}";
    cells.extend(bad_bodies(
        &update,
        M::PATCH,
        route,
        &source_params,
        &json!({"name": "renamed"}),
    ));
    for (kind, body, says) in [
        ("empty name", json!({"name": ""}), "name"),
        ("bad url", json!({"url": "javascript:alert(1)"}), "url"),
        ("config not an object", json!({"config": "x"}), "config"),
        ("unknown kind", json!({"kind": "soap"}), "soap"),
    ] {
        cells.push(
            cell(
                format!("{update}: {kind}"),
                M::PATCH,
                route,
                &source_params,
                400,
                says,
            )
            .json(body),
        );
    }
    // A bad body for a scope that does not exist: the body is refused
    // first, without looking the scope up.
    let absent = [&999_999 as &dyn ToString];
    cells.push(
        cell(
            "POST /api/scopes/999999/sources: empty name",
            M::POST,
            "/api/scopes/{scope_id}/sources",
            &absent,
            400,
            "name",
        )
        .json(json!({"name": "", "kind": "mcp", "url": "https://x.example.com"})),
    );
    cells
}

/// What a request may have cost, read from the service and from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    /// `db_connections_opened_total`.
    opened: u64,
    /// Builds (and failed builds) of request services that do I/O: every
    /// request service but `BearerToken`, which only reads a header.
    io_builds: u64,
    /// `pg_stat_database.sessions` of the service's database.
    sessions: i64,
}

/// Reads the server's statistics from the `postgres` database, so that
/// this session is not one of the test database's.
struct Server {
    client: tokio_postgres::Client,
    database: String,
}

impl Server {
    async fn connect(app: &TestApp) -> Server {
        let url = app.settings.database_url.clone().unwrap();
        let (base, database) = url.rsplit_once('/').unwrap();
        let (client, connection) =
            tokio_postgres::connect(&format!("{base}/postgres"), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        Server {
            client,
            database: database.to_owned(),
        }
    }

    /// `sessions` once every session of the service has ended: a backend
    /// reports its statistics as it exits, before it leaves
    /// `pg_stat_activity`, so waiting for the last one to leave (at most
    /// ten seconds) makes the count final.
    async fn sessions(&self) -> i64 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let open: i64 = self
                .client
                .query_one(
                    "select count(*) from pg_stat_activity where datname = $1",
                    &[&self.database],
                )
                .await
                .unwrap()
                .get(0);
            if open == 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{open} sessions on the service's database did not end"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.client
            .execute("select pg_stat_clear_snapshot()", &[])
            .await
            .unwrap();
        self.client
            .query_one(
                "select sessions from pg_stat_database where datname = $1",
                &[&self.database],
            )
            .await
            .unwrap()
            .get(0)
    }
}

async fn counts(app: &TestApp, server: &Server) -> Counts {
    let io_builds = app
        .registry
        .probe()
        .snapshot()
        .iter()
        .filter(|r| r.lifetime != LifetimeKind::App && r.name != "BearerToken")
        .map(|r| r.acquires + r.build_failures)
        .sum();
    Counts {
        opened: app.metrics.connections_opened(),
        io_builds,
        sessions: server.sessions().await,
    }
}

/// The ids of an organisation Ada administers, its org scope and a source
/// in it, made through the API.
async fn fixtures(app: &TestApp, token: &str, user: i64) -> Ids {
    let t = Some(token);
    let org = app
        .post("/api/orgs", &[], t, json!({"name": "Acme"}))
        .await
        .expect(201);
    let org = org.body["id"].as_i64().unwrap();
    let scopes = app.get("/api/scopes", &[], t).await.expect(200);
    let scope = scopes
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "org" && s["org_id"] == org)
        .expect("the org scope")["id"]
        .as_i64()
        .unwrap();
    let source = app
        .post(
            "/api/scopes/{scope_id}/sources",
            &[&scope],
            t,
            json!({"name": "petstore", "kind": "openapi", "url": "https://petstore.example.com"}),
        )
        .await
        .expect(201);
    Ids {
        user,
        org,
        scope,
        source: source.body["id"].as_i64().unwrap(),
    }
}

async fn send(app: &TestApp, token: &str, cell: &Cell) -> support::Reply {
    let params: Vec<&(dyn ToString + Sync)> = cell
        .params
        .iter()
        .map(|p| p as &(dyn ToString + Sync))
        .collect();
    app.raw(cell.method.clone(), cell.route, &params, |r| {
        let mut r = r.bearer_auth(token);
        if let Some(query) = cell.query {
            r = r.query(&query_pairs(query));
        }
        if let Some(content_type) = cell.content_type {
            r = r.header("content-type", content_type);
        }
        if let Some(body) = &cell.body {
            r = r.body(body.clone());
        }
        r
    })
    .await
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The token's shape is checked as the request is extracted, before its
/// body is read: no token is a 401 whatever the body. Whether a well-formed
/// token is known takes the database, so it is asked only once the input
/// has passed: an unknown token with a bad body is a 400.
#[tokio::test]
async fn the_token_is_checked_for_shape_first_and_looked_up_last() {
    let app = TestApp::start(Backend::PostgresPerRequest).await;
    app.user("Ada", "ada@example.com").await;
    let server = Server::connect(&app).await;
    let before = counts(&app, &server).await;
    let bad_body = |r: reqwest::RequestBuilder| {
        r.header("content-type", "application/json")
            .body("{\"name\": ")
    };
    let no_token = app
        .raw(Method::POST, "/api/users", &[], bad_body)
        .await
        .expect(401);
    assert_eq!(
        no_token.error(),
        "missing bearer token: send `Authorization: Bearer <token>`"
    );
    let unknown = app
        .raw(Method::POST, "/api/users", &[], |r| {
            bad_body(r.bearer_auth("pv_9_00ff"))
        })
        .await
        .expect(400);
    assert!(unknown.error().contains("JSON"), "{}", unknown.error());
    assert_eq!(
        counts(&app, &server).await,
        before,
        "neither opened a connection"
    );
    let unknown = app
        .post(
            "/api/users",
            &[],
            Some("pv_9_00ff"),
            json!({"name": "Grace", "email": "g@example.com"}),
        )
        .await
        .expect(401);
    assert_eq!(
        unknown.error(),
        "the bearer token is invalid or has been revoked"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_request_refused_for_bad_input_opens_no_connection_and_builds_nothing() {
    let app = TestApp::start(Backend::PostgresPerRequest).await;
    let (user, token) = app.user("Ada", "ada@example.com").await;
    let ids = fixtures(&app, &token, user).await;
    let server = Server::connect(&app).await;
    let cells = matrix(&ids);

    let mut wrong = Vec::new();
    let mut before = counts(&app, &server).await;
    for cell in &cells {
        let reply = send(&app, &token, cell).await;
        let after = counts(&app, &server).await;
        let error = reply.body["error"].as_str();
        if reply.status != cell.status {
            wrong.push(format!(
                "{}: answered {} {}, expected {}",
                cell.name, reply.status, reply.body, cell.status
            ));
        } else if !error.is_some_and(|e| e.contains(cell.error_says)) {
            wrong.push(format!(
                "{}: error {:?} does not say {:?}",
                cell.name, reply.body, cell.error_says
            ));
        }
        if after != before {
            wrong.push(format!(
                "{}: {} connections opened, {} I/O services built, {} PostgreSQL sessions",
                cell.name,
                after.opened - before.opened,
                after.io_builds - before.io_builds,
                after.sessions - before.sessions,
            ));
        }
        before = after;
    }

    // The control: a good request is counted by all three, so the zeros
    // above are measured, not missed.
    app.get("/api/users", &[], Some(&token)).await.expect(200);
    let after = counts(&app, &server).await;
    assert_eq!(
        (
            after.opened - before.opened,
            after.sessions - before.sessions
        ),
        (1, 1),
        "a good request opens one connection, seen by the service and the server"
    );
    assert!(
        after.io_builds > before.io_builds,
        "and builds its services"
    );

    assert!(
        wrong.is_empty(),
        "{} of {} cells went wrong:\n{}",
        wrong.len(),
        cells.len(),
        wrong.join("\n")
    );
    app.stop().await;
}
