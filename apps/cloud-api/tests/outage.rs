//! The database goes away and comes back: health stays up, database routes
//! answer 503 with a JSON error within the acquire timeout, and the service
//! recovers without a restart. On its own cluster, so other tests are not
//! disturbed.

mod support;

use std::time::{Duration, Instant};

use cloud_api::settings::{DbMode, Settings};
use support::TestApp;

async fn outage_in(mode: DbMode) {
    let cluster = throwaway_postgres::Cluster::start().expect("a cluster for the outage");
    let name = cluster.create_database().unwrap();
    let mut settings = Settings::for_database(Some(cluster.url(&name)), "unused".into());
    settings.db_mode = mode;
    settings.acquire_timeout = Duration::from_secs(1);
    let app = TestApp::start_with(settings, Box::new(()), |s| s).await;
    let (_, token) = app.user("Ada", "ada@example.com").await;
    let t = Some(token.as_str());
    app.get("/api/users", &[], t).await.expect(200);

    cluster.stop_server().unwrap();

    app.get("/api/health", &[], None).await.expect(200);
    let started = Instant::now();
    let ready = app.get("/api/ready", &[], None).await.expect(503);
    assert_eq!(
        ready.error(),
        "the database is unavailable; try again shortly"
    );
    let users = app.get("/api/users", &[], t).await.expect(503);
    assert_eq!(
        users.error(),
        "the database is unavailable; try again shortly"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "503s come within the acquire timeout, took {:?}",
        started.elapsed()
    );

    cluster.start_server().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = app.get("/api/users", &[], t).await;
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert!(Instant::now() < deadline, "the service did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.get("/api/ready", &[], None).await.expect(200);
    let probe = app.registry.probe();
    assert_eq!(probe.held::<cloud_api::services::Conn>(), 0);
    app.stop().await;
}

#[tokio::test]
async fn pool_mode_answers_503_while_the_database_is_down_and_recovers() {
    outage_in(DbMode::Pool).await;
}

#[tokio::test]
async fn per_request_mode_answers_503_while_the_database_is_down_and_recovers() {
    outage_in(DbMode::PerRequest).await;
}
