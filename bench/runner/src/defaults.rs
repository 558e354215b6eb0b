//! The default configuration, as a new user first runs it: `cloud-api
//! serve` with no `RUST_LOG` (so an access log line per request at `info`)
//! and its embedded SQLite database, against the same binary with logging
//! off (`RUST_LOG=off`), on health at c = 32, alternating. The load matrix
//! runs every server at `warn` and would never see what the log costs.
//!
//! The log goes to a file (as `cloud-api serve 2>>cloud-api.log` or a
//! service manager's log file would take it); after the runs the server is
//! stopped with SIGTERM and the file's access lines are counted, so the
//! report shows the log was on and complete.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde::Serialize;

use crate::load::{self, Endpoint, Run};
use crate::servers::{Kind, Mode, Server, free_port};
use crate::setup::Env;
use crate::tools::release_binary;
use crate::{BoxError, Plan, say};

/// The cell's concurrency (the issue's).
pub const CONCURRENCY: u32 = 32;

/// Both sides of the cell.
#[derive(Debug, Clone, Serialize)]
pub struct Defaults {
    /// `cloud-api serve` at its defaults, per alternation.
    pub default_runs: Vec<Run>,
    /// The same with `RUST_LOG=off`, per alternation.
    pub off_runs: Vec<Run>,
    /// Access log lines (`answered`) the default server wrote in all
    /// (warm-ups included), counted after it stopped.
    pub access_lines: u64,
    /// Requests wrk counted in the default server's measured runs.
    pub measured_requests: u64,
    /// The exact command lines.
    pub commands: Vec<String>,
}

impl Defaults {
    /// Median over the alternations of default ÷ logging off.
    pub fn ratio(&self, f: fn(&Run) -> f64) -> f64 {
        crate::report::median(
            &self
                .default_runs
                .iter()
                .zip(&self.off_runs)
                .map(|(d, o)| f(d) / f(o))
                .collect::<Vec<_>>(),
        )
    }
}

async fn start(root: &Path, tmp: &Path, label: &str, log_off: bool) -> Result<Server, BoxError> {
    let port = free_port()?;
    // Its own working directory: the default database is `data/` there.
    let dir = tmp.join(format!("defaults-{label}"));
    std::fs::create_dir_all(&dir)?;
    let mut command = Command::new(release_binary(root, Kind::Provision.binary()));
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(&dir);
    for name in [
        "RUST_LOG",
        "DATABASE_URL",
        "DATA_DIR",
        "DB_MODE",
        "POOL_SIZE",
    ] {
        command.env_remove(name);
    }
    if log_off {
        command.env("RUST_LOG", "off");
    }
    let log = tmp.join(format!("defaults-{label}.log"));
    Server::launch(Kind::Provision, Mode::Pool, port, command, log).await
}

/// Measures the cell: `plan.rounds` alternations, default first.
pub async fn run(
    env: &Env,
    root: &Path,
    tmp: &Path,
    plan: &Plan,
    started: Instant,
) -> Result<Defaults, BoxError> {
    let default = start(root, tmp, "default", false).await?;
    let off = start(root, tmp, "off", true).await?;
    let (mut default_runs, mut off_runs) = (Vec::new(), Vec::new());
    for round in 0..plan.rounds {
        for (server, runs, label) in [
            (&default, &mut default_runs, "defaults"),
            (&off, &mut off_runs, "log off"),
        ] {
            let run = load::measure(
                env,
                root,
                plan,
                server,
                Endpoint::Health,
                CONCURRENCY,
                round,
            )
            .await?;
            say(started, format!("{label:<9} {}", run.summary()));
            runs.push(run);
        }
    }
    let log_path = tmp.join("defaults-default.log");
    default.stop().await?;
    off.stop().await?;
    let access_lines = std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("answered"))
        .count() as u64;
    let measured_requests = default_runs.iter().map(|r: &Run| r.requests).sum();
    Ok(Defaults {
        default_runs,
        off_runs,
        access_lines,
        measured_requests,
        commands: command_lines(),
    })
}

/// The exact command lines, for the report.
pub fn command_lines() -> Vec<String> {
    vec![
        "target/release/cloud-api serve --listen 127.0.0.1:PORT 2>>defaults-default.log   (no RUST_LOG: info, an access line per request; embedded SQLite in ./data)".into(),
        "RUST_LOG=off target/release/cloud-api serve --listen 127.0.0.1:PORT".into(),
    ]
}

/// The RESULTS.md section and the target's figure.
pub fn markdown(md: &mut String, defaults: &Defaults) {
    use std::fmt::Write as _;
    let median = crate::report::median;
    let m = |runs: &[Run], f: fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    let _ = writeln!(md, "## The default configuration\n");
    let _ = writeln!(
        md,
        "`cloud-api serve` as a new user first runs it (no `RUST_LOG`: `info`, one access log line per \
         request, to stderr, here a file; the embedded SQLite database) against the same binary with \
         `RUST_LOG=off`, `GET /api/health` at c = {CONCURRENCY}, alternating ({} alternations). \
         The access log stayed on: {} `answered` lines written for {} requests measured (warm-ups \
         are logged too).\n",
        defaults.default_runs.len(),
        defaults.access_lines,
        defaults.measured_requests
    );
    let _ = writeln!(
        md,
        "| | defaults | logging off | defaults ÷ off (median over alternations) |\n|---|--:|--:|--:|"
    );
    let (d, o) = (&defaults.default_runs, &defaults.off_runs);
    let _ = writeln!(
        md,
        "| requests per second | {:.0} | {:.0} | **{:.3}** |",
        m(d, |r| r.rps),
        m(o, |r| r.rps),
        defaults.ratio(|r| r.rps)
    );
    let _ = writeln!(
        md,
        "| server CPU per request | {:.1} µs | {:.1} µs | {:.3} |",
        m(d, |r| r.cpu_us_per_request),
        m(o, |r| r.cpu_us_per_request),
        defaults.ratio(|r| r.cpu_us_per_request)
    );
    let _ = writeln!(
        md,
        "| p99 latency | {:.2} ms | {:.2} ms | {:.3} |\n",
        m(d, |r| r.p99_us) / 1000.0,
        m(o, |r| r.p99_us) / 1000.0,
        defaults.ratio(|r| r.p99_us)
    );
}
