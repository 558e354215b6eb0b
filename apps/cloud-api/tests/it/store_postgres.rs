//! What only PostgreSQL's store has, in both modes (pool and per-request):
//! connection lifecycles, error mapping of a real server, row locks (the
//! store contract runs on it from `store_contract.rs`).

use std::time::{Duration, Instant};

use cloud_api::domain::token::hash_secret;
use cloud_api::domain::{NewOrganisation, NewUser, Role};
use cloud_api::store::{Connection, Database, PostgresMode, StoreError};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A fresh database on the shared throwaway cluster, migrated.
async fn database(mode: PostgresMode, pool_size: usize) -> (Database, String) {
    let cluster = throwaway_postgres::shared();
    let name = cluster.create_database().unwrap();
    let db =
        Database::connect_postgres(&cluster.url(&name), mode, pool_size, TIMEOUT, TIMEOUT).unwrap();
    db.migrate().await.unwrap();
    (db, name)
}

fn new_user(n: u32) -> NewUser {
    NewUser {
        name: format!("User {n}"),
        email: format!("user{n}@example.com"),
    }
}

/// Backends connected to `db`, other than the asking session.
fn sessions(db: &str) -> i64 {
    let out = throwaway_postgres::shared()
        .psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"
            ),
        )
        .unwrap();
    out.trim().parse().unwrap()
}

/// Sessions of `db` blocked on a lock another transaction holds.
fn lock_waiters(db: &str) -> i64 {
    let out = throwaway_postgres::shared()
        .psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND wait_event_type = 'Lock'"
            ),
        )
        .unwrap();
    out.trim().parse().unwrap()
}

async fn backend_pid(c: &Connection) -> i32 {
    let client = c.postgres_client().expect("a Postgres connection");
    let row = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap();
    row.get(0)
}

