//! Connection accounting on a real PostgreSQL server, counted by the server
//! (`pg_stat_activity`) and by the service's own metrics: after 500 mixed
//! requests in per-request mode no connection is left; in pool mode the
//! service never holds more than the pool size.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::support::{Backend, TestApp};
use cloud_api::services::Conn;
use reqwest::Method;
use serde_json::json;

async fn service_connections(observer: &tokio_postgres::Client) -> i64 {
    observer
        .query_one(
            "select count(*) from pg_stat_activity where application_name = 'cloud-api' and datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// The service's connections once the server has caught up: a backend
/// outlives its client's Terminate by the few milliseconds the server takes
/// to notice and exit (and a closed pool's connections end in their own
/// tasks), so this waits up to 5 s for the count to reach zero.
async fn service_connections_settled(observer: &tokio_postgres::Client) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let count = service_connections(observer).await;
        if count == 0 || tokio::time::Instant::now() > deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// 500 requests, 16 at a time: health, reads, writes, a 404, a 409, a bad
/// token and a missing token. Returns how many should have opened a
/// connection (all but health and the missing token).
async fn mixed_load(app: &Arc<TestApp>, token: &str) -> usize {
    let kinds = 8;
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let app = app.clone();
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut needed_connection = 0;
            let mut i = worker;
            while i < 500 {
                let t = Some(token.as_str());
                match i % kinds {
                    0 => {
                        app.get("/api/health", &[], None).await.expect(200);
                    }
                    1 => {
                        app.get("/api/users?limit=10", &[], t).await.expect(200);
                        needed_connection += 1;
                    }
                    2 => {
                        app.get("/api/users/{id}", &[&1], t).await.expect(200);
                        needed_connection += 1;
                    }
                    3 => {
                        app.post(
                            "/api/users",
                            &[],
                            t,
                            json!({"name": "U", "email": format!("u{i}@example.com")}),
                        )
                        .await
                        .expect(201);
                        needed_connection += 1;
                    }
                    4 => {
                        app.get("/api/users/{id}", &[&1_000_000], t)
                            .await
                            .expect(404);
                        needed_connection += 1;
                    }
                    5 => {
                        app.post(
                            "/api/users",
                            &[],
                            t,
                            json!({"name": "A", "email": "ada@example.com"}),
                        )
                        .await
                        .expect(409);
                        needed_connection += 1;
                    }
                    6 => {
                        app.get("/api/users", &[], Some("pv_9_00ff"))
                            .await
                            .expect(401);
                        needed_connection += 1;
                    }
                    _ => {
                        app.call(Method::GET, "/api/users", &[], None, None)
                            .await
                            .expect(401);
                    }
                }
                i += 16;
            }
            needed_connection
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total
}

#[tokio::test]
async fn per_request_mode_leaves_no_connection_behind_after_500_mixed_requests() {
    let app = Arc::new(TestApp::start(Backend::PostgresPerRequest).await);
    let (_, token) = app.user("Ada", "ada@example.com").await;
    let observer = app.observer().await;
    assert_eq!(service_connections(&observer).await, 0);

    let needed = mixed_load(&app, &token).await;

    let probe = app.registry.probe();
    assert_eq!(probe.acquires::<Conn>(), needed as u64);
    assert_eq!(probe.releases::<Conn>(), needed as u64);
    assert_eq!(probe.held::<Conn>(), 0);
    assert_eq!(
        app.metrics.connections_opened(),
        needed as u64,
        "one connection per request that needed one"
    );
    assert_eq!(
        service_connections_settled(&observer).await,
        0,
        "no connection left on the server"
    );
    Arc::into_inner(app).unwrap().stop().await;
}

#[tokio::test]
async fn pool_mode_never_holds_more_than_the_pool_size() {
    let app = Arc::new(TestApp::start(Backend::PostgresPool).await);
    let pool_size = i64::from(app.settings.pool_size);
    let (_, token) = app.user("Ada", "ada@example.com").await;
    let observer = Arc::new(app.observer().await);
    let peak = Arc::new(AtomicI64::new(0));
    let sampling = tokio::spawn({
        let (observer, peak) = (observer.clone(), peak.clone());
        async move {
            loop {
                peak.fetch_max(service_connections(&observer).await, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });

    let needed = mixed_load(&app, &token).await;
    sampling.abort();

    let peak = peak.load(Ordering::SeqCst);
    assert!(peak >= 1, "the sampler saw the pool in use");
    assert!(
        peak <= pool_size,
        "peak {peak} connections, pool size {pool_size}"
    );
    let probe = app.registry.probe();
    assert_eq!(
        (probe.acquires::<Conn>(), probe.releases::<Conn>()),
        (needed as u64, needed as u64)
    );
    assert!(service_connections(&observer).await <= pool_size);
    Arc::into_inner(app).unwrap().stop().await;
    assert_eq!(
        service_connections_settled(&observer).await,
        0,
        "shutdown closed the pool"
    );
}
