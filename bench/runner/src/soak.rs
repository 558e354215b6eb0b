//! `bench-runner --soak`: a long mixed load on the release build of
//! cloud-api against a throwaway PostgreSQL, once per mode, checking that
//! nothing accumulates. Not a benchmark and not a test (`scripts/soak`).
//!
//! Per mode: 200,000 requests (`--requests N`) from 24 clients, a third of
//! which abort every request (send it, wait 0-3 ms, reset the connection);
//! the others keep one connection each and mix health, user list and get,
//! a foreign user's 404, scopes, an organisation, and user creation. The
//! server's RSS is sampled from `/proc` every 250 ms; afterwards the
//! server's `/metrics` must show as many releases as acquisitions for every
//! request service, none held, and PostgreSQL no connection left by a
//! request. It reports, and fails (exit 1) when:
//! - RSS at the end is more than 10 % above or below RSS after warm-up
//!   (the first 10 % of the requests);
//! - acquisitions and releases differ, or a value is still held;
//! - a connection is left: a backend of the server in per-request mode
//!   while idle, or any after it has shut down (pool mode keeps its idle
//!   pool connections while running, by design);
//! - a client that did not abort lost its connection.
//!
//! 5xx answers are reported with the server's warnings, not failed: on a
//! loaded machine a per-request connect can outlast the acquire timeout,
//! and the right answer then is the 503 the service gives.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::BoxError;
use crate::say;
use crate::servers::{Kind, Mode, Server};
use crate::setup::{Env, GET_ID, OUTSIDER_ID};

/// Clients in all; `ABORTING` of them abort every request.
const CLIENTS: u64 = 24;
const ABORTING: u64 = CLIENTS / 3;
/// RSS sampling period.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// What one mode's soak measured.
#[derive(Debug)]
struct Soak {
    mode: Mode,
    requests: u64,
    aborted: u64,
    seconds: f64,
    statuses: BTreeMap<u16, u64>,
    /// Errors of clients that did not abort (connection lost, malformed).
    client_errors: u64,
    /// The first few 5xx bodies, to say why.
    server_errors: Vec<String>,
    /// The server's warnings and errors, by message, most frequent first.
    warnings: Vec<(String, usize)>,
    rss_warm_kib: u64,
    rss_end_kib: u64,
    rss_min_kib: u64,
    rss_max_kib: u64,
    samples: usize,
    /// Per request service: (acquisitions, releases, held, cancelled releases).
    services: BTreeMap<String, (u64, u64, i64, u64)>,
    backends_idle: i64,
    backends_after_stop: i64,
}

impl Soak {
    fn rss_drift(&self) -> f64 {
        (self.rss_end_kib as f64 - self.rss_warm_kib as f64) / self.rss_warm_kib as f64
    }

    fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.rss_drift().abs() > 0.10 {
            failures.push(format!(
                "RSS ended {:+.1} % from its value after warm-up",
                self.rss_drift() * 100.0
            ));
        }
        for (service, (acquired, released, held, _)) in &self.services {
            if acquired != released || *held != 0 {
                failures.push(format!(
                    "{service}: {acquired} acquisitions, {released} releases, {held} held"
                ));
            }
        }
        if self.services.is_empty() {
            failures.push("no request service in /metrics".into());
        }
        if self.mode == Mode::PerRequest && self.backends_idle != 0 {
            failures.push(format!(
                "{} connections left while idle",
                self.backends_idle
            ));
        }
        if self.backends_after_stop != 0 {
            failures.push(format!(
                "{} connections left after shutdown",
                self.backends_after_stop
            ));
        }
        if self.client_errors > 0 {
            failures.push(format!(
                "{} lost connections among clients that did not abort",
                self.client_errors
            ));
        }
        failures
    }

    fn summary(&self) -> String {
        let statuses = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let services = self
            .services
            .iter()
            .map(|(s, (a, r, h, c))| {
                format!("{s}: {a} acquired, {r} released ({c} cancelled), {h} held")
            })
            .collect::<Vec<_>>()
            .join("; ");
        format!(
            "{} mode: {} requests ({} aborted by their client) in {:.0} s ({:.0}/s); answers {{{statuses}}}; \
             lost connections {}{}\n  RSS after warm-up {:.1} MiB, at the end {:.1} MiB ({:+.1} %), \
             min {:.1} MiB, max {:.1} MiB, {} samples\n  {services}\n  \
             server backends while idle: {}, after shutdown: {}{}",
            self.mode,
            self.requests,
            self.aborted,
            self.seconds,
            self.requests as f64 / self.seconds,
            self.client_errors,
            if self.server_errors.is_empty() {
                String::new()
            } else {
                format!("; 5xx bodies: {}", self.server_errors.join(" | "))
            },
            self.rss_warm_kib as f64 / 1024.0,
            self.rss_end_kib as f64 / 1024.0,
            self.rss_drift() * 100.0,
            self.rss_min_kib as f64 / 1024.0,
            self.rss_max_kib as f64 / 1024.0,
            self.samples,
            self.backends_idle,
            self.backends_after_stop,
            self.warnings
                .iter()
                .map(|(w, n)| format!("\n  server log, {n} x: {w}"))
                .collect::<String>(),
        )
    }
}

