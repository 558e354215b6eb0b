//! The example over HTTP on loopback, against a throwaway PostgreSQL, in
//! both modes: a write is committed before its 201, a failed one leaves
//! nothing, health opens no connection.

use provision_postgres::{Mode, PgConn, PgOptions, Postgres};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn serve(mode: Mode) -> (String, provision::Registry) {
    let cluster = throwaway_postgres::shared();
    let db = cluster.create_database().unwrap();
    let database = Postgres::new(&cluster.url(&db), PgOptions::default().mode(mode)).unwrap();
    let (router, registry) = example_postgres::app(database).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, registry)
}

async fn notes_in(mode: Mode) {
    let (base, registry) = serve(mode).await;
    let http = reqwest::Client::new();

    let health = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(registry.probe().acquires::<PgConn>(), 0);

    let created = http
        .post(format!("{base}/notes"))
        .body("buy milk")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(
        created.json::<Value>().await.unwrap(),
        json!({"id": 1, "body": "buy milk"})
    );

    let again = http
        .post(format!("{base}/notes"))
        .body("buy milk")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(again.json::<Value>().await.unwrap()["error"].is_string());

    let draft = http
        .post(format!("{base}/drafts/maybe"))
        .send()
        .await
        .unwrap();
    assert_eq!(draft.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let list = http.get(format!("{base}/notes")).send().await.unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    assert_eq!(
        list.json::<Value>().await.unwrap(),
        json!({"notes": [{"id": 1, "body": "buy milk"}]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_with_a_pool() {
    notes_in(Mode::Pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_with_a_connection_per_request() {
    notes_in(Mode::PerRequest).await;
}
