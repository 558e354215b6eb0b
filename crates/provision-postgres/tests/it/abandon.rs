//! A request cut while its statement still runs on the server (a write
//! blocked on a lock): the statement is cancelled and the connection closed
//! (PostgreSQL rolls the transaction back), instead of a `ROLLBACK` queued
//! behind it for as long as the lock is held. And a release step stuck in a
//! query is abandoned after its bound, its connection closed all the same.

use std::time::Duration;

use provision::integration::{RegistryControl, ScopeControl};
use provision::{Dep, Error, Exit, Provide, Registry, Request};
use provision_postgres::{Mode, PgConn, PgOptions, PgTx, Postgres, TokioTimer};

use crate::support::{Harness, eventually};

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("a test connection");
    tokio::spawn(connection);
    client
}

async fn a_write_blocked_on_a_lock_is_cancelled_when_its_client_leaves(mode: Mode) {
    // Long enough that only a cancel can end the write within the test.
    let options = PgOptions::default().statement_timeout(Duration::from_secs(120));
    let h = Harness::start_with(mode, options, |url| url).await;
    let locker = connect(&h.db_url).await;
    locker
        .batch_execute("BEGIN; LOCK TABLE items IN SHARE MODE")
        .await
        .unwrap();
    let url = h.url("/items/ada");
    let request = tokio::spawn(async move { reqwest::Client::new().post(url).send().await });
    eventually("the write to wait on the lock", || async {
        h.lock_waiters().await == 1
    })
    .await;

    request.abort();
    let _ = request.await;

    eventually(
        "the transaction and the connection to be released",
        || async {
            let probe = h.registry.probe();
            probe.releases::<PgTx>() == 1 && probe.releases::<PgConn>() == 1
        },
    )
    .await;
    // Cancelled and closed while the lock is still held.
    h.no_server_connections().await;
    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(h.rows("items").await, 0, "the write was rolled back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_blocked_on_a_lock_is_cancelled_when_its_client_leaves_with_a_pool() {
    a_write_blocked_on_a_lock_is_cancelled_when_its_client_leaves(Mode::Pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_blocked_on_a_lock_is_cancelled_when_its_client_leaves_per_request() {
    a_write_blocked_on_a_lock_is_cancelled_when_its_client_leaves(Mode::PerRequest).await;
}

/// Its release runs a query that would take a minute.
struct Stuck(Dep<PgConn>);

impl Provide for Stuck {
    type Lifetime = Request;
    type Deps = (PgConn,);

    async fn build((conn,): (Dep<PgConn>,)) -> Result<Self, Error> {
        Ok(Stuck(conn))
    }

    async fn release(self, _: Exit) -> Result<(), Error> {
        self.0.get()?.query("SELECT pg_sleep(60)", &[]).await?;
        Ok(())
    }
}

async fn a_release_stuck_in_a_query_is_abandoned_and_its_connection_closed(mode: Mode) {
    let cluster = throwaway_postgres::shared();
    let db = cluster.create_database().expect("a fresh database");
    let app_name = format!("abandon-{db}");
    let options = PgOptions::default()
        .mode(mode)
        .application_name(&app_name)
        .statement_timeout(Duration::from_secs(120));
    let database = Postgres::new(&cluster.url(&db), options).expect("a valid URL");
    let registry = Registry::builder()
        .supply(database)
        .timer(TokioTimer)
        .step_timeout(Duration::from_millis(300))
        .register::<Stuck>()
        .build()
        .await
        .expect("the registry");
    let scope = registry.open_scope();
    // Built inside the request, as a handler would: the connection is
    // bound to it.
    let stuck = scope.bind(scope.resolve::<Stuck>()).await;
    drop(stuck.expect("a connection"));

    tokio::time::timeout(Duration::from_secs(60), scope.close(Exit::Cancelled))
        .await
        .expect("the scope closes once the stuck release is abandoned");

    let probe = registry.probe();
    assert_eq!(
        probe.report::<Stuck>().abandoned_releases,
        1,
        "{:?}",
        probe.snapshot()
    );
    assert_eq!(probe.report::<PgConn>().abandoned_releases, 0);
    assert_eq!(probe.held::<PgConn>(), 0);
    let admin = connect(&cluster.url(&db)).await;
    eventually("the stuck session to end", || async {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&app_name],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0) == 0
    })
    .await;
    registry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_stuck_in_a_query_is_abandoned_and_its_connection_closed_with_a_pool() {
    a_release_stuck_in_a_query_is_abandoned_and_its_connection_closed(Mode::Pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_stuck_in_a_query_is_abandoned_and_its_connection_closed_per_request() {
    a_release_stuck_in_a_query_is_abandoned_and_its_connection_closed(Mode::PerRequest).await;
}
