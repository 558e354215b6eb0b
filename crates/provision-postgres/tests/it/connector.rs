//! A host that connects its own way (as Cloudflare Workers does over
//! `worker::Socket`) plugs in through `Connect`: its transient failures are
//! retried within the acquire budget, and what it returned is closed when
//! the request ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use provision::integration::{RegistryControl, ScopeControl};
use provision_postgres::{Connect, Connected, Connecting, PgConn, PgError, PgOptions, Postgres};

use crate::support::eventually;

/// Fails the first `failures` connects as transient, then connects with
/// tokio-postgres and drives the connection on a task of its own.
struct FlakyHost {
    url: String,
    failures: AtomicU32,
    attempts: Arc<AtomicU32>,
}

impl Connect for FlakyHost {
    fn connect(&self) -> Connecting<'_> {
        Box::pin(async move {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            if self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(PgError::transient("the host dropped the first connect"));
            }
            let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                .await
                .map_err(PgError::from_connect)?;
            let task = tokio::spawn(connection);
            Ok(Connected::new(client, async move {
                let _ = task.await;
            }))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_connector_is_retried_and_closed() {
    let cluster = throwaway_postgres::shared();
    let db = cluster.create_database().unwrap();
    let url = format!("{}?application_name=it-host-{db}", cluster.url(&db));
    let attempts = Arc::new(AtomicU32::new(0));
    let database = Postgres::with_connector(
        FlakyHost {
            url,
            failures: AtomicU32::new(2),
            attempts: attempts.clone(),
        },
        PgOptions::default(),
    );
    let registry = provision::Registry::builder()
        .supply(database)
        .register::<PgConn>()
        .build()
        .await
        .unwrap();

    let scope = registry.open_scope();
    let answer = scope
        .bind(async {
            let scope = provision::RequestScope::current().expect("inside the request");
            let conn = scope.resolve::<PgConn>().await.map_err(|e| e.to_string())?;
            let row = conn
                .get()
                .map_err(|e| e.to_string())?
                .query_one("SELECT 41 + 1", &[])
                .await
                .map_err(|e| e.to_string())?;
            Ok::<i32, String>(row.get(0))
        })
        .await;
    assert_eq!(answer, Ok(42));
    assert_eq!(attempts.load(Ordering::SeqCst), 3);

    // Closing the request closes the host's connection and waits for it.
    scope
        .close(provision::Exit::from_status(http::StatusCode::OK))
        .await;
    assert_eq!(registry.probe().releases::<PgConn>(), 1);
    // The backend leaves pg_stat_activity once it has seen the client go,
    // a moment after the client's side is closed: waited for, bounded.
    let (admin, connection) = tokio_postgres::connect(&cluster.url(&db), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let app_name = format!("it-host-{db}");
    eventually("the host's connection to close on the server", || async {
        let open: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&app_name],
            )
            .await
            .unwrap()
            .get(0);
        open == 0
    })
    .await;
}
