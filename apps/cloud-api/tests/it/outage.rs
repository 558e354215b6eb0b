//! The database goes away and comes back: health stays up, database routes
//! answer 503 with a JSON error within the acquire timeout, and the service
//! recovers without a restart. On its own cluster, so other tests are not
//! disturbed.

use std::time::{Duration, Instant};

use crate::support::{self, TestApp};
use cloud_api::settings::{DbMode, Settings};

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

/// One answer seen during the outage run.
#[derive(Debug, Clone)]
struct Seen {
    what: &'static str,
    status: u16,
    at: Instant,
    took: Duration,
    email: Option<String>,
}

async fn outage_under_load_in(mode: DbMode) {
    let cluster = throwaway_postgres::Cluster::start().expect("a cluster for the outage");
    let name = cluster.create_database().unwrap();
    let mut settings = Settings::for_database(Some(cluster.url(&name)), "unused".into());
    settings.db_mode = mode;
    settings.acquire_timeout = Duration::from_secs(1);
    let app = std::sync::Arc::new(TestApp::start_with(settings, Box::new(()), |s| s).await);
    let (_, token) = app.user("Ada", "ada@example.com").await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Seen>::new()));
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));

    let mut load = Vec::new();
    for worker in 0..6 {
        let (app, token, seen, running) =
            (app.clone(), token.clone(), seen.clone(), running.clone());
        load.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = 0;
            while running.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let url = |p: &str| format!("http://{}{}", app.addr, p);
                let started = Instant::now();
                let (what, email, request) = match worker {
                    0 => ("health", None, client.get(url("/api/health"))),
                    1 => (
                        "read",
                        None,
                        client.get(url("/api/users/1")).bearer_auth(&token),
                    ),
                    2 => {
                        let org = format!("Org {worker}-{n}");
                        (
                            "org",
                            Some(org.clone()),
                            client
                                .post(url("/api/orgs"))
                                .bearer_auth(&token)
                                .json(&serde_json::json!({"name": org})),
                        )
                    }
                    _ => {
                        let email = format!("w{worker}-{n}@example.com");
                        let body = serde_json::json!({"name": "W", "email": email});
                        (
                            "write",
                            Some(email),
                            client
                                .post(url("/api/users"))
                                .bearer_auth(&token)
                                .json(&body),
                        )
                    }
                };
                let status = request
                    .send()
                    .await
                    .expect("the service answers")
                    .status()
                    .as_u16();
                seen.lock().unwrap().push(Seen {
                    what,
                    status,
                    at: Instant::now(),
                    took: started.elapsed(),
                    email,
                });
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(700)).await;
    let stopped_at = Instant::now();
    cluster.stop_server().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.start_server().unwrap();
    let restarted_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }

    let seen = seen.lock().unwrap().clone();
    let outage = |s: &&Seen| s.at > stopped_at && s.at < restarted_at;
    assert!(
        seen.iter()
            .filter(|s| s.what == "health")
            .all(|s| s.status == 200),
        "health stayed up"
    );
    assert!(
        seen.iter().filter(outage).any(|s| s.status == 503),
        "{mode:?}: the outage was seen"
    );
    for s in seen.iter().filter(|s| s.what != "health") {
        assert!(matches!(s.status, 200 | 201 | 503), "{mode:?}: {s:?}");
        if s.status == 503 {
            assert!(
                s.took < Duration::from_millis(2500),
                "{mode:?}: a 503 took {:?}",
                s.took
            );
        }
    }
    let first_success_after_restart = seen
        .iter()
        .filter(|s| s.what != "health" && s.at > restarted_at && s.status < 300)
        .map(|s| s.at - restarted_at)
        .min()
        .expect("the service recovered");
    assert!(
        first_success_after_restart < Duration::from_secs(2),
        "{mode:?}: recovered after {first_success_after_restart:?}"
    );
    let late = restarted_at + Duration::from_secs(2);
    assert!(
        seen.iter()
            .filter(|s| s.what != "health" && s.at > late)
            .all(|s| s.status < 300),
        "{mode:?}: all requests succeed once recovered"
    );

    // Every acknowledged write is there; nothing is half-applied.
    let (client, connection) = tokio_postgres::connect(&cluster.url(&name), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let emails: Vec<String> = client
        .query("select email from users", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let orgs: Vec<String> = client
        .query("select name from organisations", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut acknowledged = 0;
    for s in seen.iter().filter(|s| s.status == 201) {
        let key = s.email.clone().unwrap();
        let present = if s.what == "org" {
            orgs.contains(&key)
        } else {
            emails.contains(&key)
        };
        assert!(present, "{mode:?}: acknowledged write {key} is missing");
        acknowledged += 1;
    }
    let half = support::half_created_organisations(&client).await;
    assert_eq!(half, 0, "{mode:?}: an organisation was half-created");
    eprintln!(
        "{mode:?}: {} answers, {} during the outage ({} 503), {acknowledged} writes acknowledged and present, \
         recovered {first_success_after_restart:?} after the restart",
        seen.len(),
        seen.iter().filter(outage).count(),
        seen.iter()
            .filter(outage)
            .filter(|s| s.status == 503)
            .count()
    );
    assert_eq!(app.registry.probe().held::<cloud_api::services::Conn>(), 0);
    std::sync::Arc::into_inner(app).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_mode_survives_an_outage_under_load_without_losing_acknowledged_writes() {
    outage_under_load_in(DbMode::Pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_request_mode_survives_an_outage_under_load_without_losing_acknowledged_writes() {
    outage_under_load_in(DbMode::PerRequest).await;
}
