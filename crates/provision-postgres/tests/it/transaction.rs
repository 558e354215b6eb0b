//! `PgTx`: committed on success before the answer, rolled back on an error
//! status, a panic and a client that leaves; a failed commit becomes the
//! answer and keeps nothing.

use provision_postgres::{Mode, PgTx};
use reqwest::StatusCode;

use crate::support::{Harness, error_of, eventually};

async fn commits_on_success(mode: Mode) {
    let h = Harness::start(mode).await;
    let response = reqwest::Client::new()
        .post(h.url("/items/ada"))
        .send()
        .await
        .unwrap();
    // The row is visible to another connection as soon as the answer is.
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(h.rows("items").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_on_success_with_a_pool() {
    commits_on_success(Mode::Pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_on_success_per_request() {
    commits_on_success(Mode::PerRequest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolls_back_on_an_error_status() {
    let h = Harness::start(Mode::Pool).await;
    let response = reqwest::Client::new()
        .post(h.url("/items/ada/fail"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(h.rows("items").await, 0);
    // The connection went back to the pool clean: the next request commits
    // only its own row.
    let next = reqwest::Client::new()
        .post(h.url("/items/grace"))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), StatusCode::CREATED);
    assert_eq!(h.rows("items").await, 1);
}

async fn rolls_back_on_panic(mode: Mode) {
    let h = Harness::start(mode).await;
    let response = reqwest::Client::new()
        .post(h.url("/items/ada/panic"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    error_of(response).await;
    eventually("the transaction's release", || async {
        h.registry.probe().releases::<PgTx>() == 1
    })
    .await;
    assert_eq!(h.rows("items").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolls_back_on_panic_with_a_pool() {
    rolls_back_on_panic(Mode::Pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolls_back_on_panic_per_request() {
    rolls_back_on_panic(Mode::PerRequest).await;
}

async fn rolls_back_when_the_client_leaves(mode: Mode) {
    let h = Harness::start(mode).await;
    let url = h.url("/items/ada/hang");
    let request = tokio::spawn(async move { reqwest::Client::new().post(url).send().await });
    // The handler has written inside its transaction, and hangs.
    h.signals.reached.notified().await;
    request.abort();
    let _ = request.await;
    eventually("the transaction's release", || async {
        h.registry.probe().releases::<PgTx>() == 1
    })
    .await;
    assert_eq!(h.rows("items").await, 0);
    if mode == Mode::PerRequest {
        h.no_server_connections().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolls_back_when_the_client_leaves_with_a_pool() {
    rolls_back_when_the_client_leaves(Mode::Pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolls_back_when_the_client_leaves_per_request() {
    rolls_back_when_the_client_leaves(Mode::PerRequest).await;
}

async fn a_failed_commit_is_the_answer(mode: Mode) {
    let h = Harness::start(mode).await;
    let response = reqwest::Client::new()
        .post(h.url("/orphans/1"))
        .send()
        .await
        .unwrap();
    // The handler said 201; the deferred foreign key refused the COMMIT.
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(
        error_of(response).await,
        "the change conflicts with stored data"
    );
    assert_eq!(h.rows("children").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_is_the_answer_with_a_pool() {
    a_failed_commit_is_the_answer(Mode::Pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_is_the_answer_per_request() {
    a_failed_commit_is_the_answer(Mode::PerRequest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_statement_answers_with_its_status_and_keeps_nothing() {
    let h = Harness::start(Mode::Pool).await;
    let http = reqwest::Client::new();
    assert_eq!(
        http.post(h.url("/items/ada"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    let duplicate = http.post(h.url("/items/ada")).send().await.unwrap();
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    error_of(duplicate).await;
    assert_eq!(h.rows("items").await, 1);
}
