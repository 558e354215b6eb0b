//! Behind PgBouncer in transaction mode (no session state survives a
//! transaction, unknown startup parameters are refused), in both modes:
//! commits, rollbacks and the statement timeout still hold.

use std::time::{Duration, Instant};

use provision_postgres::{Mode, PgOptions};
use reqwest::StatusCode;

use crate::support::{Harness, error_of};

async fn behind_pgbouncer(mode: Mode, client_cut: bool) {
    let cluster = throwaway_postgres::shared();
    let bouncer = cluster
        .pgbouncer()
        .unwrap_or_else(|e| panic!("cannot start PgBouncer: {e}"));
    let direct = format!("127.0.0.1:{}", cluster.port());
    let pooled = format!("127.0.0.1:{}", bouncer.port());
    let h = Harness::start_with(
        mode,
        PgOptions::default().statement_timeout(Duration::from_millis(300)),
        |url| url.replace(&direct, &pooled),
    )
    .await;
    let http = reqwest::Client::new();

    let created = http.post(h.url("/items/ada")).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let failed = http.post(h.url("/items/grace/fail")).send().await.unwrap();
    assert_eq!(failed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(h.rows("items").await, 1);

    // The timeout travels with each transaction, not with a session, and a
    // cancel reaches the statement it was meant for: the next request's
    // statement is not cancelled in its place.
    let slow = http.get(h.url("/sleep/tx/30")).send().await.unwrap();
    assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
    error_of(slow).await;
    if client_cut {
        // Cut by the client: cancelled through the pooler, and the answer
        // does not wait for the server to finish the statement.
        let started = Instant::now();
        let slow = http.get(h.url("/sleep/conn/30")).send().await.unwrap();
        assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
        error_of(slow).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
    // The pooler is still up: nothing the cancel did took it down.
    let log = bouncer.log();
    assert!(!log.contains("FATAL"), "PgBouncer failed:\n{log}");

    let count = http.get(h.url("/count")).send().await.unwrap();
    assert_eq!(count.status(), StatusCode::OK);
    assert_eq!(count.text().await.unwrap(), "1");
    drop(bouncer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_pgbouncer_with_a_pool() {
    behind_pgbouncer(Mode::Pool, false).await;
}

/// A cut statement's cancel request travels through the pooler too. Sent
/// the way tokio-postgres sends it (closing the socket at once), it made
/// PgBouncer 1.18 exit about 4 runs in 5 here ("bad client state: 0"), and
/// the next request lost its connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_pgbouncer_with_a_pool_cuts_a_statement_and_serves_the_next_request() {
    behind_pgbouncer(Mode::Pool, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_pgbouncer_per_request() {
    behind_pgbouncer(Mode::PerRequest, true).await;
}
