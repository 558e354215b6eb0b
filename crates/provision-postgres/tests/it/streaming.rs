//! A streaming answer: the transaction is committed before the first byte
//! leaves, the connection is held until the last byte, and a handle the
//! body keeps on the transaction never makes the commit be skipped (the
//! two ways axum-sqlx-tx goes wrong).

use provision_postgres::{Mode, PgConn, PgTx};
use reqwest::StatusCode;

use crate::support::{Harness, eventually};

async fn committed_before_the_first_byte(mode: Mode) {
    let h = Harness::start(mode).await;
    let mut response = reqwest::Client::new()
        .post(h.url("/items/ada/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let first = response.chunk().await.unwrap().expect("a first chunk");
    assert_eq!(&first[..], b"first\n");

    // The body is waiting for `proceed`, still holding `Dep<PgTx>` and
    // `Dep<PgConn>`: the row is already committed...
    assert_eq!(h.rows("items").await, 1);
    // ...and the connection is still the request's.
    assert_eq!(h.registry.probe().releases::<PgConn>(), 0);
    match mode {
        Mode::PerRequest => assert_eq!(h.server_connections().await, 1),
        Mode::Pool => {
            let status = h.database.pool().unwrap().status();
            assert_eq!((status.size, status.available), (1, 0));
        }
    }

    h.signals.proceed.notify_one();
    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    // The body read through the held connection; the settled transaction
    // refused to be used for more work.
    assert_eq!(String::from_utf8(rest).unwrap(), "items=1 tx=refused\n");

    eventually("the connection's release", || async {
        h.registry.probe().releases::<PgConn>() == 1
    })
    .await;
    assert_eq!(h.registry.probe().releases::<PgTx>(), 1);
    match mode {
        Mode::PerRequest => h.no_server_connections().await,
        Mode::Pool => {
            let status = h.database.pool().unwrap().status();
            assert_eq!((status.size, status.available), (1, 1));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_before_the_first_byte_with_a_pool() {
    committed_before_the_first_byte(Mode::Pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_before_the_first_byte_per_request() {
    committed_before_the_first_byte(Mode::PerRequest).await;
}