async fn wait_for_sessions(db: &str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while sessions(db) != expected {
        assert!(
            Instant::now() < deadline,
            "{db}: expected {expected} sessions, have {}",
            sessions(db)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_users_table_matches_the_contract() {
    let (_db, name) = database(PostgresMode::Pool, 1).await;
    let out = throwaway_postgres::shared()
        .psql(
            &name,
            "SELECT column_name, data_type, is_nullable, coalesce(column_default, '') \
             FROM information_schema.columns WHERE table_name = 'users' ORDER BY ordinal_position",
        )
        .unwrap();
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 5, "{out}");
    assert!(rows[0].starts_with("id|bigint|NO|nextval("), "{}", rows[0]);
    assert_eq!(rows[1], "name|text|NO|");
    assert_eq!(rows[2], "email|text|NO|");
    assert_eq!(rows[3], "created_at|timestamp with time zone|NO|now()");
    // Who created the account through the API (they may see it); NULL
    // from the CLI.
    assert_eq!(rows[4], "created_by|bigint|YES|");
}

#[tokio::test]
async fn per_request_close_leaves_no_session_behind() {
    let (db, name) = database(PostgresMode::PerRequest, 0).await;
    wait_for_sessions(&name, 0).await;
    let a = db.acquire().await.unwrap();
    let b = db.acquire().await.unwrap();
    a.ping().await.unwrap();
    b.ping().await.unwrap();
    assert_eq!(sessions(&name), 2);
    a.close().await;
    wait_for_sessions(&name, 1).await;
    b.close().await;
    wait_for_sessions(&name, 0).await;
}

#[tokio::test]
async fn pooled_connections_are_reused() {
    let (db, name) = database(PostgresMode::Pool, 2).await;
    let c = db.acquire().await.unwrap();
    let first = backend_pid(&c).await;
    c.close().await;
    let c = db.acquire().await.unwrap();
    assert_eq!(backend_pid(&c).await, first);
    c.close().await;
    assert_eq!(sessions(&name), 1);
}

#[tokio::test]
async fn a_pooled_connection_dropped_in_a_transaction_is_discarded() {
    let (db, _name) = database(PostgresMode::Pool, 1).await;
    let pool = db.postgres().and_then(|pg| pg.pool()).expect("a pool");
    let c = db.acquire().await.unwrap();
    c.begin().await.unwrap();
    c.create_user(&new_user(1)).await.unwrap();
    drop(c);
    assert_eq!(pool.status().size, 0, "not returned to the pool");
    // Dropped outside a transaction, it goes back.
    let c = db.acquire().await.unwrap();
    c.create_user(&new_user(2)).await.unwrap();
    drop(c);
    assert_eq!(pool.status().size, 1);
}

#[tokio::test]
async fn pool_exhaustion_is_unavailable_after_the_timeout() {
    let cluster = throwaway_postgres::shared();
    let name = cluster.create_database().unwrap();
    let timeout = Duration::from_millis(200);
    let db =
        Database::connect_postgres(&cluster.url(&name), PostgresMode::Pool, 1, timeout, timeout)
            .unwrap();
    let held = db.acquire().await.unwrap();
    let started = Instant::now();
    let err = db.acquire().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() >= timeout);
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(held);
    db.acquire().await.unwrap().ping().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_in_both_modes() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres:hunter2@127.0.0.1:{port}/nowhere");
    for mode in [PostgresMode::Pool, PostgresMode::PerRequest] {
        let db = Database::connect_postgres(
            &url,
            mode,
            2,
            Duration::from_secs(2),
            Duration::from_secs(2),
        )
        .unwrap();
        let err = db.acquire().await.unwrap_err();
        match &err {
            StoreError::Unavailable(message) => {
                assert!(
                    !message.contains("hunter2") && !message.contains("nowhere"),
                    "{message}"
                )
            }
            other => panic!("{mode:?}: expected Unavailable, got {other:?}"),
        }
        assert!(matches!(
            db.migrate().await,
            Err(StoreError::Unavailable(_))
        ));
    }
}

#[tokio::test]
async fn a_bad_url_is_invalid_without_echoing_it() {
    let err = Database::connect_postgres(
        "postgres://user:s3cret@host:notaport/db",
        PostgresMode::Pool,
        1,
        TIMEOUT,
        TIMEOUT,
    )
    .unwrap_err();
    match err {
        StoreError::Invalid(message) => assert!(!message.contains("s3cret"), "{message}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!("pooled".parse::<PostgresMode>().is_err());
    assert_eq!(
        "per-request".parse::<PostgresMode>().unwrap(),
        PostgresMode::PerRequest
    );
}

#[tokio::test]
async fn a_terminated_backend_is_unavailable() {
    for mode in [PostgresMode::Pool, PostgresMode::PerRequest] {
        let (db, name) = database(mode, 2).await;
        let c = db.acquire().await.unwrap();
        let pid = backend_pid(&c).await;
        throwaway_postgres::shared()
            .psql(&name, &format!("SELECT pg_terminate_backend({pid})"))
            .unwrap();
        let err = c.get_user(1).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Unavailable(_)),
            "{mode:?}: {err:?}"
        );
        c.close().await;
        // The pool replaces the dead connection.
        let c = db.acquire().await.unwrap();
        c.ping().await.unwrap();
        c.close().await;
    }
}

#[tokio::test]
async fn only_the_hash_of_a_token_is_stored() {
    let (db, name) = database(PostgresMode::Pool, 1).await;
    let c = db.acquire().await.unwrap();
    let ada = c.create_user(&new_user(1)).await.unwrap();
    let issued = c.create_token(ada.id).await.unwrap();
    c.close().await;
    let secret = issued.token.rsplit('_').next().unwrap();
    let stored = throwaway_postgres::shared()
        .psql(
            &name,
            &format!("SELECT hash FROM api_tokens WHERE id = {}", issued.id),
        )
        .unwrap();
    assert_eq!(stored.trim(), hash_secret(secret));
    assert!(!stored.contains(secret));
}

#[tokio::test]
async fn concurrent_demotions_cannot_remove_every_admin() {
    let (db, name) = database(PostgresMode::Pool, 4).await;
    let c = db.acquire().await.unwrap();
    let ada = c.create_user(&new_user(1)).await.unwrap();
    let grace = c.create_user(&new_user(2)).await.unwrap();
    let acme = c
        .create_organisation(
            ada.id,
            &NewOrganisation {
                name: "Acme".into(),
            },
        )
        .await
        .unwrap();
    c.add_member(acme.id, grace.id, Role::Admin).await.unwrap();
    c.close().await;

    // Ada steps down in a transaction and holds it open...
    let first = db.acquire().await.unwrap();
    first.begin().await.unwrap();
    first
        .change_member_role(acme.id, ada.id, Role::Member)
        .await
        .unwrap();
    // ...while Grace tries to step down too: she must wait for the lock.
    let db2 = db.clone();
    let (org_id, grace_id) = (acme.id, grace.id);
    let second = tokio::spawn(async move {
        let c = db2.acquire().await.unwrap();
        let result = c.change_member_role(org_id, grace_id, Role::Member).await;
        c.close().await;
        result
    });
    // The second demotion must block on the first's row lock: poll
    // PostgreSQL for the waiting session, bounded, rather than sleep.
    let deadline = Instant::now() + Duration::from_secs(10);
    while lock_waiters(&name) != 1 {
        assert!(
            !second.is_finished(),
            "the second demotion finished without waiting for the first"
        );
        assert!(
            Instant::now() < deadline,
            "the second demotion never blocked on the first's lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!second.is_finished());
    first.commit().await.unwrap();
    first.close().await;
    match second.await.unwrap() {
        Err(StoreError::Conflict(m)) => assert!(m.contains("at least one admin"), "{m}"),
        other => panic!("expected the last-admin conflict, got {other:?}"),
    }
    let c = db.acquire().await.unwrap();
    let roles: Vec<_> = c
        .list_members(acme.id)
        .await
        .unwrap()
        .iter()
        .map(|m| (m.user_id, m.role))
        .collect();
    assert_eq!(roles, vec![(ada.id, Role::Member), (grace.id, Role::Admin)]);
    c.close().await;
}

#[tokio::test]
async fn the_same_queries_run_on_a_raw_client() {
    let cluster = throwaway_postgres::shared();
    let name = cluster.create_database().unwrap();
    let (mut client, connection) =
        tokio_postgres::connect(&cluster.url(&name), tokio_postgres::NoTls)
            .await
            .unwrap();
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    cloud_api::store::migrate_postgres(&mut client)
        .await
        .unwrap();
    let c = Connection::from_postgres_client(client, Some(task));
    let ada = c.create_user(&new_user(1)).await.unwrap();
    assert_eq!(c.get_user(ada.id).await.unwrap(), ada);
    c.close().await;
    wait_for_sessions(&name, 0).await;
}