/// Runs the soak: `args` are what follows `--soak`.
pub async fn run(root: &Path, args: &[String], started: Instant) -> Result<bool, BoxError> {
    let mut requests: u64 = 200_000;
    let mut modes = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--requests" => {
                requests = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--requests needs a number")?;
            }
            "--mode" => modes.push(match args.next().map(String::as_str) {
                Some("pool") => Mode::Pool,
                Some("per-request") => Mode::PerRequest,
                other => return Err(format!("unknown mode {other:?}").into()),
            }),
            other => return Err(format!("unknown soak argument {other:?}").into()),
        }
    }
    if modes.is_empty() {
        modes = Mode::ALL.to_vec();
    }
    let binary = crate::tools::release_binary(root, "cloud-api");
    if !binary.exists() {
        return Err(format!(
            "{} is missing: `cargo build --release -p cloud-api` first (scripts/soak does)",
            binary.display()
        )
        .into());
    }
    let tmp = crate::tools::scratch_dir()?;
    say(started, "throwaway PostgreSQL, migrations, seed");
    let env = Env::start(root, &tmp, started).await?;
    let mut ok = true;
    let mut summaries = Vec::new();
    for mode in modes {
        say(
            started,
            format!(
                "soak, {mode} mode: {requests} requests, {CLIENTS} clients, {ABORTING} aborting"
            ),
        );
        let soak = soak(&env, root, &tmp, mode, requests).await?;
        let failures = soak.failures();
        say(started, soak.summary());
        for failure in &failures {
            say(started, format!("FAILED: {failure}"));
        }
        ok &= failures.is_empty();
        summaries.push(soak.summary());
        env.reset_users().await?;
    }
    env.stop();
    let _ = std::fs::remove_dir_all(&tmp);
    println!("{}", summaries.join("\n"));
    Ok(ok)
}

