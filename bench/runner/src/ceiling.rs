//! The database's own ceiling: pgbench running each endpoint's SQL
//! (`bench/pgbench/*.sql`, statement for statement what the servers send)
//! at the same concurrency, over the same loopback TCP. Pool mode is
//! pgbench with persistent connections; per-request mode is `pgbench -C`
//! (a new connection for every transaction).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::Serialize;

use crate::load::Endpoint;
use crate::servers::Mode;
use crate::setup::{Env, GET_ID};
use crate::tools::output;
use crate::{BoxError, Plan, say};

/// One pgbench run.
#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    pub mode: Mode,
    pub endpoint: Endpoint,
    pub concurrency: u32,
    /// Transactions (= one endpoint's SQL) per second.
    pub tps: f64,
    pub latency_avg_ms: f64,
    pub failed: u64,
}

/// The `to_char` format both servers render `created_at` with; a pgbench
/// variable because pgbench would read `:MI` in a literal as one.
const TIMESTAMP_FORMAT: &str = "YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"";

/// The pgbench binary beside the cluster's server.
pub fn pgbench(env: &Env) -> PathBuf {
    let beside = env.cluster.bin_dir().join("pgbench");
    if beside.exists() {
        beside
    } else {
        PathBuf::from("pgbench")
    }
}

/// The command line (without the script), for the report.
pub fn command_line(mode: Mode) -> String {
    format!(
        "pgbench -n -M extended{} -c C -j min(C,2) -T SECONDS -D token_id=ID -D user_id=1 -D get_id={GET_ID} -D fmt='YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"' -f bench/pgbench/<endpoint>.sql -h 127.0.0.1 -p PGPORT -U postgres DB",
        if mode == Mode::PerRequest { " -C" } else { "" }
    )
}

/// Runs pgbench once and reads its summary.
pub fn pgbench_run(
    env: &Env,
    root: &Path,
    script: &str,
    concurrency: u32,
    seconds: u32,
    connect_each: bool,
    user: Option<(&str, &str)>,
) -> Result<(f64, f64, u64), BoxError> {
    let mut command = Command::new(pgbench(env));
    command
        .current_dir(root)
        .args(["-n", "-M", "extended"])
        .arg(format!("-c{concurrency}"))
        .arg(format!("-j{}", concurrency.min(2)))
        .arg(format!("-T{seconds}"))
        .arg("-D")
        .arg(format!("token_id={}", env.token_id))
        .arg("-D")
        .arg(format!("user_id={}", env.user_id))
        .arg("-D")
        .arg(format!("get_id={GET_ID}"))
        .arg("-D")
        .arg(format!("fmt={TIMESTAMP_FORMAT}"))
        .args(["-f", script, "-h", "127.0.0.1"])
        .arg("-p")
        .arg(env.cluster.port().to_string())
        .env_remove("PGPASSWORD");
    if connect_each {
        command.arg("-C");
    }
    match user {
        Some((name, password)) => {
            command.args(["-U", name]).env("PGPASSWORD", password);
        }
        None => {
            command.args(["-U", "postgres"]);
        }
    }
    command.arg(&env.db);
    let stdout = output(&mut command)?;
    let number = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
    };
    let tps = number("tps = ").ok_or_else(|| format!("pgbench printed no tps: {stdout}"))?;
    let latency = number("latency average = ").unwrap_or(0.0);
    let failed = number("number of failed transactions: ").unwrap_or(0.0) as u64;
    Ok((tps, latency, failed))
}

/// Every endpoint that touches the database, both modes, every concurrency.
pub async fn run(
    env: &Env,
    root: &Path,
    plan: &Plan,
    started: Instant,
) -> Result<Vec<Ceiling>, BoxError> {
    let mut results = Vec::new();
    for &mode in &plan.modes {
        for endpoint in Endpoint::DATABASE {
            if !plan.endpoints.contains(&endpoint) {
                continue;
            }
            let script = endpoint
                .pgbench_script()
                .expect("database endpoints have one");
            for &concurrency in &plan.concurrency {
                let (tps, latency_avg_ms, failed) = pgbench_run(
                    env,
                    root,
                    script,
                    concurrency,
                    plan.pgbench_s,
                    mode == Mode::PerRequest,
                    None,
                )?;
                say(
                    started,
                    format!("pgbench {mode:<11} {endpoint:<11} c={concurrency:<3} {tps:>8.0} tps"),
                );
                results.push(Ceiling {
                    mode,
                    endpoint,
                    concurrency,
                    tps,
                    latency_avg_ms,
                    failed,
                });
                if endpoint == Endpoint::UserCreate {
                    env.reset_users().await?;
                }
            }
        }
    }
    Ok(results)
}
