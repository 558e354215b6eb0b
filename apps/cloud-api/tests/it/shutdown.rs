//! SIGTERM with requests in flight, on the real binary over a real
//! PostgreSQL in per-request mode: writes blocked behind a table lock hold
//! their connections (and open transactions) while the server shuts down.
//!
//! - Requests that finish within the grace period get their real answers,
//!   their services are released, then the app services, and the process
//!   exits 0.
//! - A request still running when the grace period ends is cut: its client
//!   gets a JSON 503, its services are released with `Exit::Shutdown` (the
//!   stuck statement is cancelled and its connection closed, so PostgreSQL
//!   rolls its transaction back), and the process still exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_cloud-api");

/// The binary, serving, with its log collected as it is written.
struct Server {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(url: &str, grace: &str) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(BIN)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--db-mode", "per-request", "--shutdown-grace", grace])
            .env("DATABASE_URL", url)
            .env(
                "RUST_LOG",
                "info,provision=debug,provision_postgres=debug,cloud_api=debug",
            )
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn({
            let log = log.clone();
            move || {
                for line in stderr.lines() {
                    let Ok(line) = line else { break };
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let server = Server { child, port, log };
        server.wait_for_log("listening");
        server
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) until the log contains `text`.
    fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "the log never said {text:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit; its exit code and full log.
    async fn exit(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the server did not exit:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The reader thread ends at end of file, right after the exit.
        let mut log = self.log();
        for _ in 0..500 {
            if log.contains("shut down") || log.contains("error") {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            log = self.log();
        }
        (status.code(), log)
    }
}

/// A token for a new user, made the way an operator makes one.
fn token(url: &str) -> String {
    let out = Command::new(BIN)
        .args(["token", "create", "--email", "ada@example.com"])
        .env("DATABASE_URL", url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// Waits (bounded) until `n` backends of `db` wait on a lock.
async fn wait_for_lock_waiters(monitor: &tokio_postgres::Client, db: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = monitor
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
                &[&db],
            )
            .await
            .unwrap();
        let waiting: i64 = row.get(0);
        if waiting == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{waiting} of {n} requests wait on the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sessions on `db` other than the test's own two.
async fn other_sessions(monitor: &tokio_postgres::Client, db: &str, locker: i32) -> i64 {
    monitor
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND pid <> $2",
            &[&db, &locker],
        )
        .await
        .unwrap()
        .get(0)
}

/// `POST /api/users` for `n` new users, each on its own connection.
fn create_users(
    port: u16,
    token: &str,
    prefix: &str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<(u16, serde_json::Value), String>>> {
    (0..n)
        .map(|i| {
            let token = token.to_owned();
            let body = json!({"name": format!("{prefix} {i}"), "email": format!("{prefix}{i}@example.com")});
            tokio::spawn(async move {
                let response = reqwest::Client::new()
                    .post(format!("http://127.0.0.1:{port}/api/users"))
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                let status = response.status().as_u16();
                let body = response.json().await.map_err(|e| format!("{e:?}"))?;
                Ok((status, body))
            })
        })
        .collect()
}

fn count_lines(log: &str, all: &[&str]) -> usize {
    log.lines()
        .filter(|line| all.iter().all(|part| line.contains(part)))
        .count()
}

#[tokio::test]
async fn requests_within_the_grace_period_complete_with_their_answers_then_everything_is_released()
{
    let cluster = throwaway_postgres::shared();
    let db = cluster.create_database().unwrap();
    let url = cluster.url(&db);
    let token = token(&url);
    let server = Server::start(&url, "20s");
    let monitor = connect(&url).await;
    let locker = connect(&url).await;
    locker
        .batch_execute("BEGIN; LOCK TABLE users IN SHARE MODE")
        .await
        .unwrap();

    let requests = create_users(server.port, &token, "kept", 20);
    wait_for_lock_waiters(&monitor, &db, 20).await;
    server.terminate();
    server.wait_for_log("shutting down: finishing in-flight requests");
    // The server is draining: now let the writes through.
    locker.batch_execute("COMMIT").await.unwrap();

    for request in requests {
        let (status, body) = request.await.unwrap().expect("an answer");
        assert_eq!(status, 201, "{body}");
    }
    let (code, log) = server.exit().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("shut down cleanly"), "{log}");
    assert_eq!(
        count_lines(&log, &["released", "\"Conn\"", "success"]),
        20,
        "{log}"
    );
    assert!(!log.contains("never released"), "{log}");
    // Request services first, then the app's database last.
    let lines: Vec<&str> = log.lines().collect();
    let last_conn = lines
        .iter()
        .rposition(|l| l.contains("released") && l.contains("\"Conn\""))
        .unwrap();
    let db_released = lines
        .iter()
        .position(|l| l.contains("released") && l.contains("\"Db\""))
        .expect("Db released");
    assert!(last_conn < db_released, "{log}");
    let kept: i64 = monitor
        .query_one("SELECT count(*) FROM users WHERE email LIKE 'kept%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 20);
}

#[tokio::test]
async fn a_request_still_running_at_the_end_of_the_grace_period_is_cut_and_released_with_the_shutdown_exit()
 {
    let cluster = throwaway_postgres::shared();
    let db = cluster.create_database().unwrap();
    let url = cluster.url(&db);
    let token = token(&url);
    let server = Server::start(&url, "2s");
    let monitor = connect(&url).await;
    let locker = connect(&url).await;
    let locker_pid: i32 = locker
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    locker
        .batch_execute("BEGIN; LOCK TABLE users IN SHARE MODE")
        .await
        .unwrap();

    let requests = create_users(server.port, &token, "cut", 5);
    wait_for_lock_waiters(&monitor, &db, 5).await;
    server.terminate();
    let (code, log) = server.exit().await;

    let answers: Vec<_> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(code, Some(0), "answers: {answers:?}\n{log}");
    for answer in &answers {
        let (status, body) = answer.as_ref().expect("an answer");
        assert_eq!(*status, 503, "{body}");
        assert_eq!(
            body["error"], "the server is shutting down; try again",
            "{body}"
        );
    }
    assert!(!log.contains("never released"), "{log}");
    assert_eq!(
        count_lines(&log, &["released", "\"Conn\"", "shutdown"]),
        5,
        "{log}"
    );
    assert!(log.contains("shut down cleanly"), "{log}");
    // The stuck sessions were ended (the writes cancelled and their
    // connections closed), not left waiting behind the lock.
    let deadline = Instant::now() + Duration::from_secs(5);
    while other_sessions(&monitor, &db, locker_pid).await != 0 {
        assert!(
            Instant::now() < deadline,
            "sessions still waiting on the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    locker.batch_execute("COMMIT").await.unwrap();
    let written: i64 = monitor
        .query_one("SELECT count(*) FROM users WHERE email LIKE 'cut%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(written, 0, "the cut writes were rolled back");
}
