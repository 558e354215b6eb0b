//! HTTP load: wrk against each server, alternating baseline, provision
//! and (every `plan.effect_every`-th round) the Effect server round by
//! round, with connection counts from the servers' metrics and from
//! PostgreSQL, and each server's peak memory.

use std::fmt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::servers::{Kind, Mode, Server};
use crate::setup::{Env, GET_ID, OUTSIDER_ID, SEED_USERS};
use crate::{BoxError, Plan, say};

/// The endpoints measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Endpoint {
    Health,
    UsersList,
    UserGet,
    UserCreate,
}

impl Endpoint {
    pub const ALL: [Endpoint; 4] = [
        Endpoint::Health,
        Endpoint::UsersList,
        Endpoint::UserGet,
        Endpoint::UserCreate,
    ];
    /// The ones that touch the database.
    pub const DATABASE: [Endpoint; 3] =
        [Endpoint::UsersList, Endpoint::UserGet, Endpoint::UserCreate];

    /// `GET /api/users?limit=10` and so on.
    pub fn request(self) -> String {
        match self {
            Endpoint::Health => "GET /api/health".into(),
            Endpoint::UsersList => "GET /api/users?limit=10".into(),
            Endpoint::UserGet => format!("GET /api/users/{GET_ID}"),
            Endpoint::UserCreate => "POST /api/users".into(),
        }
    }

    fn path(self) -> String {
        self.request()
            .split_once(' ')
            .map(|(_, p)| p.to_owned())
            .unwrap_or_default()
    }

    fn script(self) -> &'static str {
        match self {
            Endpoint::UserCreate => "bench/wrk/post_user.lua",
            _ => "bench/wrk/get.lua",
        }
    }

    /// The pgbench script with the same SQL.
    pub fn pgbench_script(self) -> Option<&'static str> {
        match self {
            Endpoint::Health => None,
            Endpoint::UsersList => Some("bench/pgbench/users_list.sql"),
            Endpoint::UserGet => Some("bench/pgbench/users_get.sql"),
            Endpoint::UserCreate => Some("bench/pgbench/users_create.sql"),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Endpoint::Health => "health",
            Endpoint::UsersList => "users list",
            Endpoint::UserGet => "user by id",
            Endpoint::UserCreate => "user create",
        })
    }
}

/// One measured wrk run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub mode: Mode,
    pub endpoint: Endpoint,
    pub concurrency: u32,
    pub server: Kind,
    pub round: usize,
    pub requests: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
    /// Non-2xx answers, connect/read/write errors and timeouts.
    pub errors: u64,
    /// `pg_stat_database.sessions` during the run.
    pub sessions_opened: i64,
    /// The server's `db_connections_opened_total` during the run.
    pub metric_connections_opened: Option<u64>,
    /// Most client backends of this server seen at once (sampled every 100 ms).
    pub peak_backends: i64,
    /// The server's CPU time per answered request, microseconds.
    pub cpu_us_per_request: f64,
}

impl Run {
    /// One progress line.
    pub fn summary(&self) -> String {
        format!(
            "{:<11} {:<11} c={:<3} #{} {:<9} {:>8.0} rps  {:>6.1} us CPU/req  p50 {:>7.0} us  p99 {:>7.0} us  sessions {:>5}{}",
            self.mode,
            self.endpoint,
            self.concurrency,
            self.round,
            self.server.label(),
            self.rps,
            self.cpu_us_per_request,
            self.p50_us,
            self.p99_us,
            self.sessions_opened,
            if self.errors > 0 {
                format!("  ERRORS {}", self.errors)
            } else {
                String::new()
            }
        )
    }
}

/// Peak memory of one server over one mode's runs.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    pub server: Kind,
    pub mode: Mode,
    /// `VmRSS` once ready, before any load.
    pub idle_rss_kib: u64,
    /// `VmHWM` after all of the mode's runs.
    pub peak_rss_kib: u64,
}

/// Do both servers answer the users contract the same way?
#[derive(Debug, Clone, Default, Serialize)]
pub struct Contract {
    pub checks: usize,
    pub identical: usize,
    pub differences: Vec<String>,
}

