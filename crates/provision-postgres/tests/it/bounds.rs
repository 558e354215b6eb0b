//! Bounded waits: a database that accepts TCP but never answers, and a
//! statement past the statement timeout, each answer 503 JSON within the
//! bound; a timed-out statement's connection is closed, never reused.

use std::time::{Duration, Instant};

use provision_postgres::{Mode, PgOptions};
use reqwest::StatusCode;
use tokio::net::TcpListener;

use crate::support::{Harness, error_of, eventually};

const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(500);
const STATEMENT_TIMEOUT: Duration = Duration::from_millis(300);
/// Scheduling slack on a loaded two-core machine.
const SLACK: Duration = Duration::from_millis(1500);

/// Accepts connections and holds them open without a word.
async fn silent_listener() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

async fn a_silent_database_is_a_503_within_the_bound(mode: Mode) {
    let silent = silent_listener().await;
    let cluster_port = throwaway_postgres::shared().port();
    let h = Harness::start_with(
        mode,
        PgOptions::default().acquire_timeout(ACQUIRE_TIMEOUT),
        |url| url.replace(&format!("127.0.0.1:{cluster_port}"), &silent.to_string()),
    )
    .await;
    let started = Instant::now();
    let response = reqwest::Client::new()
        .get(h.url("/count"))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    error_of(response).await;
    assert!(
        took >= ACQUIRE_TIMEOUT,
        "answered before the bound: {took:?}"
    );
    assert!(took < ACQUIRE_TIMEOUT + SLACK, "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_database_is_a_503_within_the_bound_with_a_pool() {
    a_silent_database_is_a_503_within_the_bound(Mode::Pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_database_is_a_503_within_the_bound_per_request() {
    a_silent_database_is_a_503_within_the_bound(Mode::PerRequest).await;
}

/// `path` runs `pg_sleep(30)`: far past the statement timeout, and far past
/// the bounded wait below, so only a cancelled statement ends in time.
async fn a_long_statement_is_a_503_and_its_connection_closed(mode: Mode, path: &str) {
    let h = Harness::start_with(
        mode,
        PgOptions::default().statement_timeout(STATEMENT_TIMEOUT),
        |url| url,
    )
    .await;
    let started = Instant::now();
    let response = reqwest::Client::new()
        .get(h.url(path))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        error_of(response).await,
        "the database took too long to answer; try again shortly"
    );
    assert!(took < STATEMENT_TIMEOUT + SLACK, "took {took:?}");
    // Closed, not returned to the pool; the statement is not still running.
    h.no_server_connections().await;
    if let Some(pool) = h.database.pool() {
        eventually("the pool to drop the connection", || async {
            pool.status().size == 0
        })
        .await;
    }
    // And the next request gets a working connection.
    let next = reqwest::Client::new()
        .get(h.url("/count"))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), StatusCode::OK);
    assert_eq!(next.text().await.unwrap(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_transaction_the_server_cuts_it_with_a_pool() {
    a_long_statement_is_a_503_and_its_connection_closed(Mode::Pool, "/sleep/tx/30").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_transaction_the_server_cuts_it_per_request() {
    a_long_statement_is_a_503_and_its_connection_closed(Mode::PerRequest, "/sleep/tx/30").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_a_transaction_the_client_cuts_it_with_a_pool() {
    a_long_statement_is_a_503_and_its_connection_closed(Mode::Pool, "/sleep/conn/30").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_a_transaction_the_client_cuts_it_per_request() {
    a_long_statement_is_a_503_and_its_connection_closed(Mode::PerRequest, "/sleep/conn/30").await;
}
