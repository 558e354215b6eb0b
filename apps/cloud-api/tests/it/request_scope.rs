//! Regression case 4 of the source pull request, on the production router:
//! with the database connection replaced by a counting fake, protected
//! requests each acquire and release their own connection, health acquires
//! none, and a request refused by authentication still releases what
//! authentication acquired. Then the same path on a real PostgreSQL server,
//! counted by the server itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::support::{Backend, TestApp};
use cloud_api::services::{Authenticated, BearerToken, Conn};
use cloud_api::settings::Settings;
use cloud_api::store::Database;
use provision::Error;

/// The production router with `Conn` built by a counting fake: each build
/// counts and hands out a connection to a scratch SQLite file.
async fn app_with_counting_fake() -> (TestApp, Arc<AtomicU32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let fake_db = Database::open_sqlite(dir.path().join("fake.sqlite3")).unwrap();
    let built = Arc::new(AtomicU32::new(0));
    let settings = Settings::for_database(None, dir.path().join("real"));
    let counter = built.clone();
    let fake = fake_db.clone();
    let app = TestApp::start_with(settings, Box::new(dir), move |services| {
        services.override_with::<Conn, _, _>(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let fake = fake.clone();
            async move {
                let connection = fake.acquire().await.map_err(Error::from_source)?;
                Ok(Conn::from_connection(connection))
            }
        })
    })
    .await;
    // A user and token in the fake's database, where the fake looks.
    let connection = fake_db.acquire().await.unwrap();
    let (user, _) = connection
        .find_or_create_user(&cloud_api::domain::NewUser {
            name: "Ada".into(),
            email: "ada@example.com".into(),
        })
        .await
        .unwrap();
    let token = connection.create_token(user.id).await.unwrap().token;
    connection.close().await;
    (app, built, token)
}

#[tokio::test]
async fn case_4_protected_requests_each_acquire_and_release_one_connection() {
    let (app, built, token) = app_with_counting_fake().await;
    let probe = app.registry.probe();

    app.get("/api/users", &[], Some(&token)).await.expect(200);
    app.get("/api/users", &[], Some(&token)).await.expect(200);

    assert_eq!(
        built.load(Ordering::SeqCst),
        2,
        "the fake was built once per request"
    );
    assert_eq!(probe.acquires::<Conn>(), 2);
    assert_eq!(probe.releases::<Conn>(), 2);
    assert_eq!(probe.acquires::<Authenticated>(), 2);
    assert_eq!(probe.releases::<Authenticated>(), 2);
    app.stop().await;
}

#[tokio::test]
async fn case_4_health_acquires_nothing() {
    let (app, built, _) = app_with_counting_fake().await;
    for _ in 0..3 {
        app.get("/api/health", &[], None).await.expect(200);
    }
    assert_eq!(built.load(Ordering::SeqCst), 0);
    let probe = app.registry.probe();
    let request_services: u64 = probe
        .snapshot()
        .iter()
        .filter(|r| r.lifetime == provision::LifetimeKind::Request)
        .map(|r| r.acquires)
        .sum();
    assert_eq!(request_services, 0, "{:?}", probe.snapshot());
    app.stop().await;
}

#[tokio::test]
async fn case_4_a_request_refused_by_authentication_releases_what_it_acquired() {
    let (app, built, _) = app_with_counting_fake().await;
    let probe = app.registry.probe();

    // A well-formed but unknown token: looked up (a connection), refused.
    app.get("/api/users", &[], Some("pv_1_0123abcd"))
        .await
        .expect(401);
    assert_eq!((probe.acquires::<Conn>(), probe.releases::<Conn>()), (1, 1));
    assert_eq!(probe.report::<Authenticated>().build_failures, 1);

    // No token at all: refused before any connection.
    app.get("/api/users", &[], None).await.expect(401);
    assert_eq!(built.load(Ordering::SeqCst), 1);
    assert_eq!(probe.report::<BearerToken>().build_failures, 1);
    assert_eq!(probe.held::<Conn>(), 0);
    app.stop().await;
}

/// Connections the service has open on the server, by its application name.
async fn server_connections(app: &TestApp) -> i64 {
    let url = app.settings.database_url.clone().unwrap();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(connection);
    let row = client
        .query_one(
            "select count(*) from pg_stat_activity where application_name = 'cloud-api' and datname = current_database()",
            &[],
        )
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
    row.get(0)
}

#[tokio::test]
async fn case_4_on_real_postgres_per_request_the_server_sees_each_connection_closed() {
    let app = TestApp::start(Backend::PostgresPerRequest).await;
    let (_, token) = app.user("Ada", "ada@example.com").await;
    let probe = app.registry.probe();

    app.get("/api/health", &[], None).await.expect(200);
    assert_eq!(
        app.metrics.connections_opened(),
        0,
        "health opened no connection"
    );
    app.get("/api/users", &[], Some(&token)).await.expect(200);
    app.get("/api/users", &[], Some(&token)).await.expect(200);
    app.get("/api/users", &[], Some("pv_1_0123abcd"))
        .await
        .expect(401);

    assert_eq!(app.metrics.connections_opened(), 3);
    assert_eq!((probe.acquires::<Conn>(), probe.releases::<Conn>()), (3, 3));
    // Release waited for each connection to close, so the server has none.
    assert_eq!(server_connections(&app).await, 0);
    app.stop().await;
}