pub struct LoadResult {
    pub contract: Contract,
    /// The same check, baseline against the Effect server.
    pub effect_contract: Option<Contract>,
    pub runs: Vec<Run>,
    pub memory: Vec<Memory>,
}

/// The whole load matrix.
pub async fn run(
    env: &Env,
    root: &Path,
    tmp: &Path,
    plan: &Plan,
    started: Instant,
) -> Result<LoadResult, BoxError> {
    let mut runs = Vec::new();
    let mut memory = Vec::new();
    let mut contract = Contract::default();
    let mut effect_contract = None;
    for &mode in &plan.modes {
        let baseline = Server::start(root, tmp, Kind::Baseline, mode, &env.url).await?;
        let provision = Server::start(root, tmp, Kind::Provision, mode, &env.url).await?;
        // The source documents' own stack, in the same alternations.
        let effect = match plan.skip_effect {
            false => Some(crate::effect::start(root, tmp, mode, &env.url).await?),
            true => None,
        };
        let idle = [baseline.memory_kib().0, provision.memory_kib().0];
        let effect_idle = effect.as_ref().map_or(0, |e| e.memory_kib().0);
        if mode == Mode::Pool {
            contract = check_contract(env, &baseline, &provision).await?;
            say(
                started,
                format!(
                    "contract check: {}/{} answers identical",
                    contract.identical, contract.checks
                ),
            );
            for difference in &contract.differences {
                eprintln!("  difference: {difference}");
            }
            if let Some(effect) = &effect {
                let checked = check_contract(env, &baseline, effect).await?;
                say(
                    started,
                    format!(
                        "contract check, Effect: {}/{} answers identical",
                        checked.identical, checked.checks
                    ),
                );
                for difference in &checked.differences {
                    eprintln!("  difference: {difference}");
                }
                effect_contract = Some(checked);
            }
            env.reset_users().await?;
        }
        for &endpoint in &plan.endpoints {
            for &concurrency in &plan.concurrency {
                for round in 0..plan.rounds {
                    let effect = effect
                        .as_ref()
                        .filter(|_| round.is_multiple_of(plan.effect_every.max(1)));
                    for server in [Some(&baseline), Some(&provision), effect]
                        .into_iter()
                        .flatten()
                    {
                        let run =
                            measure(env, root, plan, server, endpoint, concurrency, round).await?;
                        say(started, run.summary());
                        runs.push(run);
                    }
                }
                if endpoint == Endpoint::UserCreate {
                    env.reset_users().await?;
                }
            }
        }
        let effect_memory = effect.as_ref().map(|e| (e, effect_idle));
        for (server, idle) in [(&baseline, idle[0]), (&provision, idle[1])]
            .into_iter()
            .chain(effect_memory)
        {
            memory.push(Memory {
                server: server.kind,
                mode,
                idle_rss_kib: idle,
                peak_rss_kib: server.memory_kib().1,
            });
            let log = server.log();
            if !log.trim().is_empty() {
                eprintln!(
                    "{} ({mode}) logged:\n{}",
                    server.kind.binary(),
                    log.lines().take(20).collect::<Vec<_>>().join("\n")
                );
            }
        }
        baseline.stop().await?;
        provision.stop().await?;
        if let Some(effect) = effect {
            effect.stop().await?;
        }
    }
    Ok(LoadResult {
        contract,
        effect_contract,
        runs,
        memory,
    })
}

/// Output of one wrk invocation (its `WRKJSON` line).
struct Wrk {
    requests: u64,
    seconds: f64,
    errors: u64,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
    mean: f64,
}

