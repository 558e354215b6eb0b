//! The token-expiry job (the Worker's cron job, run natively on a timer) on
//! a real PostgreSQL server: it commits in a scope of its own, a transient
//! failure (its statement cancelled by the server) is retried in a fresh
//! scope, and a run in progress at shutdown is cut, rolled back and
//! released with `Exit::Shutdown`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::support::{self, Backend, TestApp};
use cloud_api::jobs::expire_tokens::{NAME, expire_tokens};
use cloud_api::jobs::periodic::{Retry, run_with_retry, spawn_periodic};
use cloud_api::services::Tx;
use tokio::sync::{Notify, oneshot};

/// Two users with a token each; the first one's is made 100 days old.
/// Returns the tokens (old, fresh).
async fn old_and_fresh_token(app: &TestApp, db: &tokio_postgres::Client) -> (String, String) {
    let (old_user, old) = app.user("Old", "old@example.com").await;
    let (_, fresh) = app.user("Fresh", "fresh@example.com").await;
    db.execute(
        "UPDATE api_tokens SET created_at = now() - interval '100 days' WHERE user_id = $1",
        &[&old_user],
    )
    .await
    .unwrap();
    (old, fresh)
}

async fn tokens(db: &tokio_postgres::Client) -> i64 {
    db.query_one("SELECT count(*) FROM api_tokens", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn the_expiry_job_commits_its_delete_in_a_scope_of_its_own() {
    let app = TestApp::start(Backend::PostgresPool).await;
    let db = app.observer().await;
    let (old, fresh) = old_and_fresh_token(&app, &db).await;

    let deleted = app.registry.run_scoped(NAME, expire_tokens(90)).await;
    assert_eq!(deleted.unwrap(), 1);
    // Committed: another connection sees it.
    assert_eq!(tokens(&db).await, 1);
    app.get("/api/users", &[], Some(&old)).await.expect(401);
    app.get("/api/users", &[], Some(&fresh)).await.expect(200);
    assert_eq!(support::tx_releases(&app.metrics, "success"), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_transient_failure_is_retried_in_a_fresh_scope_and_then_commits() {
    let app = TestApp::start(Backend::PostgresPool).await;
    let db = app.observer().await;
    let (_old, _fresh) = old_and_fresh_token(&app, &db).await;

    // Hold the table so that the job's DELETE waits on the lock.
    let (mut locker, connection) = tokio_postgres::connect(
        app.settings.database_url.as_deref().unwrap(),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let attempts = Arc::new(AtomicU32::new(0));
    let job = tokio::spawn({
        let registry = app.registry.clone();
        let attempts = attempts.clone();
        let retry = Retry {
            attempts: 3,
            backoff: Duration::from_millis(10),
        };
        async move {
            run_with_retry(&registry, NAME, retry, || {
                attempts.fetch_add(1, Ordering::SeqCst);
                expire_tokens(90)
            })
            .await
        }
    });

    // The first attempt's DELETE is waiting on the lock: the server cancels
    // it (57014, a transient failure), then the lock goes.
    let pid: i32 = loop {
        let row = db
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'cloud-api' \
                 AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM api_tokens%'",
                &[],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            break row.get(0);
        }
        tokio::task::yield_now().await;
    };
    let cancelled: bool = db
        .query_one("SELECT pg_cancel_backend($1)", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(cancelled);
    lock.commit().await.unwrap();

    let deleted = tokio::time::timeout(Duration::from_secs(30), job)
        .await
        .expect("the retry commits")
        .unwrap();
    assert_eq!(deleted.unwrap(), 1);
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "one failure, one retry");
    assert_eq!(tokens(&db).await, 1);
    // The failed attempt's transaction was released with its failure, the
    // retry's with success: two scopes.
    assert_eq!(support::tx_releases(&app.metrics, "failure"), 1);
    assert_eq!(support::tx_releases(&app.metrics, "success"), 1);
    assert_eq!(app.registry.probe().releases::<Tx>(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_run_in_progress_at_shutdown_is_cut_rolled_back_and_released() {
    let app = TestApp::start(Backend::PostgresPool).await;
    let db = app.observer().await;
    let (_old, _fresh) = old_and_fresh_token(&app, &db).await;

    // The run deletes, then waits (its transaction open) for a signal that
    // never comes.
    let (deleted, has_deleted) = oneshot::channel::<u64>();
    let deleted = Arc::new(std::sync::Mutex::new(Some(deleted)));
    let never = Arc::new(Notify::new());
    let jobs = spawn_periodic(
        app.registry.clone(),
        NAME,
        Duration::from_millis(1),
        Retry::default(),
        move || {
            let deleted = deleted.lock().unwrap().take();
            let never = never.clone();
            async move {
                let n = expire_tokens(90).await?;
                if let Some(deleted) = deleted {
                    let _ = deleted.send(n);
                }
                never.notified().await;
                Ok(n)
            }
        },
    );
    assert_eq!(has_deleted.await.unwrap(), 1);

    // The server's shutdown: drains, then shuts the registry down, which
    // cuts the run.
    let (registry, metrics) = (app.registry.clone(), app.metrics.clone());
    tokio::time::timeout(Duration::from_secs(30), app.stop())
        .await
        .expect("shutdown does not wait for the job");
    tokio::time::timeout(Duration::from_secs(30), jobs)
        .await
        .expect("the job loop ends at shutdown")
        .unwrap();
    assert_eq!(tokens(&db).await, 2, "the cut run's delete was rolled back");
    assert_eq!(support::tx_releases(&metrics, "shutdown"), 1);
    assert_eq!(registry.probe().acquires::<Tx>(), 1);
    assert_eq!(registry.probe().releases::<Tx>(), 1);
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn the_expiry_job_commits_on_sqlite_too() {
    let app = TestApp::start(Backend::Sqlite).await;
    let (old_user, old) = app.user("Old", "old@example.com").await;
    let (_, fresh) = app.user("Fresh", "fresh@example.com").await;
    let db = rusqlite::Connection::open(app.settings.sqlite_path()).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute(
        "UPDATE api_tokens SET created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-100 days') \
         WHERE user_id = ?1",
        [old_user],
    )
    .unwrap();

    let deleted = app.registry.run_scoped(NAME, expire_tokens(90)).await;
    assert_eq!(deleted.unwrap(), 1);
    let left: i64 = db
        .query_row("SELECT count(*) FROM api_tokens", [], |row| row.get(0))
        .unwrap();
    assert_eq!(left, 1);
    app.get("/api/users", &[], Some(&old)).await.expect(401);
    app.get("/api/users", &[], Some(&fresh)).await.expect(200);
    app.stop().await;
}
