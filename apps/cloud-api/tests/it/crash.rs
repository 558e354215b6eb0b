//! PostgreSQL crashes under concurrent writes: a durable cluster, `kill -9`
//! of its postmaster while six clients write, then a restart (crash
//! recovery). Every write answered 201 is in the database afterwards, no
//! organisation is half-created, and the service recovers by itself: each
//! client ends with a run of successes, and no connection is left held.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{self, TestApp, eventually};
use cloud_api::settings::{DbMode, Settings};

/// Writers: each creates users and organisations until it has had this
/// many successes in a row among requests sent after the restart.
const WRITERS: usize = 6;
const STREAK: usize = 20;
/// Writes acknowledged before the crash.
const BEFORE_CRASH: usize = 60;

#[derive(Debug, Clone)]
struct Answer {
    /// A user's email or an organisation's name.
    key: String,
    is_org: bool,
    status: u16,
    after_restart: bool,
}

async fn crash_in(mode: DbMode) {
    let cluster = Arc::new(
        throwaway_postgres::ClusterOptions::new()
            .durable(true)
            .start()
            .expect("a durable cluster for the crash"),
    );
    let name = cluster.create_database().unwrap();
    let mut settings = Settings::for_database(Some(cluster.url(&name)), "unused".into());
    settings.db_mode = mode;
    settings.pool_size = 4;
    settings.acquire_timeout = Duration::from_secs(1);
    let app = Arc::new(TestApp::start_with(settings, Box::new(()), |s| s).await);
    let (_, token) = app.user("Ada", "ada@example.com").await;

    let answers = Arc::new(Mutex::new(Vec::<Answer>::new()));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let restarted = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (app, token, answers, acknowledged, restarted) = (
            app.clone(),
            token.clone(),
            answers.clone(),
            acknowledged.clone(),
            restarted.clone(),
        );
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut streak = 0;
            for n in 0.. {
                assert!(
                    Instant::now() < deadline,
                    "{mode:?}: writer {writer} did not recover ({streak} successes in a row)"
                );
                let after_restart = restarted.load(Ordering::SeqCst);
                let is_org = n % 2 == 1;
                let key = format!("w{writer}-{n}");
                let request = if is_org {
                    client
                        .post(format!("http://{}/api/orgs", app.addr))
                        .json(&serde_json::json!({"name": key}))
                } else {
                    client.post(format!("http://{}/api/users", app.addr)).json(
                        &serde_json::json!({"name": "W", "email": format!("{key}@example.com")}),
                    )
                };
                let response = request
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("the service answers, database or not");
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.expect("a JSON body");
                if status != 201 {
                    assert_eq!(
                        body["error"], "the database is unavailable; try again shortly",
                        "{mode:?}: {status} {body}"
                    );
                }
                answers.lock().unwrap().push(Answer {
                    key,
                    is_org,
                    status,
                    after_restart,
                });
                if status == 201 {
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                }
                if after_restart {
                    streak = if status == 201 { streak + 1 } else { 0 };
                    if streak == STREAK {
                        return;
                    }
                }
            }
        }));
    }

    eventually("writes are acknowledged before the crash", || {
        acknowledged.load(Ordering::SeqCst) >= BEFORE_CRASH
    })
    .await;
    let crashed_at = acknowledged.load(Ordering::SeqCst);
    cluster.kill_server().unwrap();
    let restart = cluster.clone();
    tokio::task::spawn_blocking(move || restart.start_server())
        .await
        .unwrap()
        .expect("PostgreSQL restarts after crash recovery");
    restarted.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }

    let log = cluster.server_log();
    assert!(
        log.contains("was not properly shut down") || log.contains("was interrupted"),
        "{mode:?}: PostgreSQL ran crash recovery:\n{log}"
    );
    let answers = answers.lock().unwrap().clone();
    // Only two answers are right: 201 (kept) or 503 (not acknowledged).
    for a in &answers {
        assert!(matches!(a.status, 201 | 503), "{mode:?}: {a:?}");
    }

    let (client, connection) = tokio_postgres::connect(&cluster.url(&name), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let column = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<std::collections::HashSet<String>>()
        }
    };
    let emails = column("select email from users").await;
    let orgs = column("select name from organisations").await;
    let mut kept = 0;
    for a in answers.iter().filter(|a| a.status == 201) {
        let present = if a.is_org {
            orgs.contains(&a.key)
        } else {
            emails.contains(&format!("{}@example.com", a.key))
        };
        assert!(present, "{mode:?}: acknowledged write {} is missing", a.key);
        kept += 1;
    }
    let half = support::half_created_organisations(&client).await;
    assert_eq!(half, 0, "{mode:?}: an organisation was half-created");
    let refused = answers.iter().filter(|a| a.status == 503).count();
    eprintln!(
        "{mode:?}: {} writes answered, {kept} acknowledged and all present \
         ({crashed_at} before the kill), {refused} answered 503 around the crash, \
         {} answered after the restart",
        answers.len(),
        answers.iter().filter(|a| a.after_restart).count()
    );
    assert_eq!(app.registry.probe().held::<cloud_api::services::Conn>(), 0);
    drop(client);
    Arc::into_inner(app).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_mode_keeps_every_acknowledged_write_through_a_crash() {
    crash_in(DbMode::Pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_request_mode_keeps_every_acknowledged_write_through_a_crash() {
    crash_in(DbMode::PerRequest).await;
}