fn wrk_command(
    root: &Path,
    server: &Server,
    env: &Env,
    endpoint: Endpoint,
    concurrency: u32,
    seconds: u32,
    nonce: &str,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("wrk");
    command
        .current_dir(root)
        .arg(format!("-t{}", concurrency.min(2)))
        .arg(format!("-c{concurrency}"))
        .arg(format!("-d{seconds}s"))
        .args(["--timeout", "10s", "-s", endpoint.script()])
        .arg(format!(
            "http://127.0.0.1:{}{}",
            server.port,
            endpoint.path()
        ))
        .arg("--");
    match endpoint {
        Endpoint::Health => {
            command.arg("-");
        }
        Endpoint::UserCreate => {
            command.args([env.token.as_str(), nonce]);
        }
        _ => {
            command.arg(&env.token);
        }
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn parse_wrk(stdout: &str) -> Result<Wrk, BoxError> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WRKJSON "))
        .ok_or_else(|| format!("wrk printed no summary: {stdout}"))?;
    let v: serde_json::Value = serde_json::from_str(line)?;
    let n = |k: &str| v[k].as_f64().unwrap_or(0.0);
    Ok(Wrk {
        requests: n("requests") as u64,
        seconds: n("duration_us") / 1e6,
        errors: (n("errors_connect")
            + n("errors_read")
            + n("errors_write")
            + n("errors_status")
            + n("errors_timeout")) as u64,
        p50: n("p50_us"),
        p90: n("p90_us"),
        p99: n("p99_us"),
        p999: n("p999_us"),
        max: n("max_us"),
        mean: n("mean_us"),
    })
}

/// Warm-up, then one measured run with connection accounting: wrk against
/// `server` (any `Kind`, the Worker in workerd too), PostgreSQL's session
/// count and the server's backends during the run, its CPU time and its
/// `db_connections_opened_total`.
pub async fn measure(
    env: &Env,
    root: &Path,
    plan: &Plan,
    server: &Server,
    endpoint: Endpoint,
    concurrency: u32,
    round: usize,
) -> Result<Run, BoxError> {
    let nonce = format!(
        "{}{}c{concurrency}r{round}",
        &server.mode.flag()[..2],
        &server.kind.label()[..1]
    );
    let warm = wrk_command(
        root,
        server,
        env,
        endpoint,
        concurrency,
        plan.warmup_s,
        &format!("{nonce}w"),
    )
    .output()
    .await?;
    if !warm.status.success() {
        return Err(format!(
            "wrk failed: {}",
            String::from_utf8_lossy(&warm.stderr).trim_end()
        )
        .into());
    }

    server.until_idle().await;

    let app = server.kind.application_name();
    let sessions_before = env.sessions().await?;
    let metric_before = server.connections_metric().await;
    let mut peak = env.backends().await?.get(app).copied().unwrap_or(0);
    let cpu_before = server.cpu_ns();
    let child = wrk_command(
        root,
        server,
        env,
        endpoint,
        concurrency,
        plan.duration_s,
        &nonce,
    )
    .spawn()?;
    let wait = child.wait_with_output();
    tokio::pin!(wait);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let output = loop {
        tokio::select! {
            output = &mut wait => break output?,
            _ = tick.tick() => {
                let now = env.backends().await?.get(app).copied().unwrap_or(0);
                peak = peak.max(now);
            }
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "wrk failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        )
        .into());
    }
    let cpu_ns = server.cpu_ns().saturating_sub(cpu_before);
    let wrk = parse_wrk(&stdout)?;
    // Backends that just closed report their session when they exit.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let sessions_after = env.sessions().await?;
    let metric_after = server.connections_metric().await;
    Ok(Run {
        mode: server.mode,
        endpoint,
        concurrency,
        server: server.kind,
        round,
        requests: wrk.requests,
        seconds: wrk.seconds,
        rps: wrk.requests as f64 / wrk.seconds.max(1e-9),
        p50_us: wrk.p50,
        p90_us: wrk.p90,
        p99_us: wrk.p99,
        p999_us: wrk.p999,
        max_us: wrk.max,
        mean_us: wrk.mean,
        errors: wrk.errors,
        sessions_opened: sessions_after - sessions_before,
        metric_connections_opened: match (metric_before, metric_after) {
            (Some(before), Some(after)) => Some(after.saturating_sub(before)),
            _ => None,
        },
        peak_backends: peak,
        // No request answered (latency beyond the run): no figure (`null`).
        cpu_us_per_request: if wrk.requests == 0 {
            f64::NAN
        } else {
            cpu_ns as f64 / 1000.0 / wrk.requests as f64
        },
    })
}

/// Sends the same requests to the baseline and to `other` (provision or
/// the Effect server) and compares status, content type and body (for a
/// created user: everything but the id and time).
async fn check_contract(
    env: &Env,
    baseline: &Server,
    other: &Server,
) -> Result<Contract, BoxError> {
    let bearer = format!("Bearer {}", env.token);
    let auth: &[(&str, &str)] = &[("Authorization", bearer.as_str())];
    let json_auth: &[(&str, &str)] = &[
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let bad_token = format!("Bearer pv_{}_{}", env.token_id, "0".repeat(64));
    let bad_auth: &[(&str, &str)] = &[("Authorization", bad_token.as_str())];
    let get_path = format!("/api/users/{GET_ID}");
    let missing_path = format!("/api/users/{}", SEED_USERS * 1000);
    type Case<'a> = (
        &'a str,
        &'a str,
        String,
        &'a [(&'a str, &'a str)],
        Option<String>,
    );
    let cases: Vec<Case<'_>> = vec![
        ("health", "GET", "/api/health".into(), &[], None),
        ("list", "GET", "/api/users?limit=10".into(), auth, None),
        (
            "list offset",
            "GET",
            "/api/users?limit=3&offset=9998".into(),
            auth,
            None,
        ),
        (
            "list past end",
            "GET",
            "/api/users?limit=3&offset=99999".into(),
            auth,
            None,
        ),
        (
            "list bad limit",
            "GET",
            "/api/users?limit=0".into(),
            auth,
            None,
        ),
        (
            "list bad query",
            "GET",
            "/api/users?limit=x".into(),
            auth,
            None,
        ),
        ("get", "GET", get_path.clone(), auth, None),
        ("get missing", "GET", missing_path, auth, None),
        (
            "get another tenant's user",
            "GET",
            format!("/api/users/{OUTSIDER_ID}"),
            auth,
            None,
        ),
        (
            "get non-integer",
            "GET",
            "/api/users/abc".into(),
            auth,
            None,
        ),
        ("no token", "GET", get_path.clone(), &[], None),
        ("bad token", "GET", get_path.clone(), bad_auth, None),
        (
            "create bad json",
            "POST",
            "/api/users".into(),
            json_auth,
            Some("{\"name\":".into()),
        ),
        (
            "create missing field",
            "POST",
            "/api/users".into(),
            json_auth,
            Some("{\"name\":\"A\"}".into()),
        ),
        (
            "create bad email",
            "POST",
            "/api/users".into(),
            json_auth,
            Some("{\"name\":\"A\",\"email\":\"nope\"}".into()),
        ),
        (
            "create duplicate",
            "POST",
            "/api/users".into(),
            json_auth,
            Some("{\"name\":\"A\",\"email\":\"user7@bench.example\"}".into()),
        ),
        ("no route", "GET", "/api/nothing".into(), &[], None),
    ];
    let mut contract = Contract::default();
    for (name, method, path, headers, body) in &cases {
        let b = crate::http::request(baseline.port, method, path, headers, body.as_deref()).await?;
        let p = crate::http::request(other.port, method, path, headers, body.as_deref()).await?;
        contract.checks += 1;
        if (b.status, &b.content_type, &b.body) == (p.status, &p.content_type, &p.body) {
            contract.identical += 1;
        } else {
            contract.differences.push(format!(
                "{name} ({method} {path}): baseline {} {} {:?}, {} {} {} {:?}",
                b.status,
                b.content_type,
                b.body,
                other.kind.label(),
                p.status,
                p.content_type,
                p.body
            ));
        }
    }
    // Creating: the same answer but for the id and the time.
    let mut created = Vec::new();
    // Unique per check: the baseline creates one user per check.
    let (baseline_email, other_email) = (
        format!("contract-baseline-{}@bench.example", other.kind.label()),
        format!("contract-{}@bench.example", other.kind.label()),
    );
    for (server, email) in [(baseline, &baseline_email), (other, &other_email)] {
        let body = format!("{{\"name\":\"Contract\",\"email\":\"{email}\"}}");
        let r =
            crate::http::request(server.port, "POST", "/api/users", json_auth, Some(&body)).await?;
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        let keys: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        created.push((r.status, r.content_type, keys, v["name"].clone()));
    }
    contract.checks += 1;
    if created[0] == created[1] && created[0].0 == 201 {
        contract.identical += 1;
    } else {
        contract.differences.push(format!(
            "create: baseline {:?}, {} {:?}",
            created[0],
            other.kind.label(),
            created[1]
        ));
    }
    Ok(contract)
}
