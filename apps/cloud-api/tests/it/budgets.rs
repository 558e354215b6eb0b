//! Per-request budgets on a real PostgreSQL server, over HTTP: the list
//! routes' group cap holds 4M concurrent lists to M connections, counted by
//! the server, and answers the rest with the JSON 503; a handler that
//! builds a transient service in a loop gets the JSON 500 and releases
//! every connection it opened.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::support::{self, Backend, TestApp};
use axum::routing::get;
use cloud_api::services::{Conn, Db};
use provision::{Budget, BudgetLimit, Dep, Error, Exit, Lazy, Provide, Transient};
use serde_json::json;

/// The service's connections on the server right now.
async fn service_connections(observer: &tokio_postgres::Client, waiting_on_a_lock: bool) -> i64 {
    let sql = if waiting_on_a_lock {
        "select count(*) from pg_stat_activity where application_name = 'cloud-api' \
         and datname = current_database() and wait_event_type = 'Lock'"
    } else {
        "select count(*) from pg_stat_activity where application_name = 'cloud-api' \
         and datname = current_database()"
    };
    observer.query_one(sql, &[]).await.unwrap().get(0)
}

/// Polls (at most 20 s) until the server shows `count` service connections.
async fn until_connections(observer: &tokio_postgres::Client, waiting: bool, count: i64) {
    for _ in 0..2000 {
        if service_connections(observer, waiting).await == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the server never showed {count} service connections (waiting on a lock: {waiting})");
}

#[tokio::test]
async fn the_list_routes_hold_at_most_m_connections_under_4m_lists_and_refuse_the_rest_with_503() {
    const M: usize = 2;
    let (mut settings, keep) = support::settings(Backend::PostgresPerRequest);
    settings.list_connections = Some(M as u32);
    settings.acquire_timeout = Duration::from_millis(500); // the lists' budget: 1 s
    let app = Arc::new(TestApp::start_with(settings, keep, |s| s).await);
    let (_, token) = app.user("Ada", "ada@example.com").await;
    let t = Some(token.as_str());
    let org = app
        .post("/api/orgs", &[], t, json!({"name": "Acme"}))
        .await
        .expect(201);
    let scopes = app.get("/api/scopes", &[], t).await.expect(200);
    assert_eq!(scopes.body[0]["org_id"], org.body["id"]);
    let scope = scopes.body[0]["id"].as_i64().unwrap();
    let observer = Arc::new(app.observer().await);
    let probe = app.registry.probe();
    let built_before = probe.acquires::<Conn>();

    // Every list of sources blocks on their table once it holds its
    // connection (authentication, which counts toward the acquire budget,
    // reads other tables), so the first M hold theirs until the lock goes.
    let locker = app.observer().await;
    locker
        .batch_execute("begin; lock table sources in access exclusive mode")
        .await
        .unwrap();
    let peak = Arc::new(AtomicI64::new(0));
    let sampling = tokio::spawn({
        let (observer, peak) = (observer.clone(), peak.clone());
        async move {
            loop {
                peak.fetch_max(
                    service_connections(&observer, false).await,
                    Ordering::SeqCst,
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    let mut lists = tokio::task::JoinSet::new();
    for _ in 0..4 * M {
        let (app, token) = (app.clone(), token.clone());
        lists.spawn(async move {
            app.get("/api/scopes/{scope_id}/sources", &[&scope], Some(&token))
                .await
        });
    }
    until_connections(&observer, true, M as i64).await;

    // The 3M without a slot are refused once their budget runs out, while
    // the M still hold theirs.
    let mut refused = Vec::new();
    for _ in 0..3 * M {
        refused.push(lists.join_next().await.unwrap().unwrap());
    }
    assert_eq!(service_connections(&observer, true).await, M as i64);
    for reply in &refused {
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert_eq!(
            reply.error(),
            format!(
                "budget exceeded: no `Conn` came free within this request's acquire budget of 1s \
                 (max_held: group `lists` holds at most {M}); try again shortly"
            )
        );
    }

    locker.batch_execute("rollback").await.unwrap();
    while let Some(reply) = lists.join_next().await {
        reply.unwrap().expect(200);
    }
    sampling.abort();
    let peak = peak.load(Ordering::SeqCst);
    assert_eq!(
        peak, M as i64,
        "the server saw M connections at most (and at least)"
    );
    assert_eq!(
        app.metrics.budget_refusals("Conn", BudgetLimit::MaxHeld),
        3 * M as u64
    );
    assert_eq!(probe.report::<Conn>().budget_exceeded, 3 * M as u64);
    assert_eq!(
        probe.acquires::<Conn>() - built_before,
        M as u64,
        "the refused lists built nothing"
    );
    assert_eq!(probe.held::<Conn>(), 0);
    // Slots are free again: a list now gets one at once.
    app.get("/api/users", &[], Some(&token)).await.expect(200);
    until_connections(&observer, false, 0).await;
    Arc::into_inner(app).unwrap().stop().await;
}

#[tokio::test]
async fn per_request_mode_does_not_cap_the_lists_unless_told_to() {
    // There is no pool to keep connections for, so `--pool-size` (here 2,
    // which would make the pool-mode default cap 1) must not hold the lists
    // back: all three hold a connection at once.
    const LISTS: i64 = 3;
    let (mut settings, keep) = support::settings(Backend::PostgresPerRequest);
    settings.pool_size = 2;
    assert_eq!(settings.list_connections, None, "the default, not a flag");
    let app = Arc::new(TestApp::start_with(settings, keep, |s| s).await);
    let (_, token) = app.user("Ada", "ada@example.com").await;
    let t = Some(token.as_str());
    app.post("/api/orgs", &[], t, json!({"name": "Acme"}))
        .await
        .expect(201);
    let scopes = app.get("/api/scopes", &[], t).await.expect(200);
    let scope = scopes.body[0]["id"].as_i64().unwrap();
    let observer = app.observer().await;

    let locker = app.observer().await;
    locker
        .batch_execute("begin; lock table sources in access exclusive mode")
        .await
        .unwrap();
    let mut lists = tokio::task::JoinSet::new();
    for _ in 0..LISTS {
        let (app, token) = (app.clone(), token.clone());
        lists.spawn(async move {
            app.get("/api/scopes/{scope_id}/sources", &[&scope], Some(&token))
                .await
        });
    }
    until_connections(&observer, true, LISTS).await;

    locker.batch_execute("rollback").await.unwrap();
    while let Some(reply) = lists.join_next().await {
        reply.unwrap().expect(200);
    }
    assert_eq!(app.metrics.budget_refusals("Conn", BudgetLimit::MaxHeld), 0);
    until_connections(&observer, false, 0).await;
    Arc::into_inner(app).unwrap().stop().await;
}

/// A test-only transient service: a database connection per ask.
struct Statement(Conn);
impl Provide for Statement {
    type Lifetime = Transient;
    type Deps = (Db,);
    async fn build((db,): (Dep<Db>,)) -> Result<Self, Error> {
        let connection = db.database().acquire().await.map_err(Error::from_source)?;
        Ok(Statement(Conn::from_connection(connection)))
    }
    async fn release(self, exit: Exit) -> Result<(), Error> {
        Provide::release(self.0, exit).await
    }
}

/// The programming error: a connection per item, in a loop.
async fn open_in_a_loop(statement: Lazy<Statement>) -> Result<String, Error> {
    let mut open = Vec::new();
    loop {
        open.push(statement.get().await?);
    }
}

#[tokio::test]
async fn a_handler_building_a_transient_in_a_loop_gets_a_500_and_releases_what_it_built() {
    let (settings, keep) = support::settings(Backend::PostgresPerRequest);
    let app = TestApp::start_with_routes(
        settings,
        keep,
        |s| s,
        |_| {
            axum::Router::new().route(
                "/test/loop",
                get(open_in_a_loop).route_layer(Budget::new().max_builds::<Statement>(3)),
            )
        },
    )
    .await;
    let observer = app.observer().await;

    let reply = app.get("/test/loop", &[], None).await.expect(500);

    assert_eq!(
        reply.error(),
        "budget exceeded: `Statement` may be built at most 3 times in one request \
         (max_builds), and this request asked for more; is a handler building it in a loop?"
    );
    let probe = app.registry.probe();
    let report = probe.report::<Statement>();
    assert_eq!((report.acquires, report.releases), (3, 3));
    assert_eq!(report.budget_exceeded, 1);
    assert_eq!(
        support::releases(&app.metrics, "Statement", "failure"),
        3,
        "released with the request's exit"
    );
    assert_eq!(
        app.metrics
            .budget_refusals("Statement", BudgetLimit::MaxBuilds),
        1
    );
    until_connections(&observer, false, 0).await;
    app.stop().await;
}