async fn soak(
    env: &Env,
    root: &Path,
    tmp: &Path,
    mode: Mode,
    requests: u64,
) -> Result<Soak, BoxError> {
    let server = Server::start(root, tmp, Kind::Provision, mode, &env.url).await?;
    let port = server.port;
    let pid = server.pid();
    let issued = Arc::new(AtomicU64::new(0));
    let aborted = Arc::new(AtomicU64::new(0));
    let client_errors = Arc::new(AtomicU64::new(0));
    let statuses = Arc::new(std::sync::Mutex::new(BTreeMap::<u16, u64>::new()));
    let server_errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let warm_after = requests / 10;

    let sampler = tokio::spawn({
        let issued = issued.clone();
        async move {
            let mut warm = None;
            let mut samples = Vec::new();
            loop {
                let done = issued.load(Ordering::SeqCst);
                let rss = rss_kib(pid);
                if warm.is_none() && done >= warm_after {
                    warm = Some(rss);
                }
                if warm.is_some() {
                    samples.push(rss);
                }
                if done >= requests {
                    return (warm.unwrap_or(rss), samples);
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        }
    });

    let clock = Instant::now();
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let token = env.token.clone();
        let (issued, aborted, client_errors, statuses, server_errors) = (
            issued.clone(),
            aborted.clone(),
            client_errors.clone(),
            statuses.clone(),
            server_errors.clone(),
        );
        // Each client sends its share, so a third of the requests are
        // aborted, whatever the answers' latency.
        let share = requests / CLIENTS + u64::from(client < requests % CLIENTS);
        clients.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (client + 1));
            let mut connection: Option<Keepalive> = None;
            for i in 0..share {
                let n = i * CLIENTS + client;
                let request = mixed(n, &token, client);
                if client < ABORTING {
                    // Cut before, during or after the handler's queries
                    // (an answer takes a few milliseconds here).
                    let pause = Duration::from_micros(rng.next() % 20_000);
                    if abort(port, &request, pause).await.is_ok() {
                        aborted.fetch_add(1, Ordering::Relaxed);
                    } else {
                        client_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    issued.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let mut answer = Err::<(u16, String), BoxError>("not sent".into());
                // One retry on a fresh connection: a kept-alive connection
                // may have been closed by the server between requests.
                for _ in 0..2 {
                    if connection.is_none() {
                        connection = Keepalive::connect(port).await.ok();
                    }
                    let Some(open) = connection.as_mut() else {
                        continue;
                    };
                    answer = open.send(&request).await;
                    if answer.is_ok() {
                        break;
                    }
                    connection = None;
                }
                match answer {
                    Ok((status, body)) => {
                        *statuses.lock().unwrap().entry(status).or_default() += 1;
                        let mut errors = server_errors.lock().unwrap();
                        if status >= 500 && errors.len() < 3 {
                            errors.push(format!("{status} {body}"));
                        }
                    }
                    Err(_) => {
                        client_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                issued.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for client in clients {
        client.await?;
    }
    let seconds = clock.elapsed().as_secs_f64();
    let (rss_warm_kib, samples) = sampler.await?;
    let rss_end_kib = rss_kib(pid);

    // Every request has answered or been cut; releases of cut requests run
    // in the background, so wait (bounded) until nothing is held.
    let deadline = Instant::now() + Duration::from_secs(20);
    let services = loop {
        let services = request_services(port).await?;
        let settled = !services.is_empty()
            && services
                .values()
                .all(|(acquired, released, held, _)| acquired == released && *held == 0);
        if settled || Instant::now() > deadline {
            break services;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let backends = |all: std::collections::HashMap<String, i64>| {
        all.get(Kind::Provision.application_name())
            .copied()
            .unwrap_or(0)
    };
    let backends_idle = backends(env.backends().await?);
    let warnings = warnings(&server.log());
    server.stop().await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let backends_after_stop = loop {
        let left = backends(env.backends().await?);
        if left == 0 || Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let statuses = statuses.lock().unwrap().clone();
    let server_errors = server_errors.lock().unwrap().clone();
    Ok(Soak {
        mode,
        requests,
        aborted: aborted.load(Ordering::SeqCst),
        seconds,
        statuses,
        client_errors: client_errors.load(Ordering::SeqCst),
        server_errors,
        warnings,
        rss_warm_kib,
        rss_end_kib,
        rss_min_kib: samples.iter().copied().min().unwrap_or(0),
        rss_max_kib: samples.iter().copied().max().unwrap_or(0),
        samples: samples.len(),
        services,
        backends_idle,
        backends_after_stop,
    })
}

/// Request `n` of the mix, as raw HTTP/1.1 (keep-alive).
fn mixed(n: u64, token: &str, client: u64) -> String {
    let (method, path, body) = match n % 10 {
        0 => ("GET", "/api/health".to_owned(), None),
        1 | 2 => (
            "GET",
            format!("/api/users?limit=20&offset={}", n % 5_000),
            None,
        ),
        3 | 4 => (
            "GET",
            format!("/api/users/{}", GET_ID + (n % 100) as i64),
            None,
        ),
        // Another tenant's user: a 404.
        5 => ("GET", format!("/api/users/{OUTSIDER_ID}"), None),
        6 => ("GET", "/api/scopes".to_owned(), None),
        7 => ("GET", "/api/orgs/1".to_owned(), None),
        _ => (
            "POST",
            "/api/users".to_owned(),
            Some(format!(
                r#"{{"name":"Soak {n}","email":"soak-{client}-{n}@bench.example"}}"#
            )),
        ),
    };
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n");
    if let Some(body) = &body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        head.push_str("\r\n");
    }
    head
}

/// One kept-alive connection (the telemetry demo's clients too).
pub(crate) struct Keepalive {
    stream: BufReader<TcpStream>,
}

impl Keepalive {
    pub(crate) async fn connect(port: u16) -> Result<Keepalive, BoxError> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Keepalive {
            stream: BufReader::new(stream),
        })
    }

    /// Sends `request` and reads the answer: its status and body.
    pub(crate) async fn send(&mut self, request: &str) -> Result<(u16, String), BoxError> {
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err("connection closed".into());
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("malformed status line")?;
        let mut length = None;
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err("connection closed in the head".into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let mut body = vec![0; length.ok_or("no content-length")?];
        self.stream.read_exact(&mut body).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// Sends `request` on a new connection, waits `pause`, and resets the
/// connection (`SO_LINGER` 0: an abort, and no `TIME_WAIT` socket left per
/// aborted request to exhaust the ephemeral ports).
pub(crate) async fn abort(port: u16, request: &str, pause: Duration) -> Result<(), BoxError> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(request.as_bytes()).await?;
    tokio::time::sleep(pause).await;
    // A zero linger does not block on close (the deprecation is about
    // non-zero ones): the kernel sends a reset at once.
    #[allow(deprecated)]
    stream.set_linger(Some(Duration::ZERO))?;
    drop(stream);
    Ok(())
}

/// The server's `WARN` and `ERROR` lines (it logs at `warn`), grouped by
/// message (level, target, text); the five most frequent.
fn warnings(log: &str) -> Vec<(String, usize)> {
    let mut seen = BTreeMap::<String, usize>::new();
    for line in log.lines() {
        if let Some((_, rest)) = line.split_once(' ')
            && (rest.trim_start().starts_with("WARN") || rest.trim_start().starts_with("ERROR"))
        {
            // Without the request span (its id differs on every line).
            let rest = rest.rsplit_once("}: ").map_or(rest, |(_, message)| message);
            *seen.entry(rest.trim().to_owned()).or_default() += 1;
        }
    }
    let mut seen: Vec<_> = seen.into_iter().collect();
    seen.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    seen.truncate(5);
    seen
}

/// `VmRSS` of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Per request service, from `/metrics`: (acquisitions, releases, held,
/// releases with the cancelled exit).
async fn request_services(port: u16) -> Result<BTreeMap<String, (u64, u64, i64, u64)>, BoxError> {
    let page = crate::http::request(port, "GET", "/metrics", &[], None).await?;
    let mut services = BTreeMap::<String, (u64, u64, i64, u64)>::new();
    for line in page.body.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let label = |name: &str| {
            let start = series.find(&format!("{name}=\""))? + name.len() + 2;
            let end = series[start..].find('"')? + start;
            Some(series[start..end].to_owned())
        };
        let (Some(service), name) = (label("service"), series.split('{').next().unwrap_or(""))
        else {
            continue;
        };
        if name == "provision_service_acquisitions_total"
            && label("lifetime").as_deref() == Some("request")
        {
            services.entry(service).or_default().0 = value as u64;
        } else if name == "provision_service_held"
            && label("lifetime").as_deref() == Some("request")
        {
            services.entry(service).or_default().2 = value as i64;
        } else if name == "provision_service_releases_total" {
            // App services release once, at shutdown: not counted here.
            if let Some(entry) = services.get_mut(&service) {
                entry.1 += value as u64;
                if label("exit").as_deref() == Some("cancelled") {
                    entry.3 += value as u64;
                }
            }
        }
    }
    Ok(services)
}

/// xorshift64: pauses that differ per request, with no dependency.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `bench-runner --soak [--requests N] [--mode M]...`: exit 0 only if every
/// mode passed.
pub fn main(args: &[String], started: Instant) -> std::process::ExitCode {
    crate::block_on(run(&crate::workspace_root(), args, started))
}
