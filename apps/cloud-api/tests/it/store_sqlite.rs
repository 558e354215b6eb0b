//! What only SQLite's store has: a file, WAL mode and the busy timeout (the
//! store contract runs on it from `store_contract.rs`).

use std::time::{Duration, Instant};

use crate::support::{Backend, store_db};
use cloud_api::domain::NewUser;
use cloud_api::domain::token::hash_secret;
use cloud_api::store::{Database, StoreError};

#[tokio::test]
async fn open_creates_the_directory_and_uses_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/data.db");
    let db = Database::open_sqlite(&path).unwrap();
    assert!(path.is_file());
    let raw = rusqlite::Connection::open(&path).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // Reopening an existing, migrated file is fine and keeps the data.
    let c = db.acquire().await.unwrap();
    let ada = c
        .create_user(&NewUser {
            name: "Ada".into(),
            email: "ada@example.com".into(),
        })
        .await
        .unwrap();
    c.close().await;
    let reopened = Database::open_sqlite(&path).unwrap();
    let c = reopened.acquire().await.unwrap();
    assert_eq!(c.get_user(ada.id).await.unwrap(), ada);
    c.close().await;
}

#[tokio::test]
async fn connections_enforce_foreign_keys() {
    let test_db = store_db(Backend::Sqlite).await;
    let c = test_db.db.acquire().await.unwrap();
    // Without `PRAGMA foreign_keys = ON` this insert would succeed.
    assert_eq!(c.create_token(77).await.unwrap_err(), StoreError::NotFound);
    c.close().await;
}

#[tokio::test]
async fn an_in_memory_database_is_refused() {
    let err = Database::open_sqlite(":memory:").unwrap_err();
    assert!(
        matches!(err, StoreError::Internal(ref m) if m.contains("WAL")),
        "{err:?}"
    );
}

#[tokio::test]
async fn only_the_hash_of_a_token_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let db = Database::open_sqlite(&path).unwrap();
    let c = db.acquire().await.unwrap();
    let ada = c
        .create_user(&NewUser {
            name: "Ada".into(),
            email: "ada@example.com".into(),
        })
        .await
        .unwrap();
    let issued = c.create_token(ada.id).await.unwrap();
    c.close().await;
    let secret = issued.token.rsplit('_').next().unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    let stored: String = raw
        .query_row(
            "SELECT hash FROM api_tokens WHERE id = ?1",
            [issued.id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, hash_secret(secret));
    assert!(!stored.contains(secret));
}

#[tokio::test]
async fn a_second_writer_waits_for_the_first() {
    let test_db = store_db(Backend::Sqlite).await;
    let db = test_db.db.clone();

    let Database::Sqlite { pool } = &test_db.db else {
        panic!("a SQLite database")
    };
    let first = db.acquire().await.unwrap();
    first.begin().await.unwrap();
    first
        .create_user(&NewUser {
            name: "First".into(),
            email: "first@example.com".into(),
        })
        .await
        .unwrap();

    let second = tokio::spawn(async move {
        let c = db.acquire().await.unwrap();
        let result = c
            .create_user(&NewUser {
                name: "Second".into(),
                email: "second@example.com".into(),
            })
            .await;
        c.close().await;
        result
    });
    // SQLite shows no waiters; the pool counts a writer that found the
    // lock held and waits (its busy handler's first call).
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.lock_waits() == 0 {
        assert!(
            Instant::now() < deadline,
            "the second writer never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(pool.lock_waits(), 1);
    assert!(!second.is_finished(), "the second writer should be waiting");
    first.commit().await.unwrap();
    first.close().await;
    let second = second.await.unwrap().unwrap();
    assert_eq!(second.id, 2);
}

#[tokio::test]
async fn a_second_writer_gives_up_after_the_busy_timeout() {
    let test_db = store_db(Backend::Sqlite).await;
    let db = test_db.db.clone();
    let first = db.acquire().await.unwrap();
    first.begin().await.unwrap();

    let second = db.acquire().await.unwrap();
    let started = Instant::now();
    let refused = second
        .create_user(&NewUser {
            name: "Second".into(),
            email: "second@example.com".into(),
        })
        .await;
    let waited = started.elapsed();

    match refused {
        Err(StoreError::Unavailable(reason)) => {
            assert_eq!(reason.to_string(), "the database is busy, try again")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // The busy timeout is 5 s; the last sleep is cut to end on it.
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "gave up after {waited:?}"
    );
    second.close().await;
    first.rollback().await.unwrap();
    first.close().await;
}
