//! The demo's load: for a fixed time, paced clients that mix successes
//! with every kind of failure the service answers, clients that give up
//! mid-request, and a table lock now and then that makes writes fail.
//!
//! - 6 clients on kept-alive connections, each request in turn: health,
//!   the user list (twice), a user, another tenant's user (404), a path
//!   with no route (404), a bad token (401), a new user (201), a taken
//!   email (409: the INSERT fails on the unique key), malformed JSON (400),
//!   scopes, an organisation;
//! - 3 clients that give up mid-request: `POST /api/users` (a `finish`
//!   route: it completes without them) and `GET /api/users` (a `cancel`
//!   route: rolled back), the connection reset 0-30 ms after sending;
//! - every 10 s, `users` locked (SHARE) for 1.5 s: INSERTs wait past the
//!   server's statement timeout (400 ms), are cancelled and answer 503.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::BoxError;
use crate::setup::{Env, GET_ID, OUTSIDER_ID};
use crate::soak::{Keepalive, Rng, abort};

const CLIENTS: u64 = 6;
const QUITTERS: u64 = 3;
/// Pause between one client's requests: the demo shows the shape of a
/// mixed load, not the machine's ceiling (which it shares).
const PACE: Duration = Duration::from_millis(15);
const LOCK_EVERY: Duration = Duration::from_secs(10);
const LOCK_FOR: Duration = Duration::from_millis(1500);

/// What the load sent and got.
#[derive(Default, Debug)]
pub struct Tally {
    statuses: BTreeMap<u16, u64>,
    given_up: u64,
    errors: u64,
    locks: u64,
}

impl Tally {
    pub fn summary(&self) -> String {
        let answered: u64 = self.statuses.values().sum();
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        format!(
            "{answered} requests answered ({}), {} given up mid-request, {} client errors, {} table locks",
            statuses.join(", "),
            self.given_up,
            self.errors,
            self.locks
        )
    }
}

fn request(method: &str, path: &str, token: &str, body: Option<&str>) -> String {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n");
    match body {
        Some(body) => head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )),
        None => head.push_str("\r\n"),
    }
    head
}

/// Request `n` of a steady client's turn.
fn steady(n: u64, client: u64, token: &str) -> String {
    match n % 12 {
        0 => request("GET", "/api/health", token, None),
        1 | 2 => request(
            "GET",
            &format!("/api/users?limit=20&offset={}", n % 5_000),
            token,
            None,
        ),
        3 => request(
            "GET",
            &format!("/api/users/{}", GET_ID + (n % 100) as i64),
            token,
            None,
        ),
        4 => request("GET", &format!("/api/users/{OUTSIDER_ID}"), token, None),
        5 => request("GET", "/api/no-such-thing", token, None),
        6 => request("GET", "/api/users", "not-a-valid-token", None),
        7 => request(
            "POST",
            "/api/users",
            token,
            Some(&format!(
                r#"{{"name":"Demo {n}","email":"demo-{client}-{n}@telemetry.example"}}"#
            )),
        ),
        8 => request(
            "POST",
            "/api/users",
            token,
            Some(r#"{"name":"Taken","email":"user2@bench.example"}"#),
        ),
        9 => request("POST", "/api/users", token, Some(r#"{"name": "#)),
        10 => request("GET", "/api/scopes", token, None),
        _ => request("GET", "/api/orgs/1", token, None),
    }
}

/// Runs the load on `127.0.0.1:port` for `length`.
pub async fn run(env: &Env, port: u16, length: Duration) -> Result<Tally, BoxError> {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let end = Instant::now() + length;
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let (tally, token) = (tally.clone(), env.token.clone());
        tasks.push(tokio::spawn(async move {
            let mut connection: Option<Keepalive> = None;
            let mut n = client;
            while Instant::now() < end {
                let request = steady(n, client, &token);
                n += 1;
                if connection.is_none() {
                    connection = Keepalive::connect(port).await.ok();
                }
                let answer = match connection.as_mut() {
                    Some(open) => open.send(&request).await,
                    None => Err("cannot connect".into()),
                };
                match answer {
                    Ok((status, _)) => {
                        *tally.lock().unwrap().statuses.entry(status).or_default() += 1
                    }
                    Err(_) => {
                        tally.lock().unwrap().errors += 1;
                        connection = None;
                    }
                }
                tokio::time::sleep(PACE).await;
            }
        }));
    }
    for quitter in 0..QUITTERS {
        let (tally, token) = (tally.clone(), env.token.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (quitter + 1));
            let mut n = 0u64;
            while Instant::now() < end {
                let request = if n.is_multiple_of(2) {
                    request(
                        "POST",
                        "/api/users",
                        &token,
                        Some(&format!(
                            r#"{{"name":"Gone {n}","email":"gone-{quitter}-{n}@telemetry.example"}}"#
                        )),
                    )
                } else {
                    request("GET", "/api/users?limit=50", &token, None)
                };
                n += 1;
                let pause = Duration::from_micros(rng.next() % 30_000);
                let outcome = abort(port, &request, pause).await;
                match outcome {
                    Ok(()) => tally.lock().unwrap().given_up += 1,
                    Err(_) => tally.lock().unwrap().errors += 1,
                }
                tokio::time::sleep(PACE).await;
            }
        }));
    }
    let locker = {
        let (tally, url) = (tally.clone(), env.url.clone());
        tokio::spawn(async move {
            let (mut db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            loop {
                tokio::time::sleep(LOCK_EVERY).await;
                if Instant::now() + LOCK_FOR >= end {
                    return Ok::<(), BoxError>(());
                }
                let lock = db.transaction().await?;
                lock.batch_execute("LOCK TABLE users IN SHARE MODE").await?;
                tokio::time::sleep(LOCK_FOR).await;
                lock.commit().await?;
                tally.lock().unwrap().locks += 1;
            }
        })
    };
    for task in tasks {
        task.await?;
    }
    locker.await??;
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    Ok(tally)
}
