//! What the statement deadline adds to a statement's future: its timer and
//! a few words, never a second copy of the statement.
//!
//! A future is copied whole each time it moves (into a box, into the
//! future that awaits it), and a request's statements pass through several
//! layers on their way to a handler, so a wrapper that held the statement
//! twice made every request copy and touch kilobytes more than it needs.
//! Each statement is also run, so the wrapper under test still works.

use std::mem::{size_of, size_of_val};

use provision_postgres::{Connected, PgConnection, PgOptions};
use tokio_postgres::NoTls;

/// A connection of its own to a fresh database, with the default options:
/// the tokio timer and the default statement timeout, so every statement
/// below runs under the deadline.
async fn connection() -> PgConnection {
    let cluster = throwaway_postgres::shared();
    let db = cluster.create_database().expect("a fresh database");
    let (client, connection) = tokio_postgres::connect(&cluster.url(&db), NoTls)
        .await
        .expect("a connection");
    let driven = tokio::spawn(connection);
    let ended = async move {
        let _ = driven.await;
    };
    PgConnection::from_connected(Connected::new(client, ended), &PgOptions::default())
}

/// Fails unless `bounded` (`what` under the deadline) is at most `alone`
/// (`what` by itself) plus what the deadline may add: the tokio sleep it
/// arms when the work has to wait, and a few words of its own.
fn assert_adds_only_the_timer(what: &str, alone: usize, bounded: usize) {
    let allowance = size_of::<tokio::time::Sleep>() + 128;
    assert!(
        bounded <= alone + allowance,
        "{what}'s future is {alone} bytes, under the deadline {bounded} \
         (allowed: {allowance} more)"
    );
}

#[tokio::test]
async fn guard_adds_the_timer_not_a_second_copy_of_the_statement() {
    let conn = connection().await;
    let statement = conn.client().query_typed("SELECT 1::int4", &[]);
    let alone = size_of_val(&statement);
    let guarded = conn.guard(statement);
    assert_adds_only_the_timer("the statement", alone, size_of_val(&guarded));
    let rows = guarded.await.expect("SELECT 1");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i32>(0), 1);
}

#[tokio::test]
async fn deadline_adds_the_timer_not_a_second_copy_of_the_work() {
    let conn = connection().await;
    // Work of the caller's own, as an application's store runs several
    // statements and its own checks under one deadline.
    let client = conn.client();
    let work = async move {
        let first = client.query_typed("SELECT 1::int4", &[]).await?;
        let second = client.query_typed("SELECT 2::int4", &[]).await?;
        Ok::<_, tokio_postgres::Error>(first[0].get::<_, i32>(0) + second[0].get::<_, i32>(0))
    };
    let alone = size_of_val(&work);
    let bounded_work = conn.deadline(work);
    assert_adds_only_the_timer("the work", alone, size_of_val(&bounded_work));
    let sum = bounded_work
        .await
        .expect("within the deadline")
        .expect("both statements");
    assert_eq!(sum, 3);
}
