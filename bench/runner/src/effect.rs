//! The source documents' own stack, side by side: `bench/effect`, the same
//! users contract written with Effect (`@effect/platform`'s HttpApi,
//! `@effect/sql-pg`, the database provided per request only to the handlers
//! that need it, through a scoped layer, as the second source document
//! proposes), on Node.js from the machine's packages.
//!
//! * Install (before anything is measured): `node` and `npm` must be on
//!   the `PATH` (else the runner stops and says how to get them); then
//!   `npm ci --ignore-scripts` from the committed, exact-pinned
//!   `package-lock.json` into `bench/effect/node_modules` (skipped when that
//!   lockfile is already what is installed).
//! * Serve: `node bench/effect/server.mjs` with the same flags, database,
//!   pool size and mode as the Rust servers.
//! * Measure: in `load::run`, a third server in the alternations
//!   (baseline, provision, Effect, ...; every second alternation, to stay
//!   within 25 minutes, `--quick` within 4), the same wrk runs; the report
//!   gives provision ÷ Effect (provision's run of the same alternation) for
//!   throughput, p99, CPU per request and RSS.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

use crate::load::{Contract, Endpoint, Memory, Run};
use crate::servers::{Kind, Mode, POOL_SIZE, Server, free_port};
use crate::{BoxError, say};

/// The Effect server's directory, from the workspace root.
pub const DIR: &str = "bench/effect";
/// What installs Node.js and npm on the project's machine (Debian).
pub const NODE_INSTALL: &str = "apt-get install -y nodejs npm";
/// The copy of the lockfile `npm ci` last installed, inside `node_modules`.
const INSTALLED_LOCK: &str = "node_modules/.bench-installed-package-lock.json";

/// What runs the Effect server: Node.js, npm and the pinned packages.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Install {
    pub node: String,
    pub npm: String,
    /// `(package, exact version)` from `package.json`.
    pub packages: Vec<(String, String)>,
    /// `npm ci` ran (else the installed tree already matched the lockfile).
    pub installed: bool,
    pub seconds: f64,
}

fn version_of(tool: &str) -> Option<String> {
    let output = Command::new(tool).arg("--version").output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Checks for Node.js and npm and installs the pinned packages.
pub fn install(root: &Path, started: Instant) -> Result<Install, BoxError> {
    let begun = Instant::now();
    let missing = |tool: &str| {
        format!(
            "the Effect server (bench/effect) needs {tool}, which is not on the PATH; \
             install Node.js (>= 20.18) and npm: sudo sh -c '{NODE_INSTALL}', or leave it out with --skip-effect"
        )
    };
    let node = version_of("node").ok_or_else(|| missing("node"))?;
    let npm = version_of("npm").ok_or_else(|| missing("npm"))?;
    let dir = root.join(DIR);
    let lock = std::fs::read(dir.join("package-lock.json"))
        .map_err(|e| format!("{DIR}/package-lock.json: {e}"))?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("package.json"))?)?;
    let packages = manifest["dependencies"]
        .as_object()
        .map(|deps| {
            deps.iter()
                .map(|(name, v)| (name.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let installed_lock = std::fs::read(dir.join(INSTALLED_LOCK)).ok();
    let installed = installed_lock.as_deref() != Some(lock.as_slice());
    if installed {
        say(
            started,
            format!("npm ci --ignore-scripts in {DIR} (node {node}, npm {npm})"),
        );
        // No install scripts: the packages that have one only build
        // optional native accelerators the server does not use.
        let output = Command::new("npm")
            .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            return Err(format!(
                "npm ci in {DIR} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            )
            .into());
        }
        std::fs::write(dir.join(INSTALLED_LOCK), &lock)?;
    }
    Ok(Install {
        node,
        npm,
        packages,
        installed,
        seconds: begun.elapsed().as_secs_f64(),
    })
}

fn script(root: &Path) -> PathBuf {
    root.join(DIR).join("server.mjs")
}

/// The exact command line, for the report.
pub fn command_line(mode: Mode) -> String {
    format!(
        "node {DIR}/server.mjs --listen 127.0.0.1:PORT --database-url postgres://postgres@127.0.0.1:PGPORT/DB --db-mode {} --pool-size {POOL_SIZE}",
        mode.flag()
    )
}

/// Starts the Effect server in `mode` and waits until health answers.
pub async fn start(root: &Path, tmp: &Path, mode: Mode, url: &str) -> Result<Server, BoxError> {
    let port = free_port()?;
    let log = tmp.join(format!("effect-{}.log", mode.flag()));
    let mut command = Command::new("node");
    command
        .arg(script(root))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--database-url", url])
        .args(["--db-mode", mode.flag()])
        .args(["--pool-size", &POOL_SIZE.to_string()])
        .current_dir(root.join(DIR))
        .env("NODE_ENV", "production");
    Server::launch(Kind::Effect, mode, port, command, log).await
}

/// provision ÷ Effect in one (mode, endpoint, concurrency) cell.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub mode: Mode,
    pub endpoint: Endpoint,
    pub concurrency: u32,
    pub rounds: usize,
    pub effect_rps: f64,
    pub provision_rps: f64,
    pub effect_p99_us: f64,
    pub provision_p99_us: f64,
    pub effect_cpu_us: f64,
    pub provision_cpu_us: f64,
    pub effect_errors: u64,
    /// Medians over the alternations of provision ÷ Effect.
    pub rps_ratio: f64,
    pub p99_ratio: f64,
    pub cpu_ratio: f64,
}

/// The cells measured with all three servers.
pub fn cells(runs: &[Run]) -> Vec<Cell> {
    let mut keys: Vec<(Mode, Endpoint, u32)> = Vec::new();
    for r in runs.iter().filter(|r| r.server == Kind::Effect) {
        if !keys.contains(&(r.mode, r.endpoint, r.concurrency)) {
            keys.push((r.mode, r.endpoint, r.concurrency));
        }
    }
    let median = crate::report::median;
    keys.into_iter()
        .filter_map(|(mode, endpoint, concurrency)| {
            let of = |kind: Kind| -> Vec<&Run> {
                let mut v: Vec<&Run> = runs
                    .iter()
                    .filter(|r| {
                        r.server == kind
                            && r.mode == mode
                            && r.endpoint == endpoint
                            && r.concurrency == concurrency
                    })
                    .collect();
                v.sort_by_key(|r| r.round);
                v
            };
            // Provision's runs from the rounds the Effect server ran in.
            let e = of(Kind::Effect);
            let p: Vec<&Run> = of(Kind::Provision)
                .into_iter()
                .filter(|p| e.iter().any(|e| e.round == p.round))
                .collect();
            if p.is_empty() || p.len() != e.len() {
                return None;
            }
            let m = |runs: &[&Run], f: fn(&Run) -> f64| {
                median(&runs.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            let ratio = |f: fn(&Run) -> f64| {
                median(
                    &p.iter()
                        .zip(&e)
                        .map(|(p, e)| f(p) / f(e))
                        .collect::<Vec<_>>(),
                )
            };
            Some(Cell {
                mode,
                endpoint,
                concurrency,
                rounds: e.len(),
                effect_rps: m(&e, |r| r.rps),
                provision_rps: m(&p, |r| r.rps),
                effect_p99_us: m(&e, |r| r.p99_us),
                provision_p99_us: m(&p, |r| r.p99_us),
                effect_cpu_us: m(&e, |r| r.cpu_us_per_request),
                provision_cpu_us: m(&p, |r| r.cpu_us_per_request),
                effect_errors: e.iter().map(|r| r.errors).sum(),
                rps_ratio: ratio(|r| r.rps),
                p99_ratio: ratio(|r| r.p99_us),
                cpu_ratio: ratio(|r| r.cpu_us_per_request),
            })
        })
        .collect()
}

fn rss(memory: &[Memory], kind: Kind, mode: Mode) -> Option<&Memory> {
    memory.iter().find(|m| m.server == kind && m.mode == mode)
}

/// One line for the README's performance section and the targets table:
/// the median over cells of each provision ÷ Effect ratio.
pub fn summary(cells: &[Cell], memory: &[Memory]) -> Option<String> {
    if cells.is_empty() {
        return None;
    }
    let median = crate::report::median;
    let of = |f: fn(&Cell) -> f64| {
        let v: Vec<f64> = cells.iter().map(f).collect();
        (
            median(&v),
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        )
    };
    let (rps, rps_min, rps_max) = of(|c| c.rps_ratio);
    let (p99, p99_min, p99_max) = of(|c| c.p99_ratio);
    let (cpu, cpu_min, cpu_max) = of(|c| c.cpu_ratio);
    let rss: Vec<String> = Mode::ALL
        .iter()
        .filter_map(|&mode| {
            let (p, e) = (
                rss(memory, Kind::Provision, mode)?,
                rss(memory, Kind::Effect, mode)?,
            );
            Some(format!(
                "{mode} {:.2} ({:.0} / {:.0} MiB)",
                p.peak_rss_kib as f64 / e.peak_rss_kib as f64,
                p.peak_rss_kib as f64 / 1024.0,
                e.peak_rss_kib as f64 / 1024.0
            ))
        })
        .collect();
    Some(format!(
        "provision ÷ Effect, median over {} cells (min-max): throughput {rps:.2}x ({rps_min:.2}-{rps_max:.2}), \
         p99 {p99:.2}x ({p99_min:.2}-{p99_max:.2}), CPU per request {cpu:.2}x ({cpu_min:.2}-{cpu_max:.2}); peak RSS {}",
        cells.len(),
        rss.join(", ")
    ))
}

fn us(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

/// The RESULTS.md section.
pub fn markdown(
    md: &mut String,
    install: Option<&Install>,
    cells: &[Cell],
    memory: &[Memory],
    contract: Option<&Contract>,
) {
    let _ = writeln!(
        md,
        "## The source documents' own stack: Effect on Node.js\n"
    );
    let Some(install) = install else {
        let _ = writeln!(md, "Not run (`--skip-effect`).\n");
        return;
    };
    let packages: Vec<String> = install
        .packages
        .iter()
        .map(|(n, v)| format!("{n} {v}"))
        .collect();
    let _ = writeln!(
        md,
        "`bench/effect/server.mjs`: the same contract and SQL with `@effect/platform`'s HttpApi and \
         `@effect/sql-pg`; the database is a scoped layer provided per request only to the handlers \
         that need it (the second source document's proposal): in pool mode it leases one connection \
         of a pool of {POOL_SIZE}, in per-request mode it is `PgClient.make` for the request (which \
         also sends its own `SELECT 1`). Node.js {} (Debian's), npm {}, from `bench/effect/package-lock.json`: {}. \
         It runs in the same alternations as the other two (baseline, provision, Effect, ...; in \
         every second one), and is compared with provision's run of the same alternation. \
         Ratios are provision ÷ Effect per alternation, the median over the alternations: a \
         throughput ratio above 1, or a p99, CPU or RSS ratio below 1, is provision ahead.\n",
        install.node,
        install.npm,
        packages.join(", ")
    );
    if let Some(c) = contract {
        let _ = writeln!(
            md,
            "Contract check against the baseline: {}/{} answers identical (status, content type, body).{}\n",
            c.identical,
            c.checks,
            if c.differences.is_empty() {
                String::new()
            } else {
                format!(
                    " Differences: {}.",
                    c.differences
                        .iter()
                        .map(|d| format!("`{}`", d.replace('`', "'")))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        );
    }
    if cells.is_empty() {
        let _ = writeln!(md, "No cell measured.\n");
        return;
    }
    let _ = writeln!(
        md,
        "| mode | endpoint | c | Effect rps | provision rps | throughput provision ÷ Effect | p99 Effect / provision | p99 ratio | CPU per request Effect / provision | CPU ratio | Effect errors |\n\
         |---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for c in cells {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.0} | **{:.2}** | {} / {} | {:.2} | {:.1} / {:.1} µs | {:.2} | {} |",
            c.mode,
            c.endpoint.request(),
            c.concurrency,
            c.effect_rps,
            c.provision_rps,
            c.rps_ratio,
            us(c.effect_p99_us),
            us(c.provision_p99_us),
            c.p99_ratio,
            c.effect_cpu_us,
            c.provision_cpu_us,
            c.cpu_ratio,
            c.effect_errors
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "| mode | RSS idle Effect / provision | peak RSS Effect / provision | peak RSS provision ÷ Effect |\n|---|--:|--:|--:|"
    );
    for mode in Mode::ALL {
        if let (Some(p), Some(e)) = (
            rss(memory, Kind::Provision, mode),
            rss(memory, Kind::Effect, mode),
        ) {
            let _ = writeln!(
                md,
                "| {mode} | {:.1} / {:.1} MiB | {:.1} / {:.1} MiB | {:.2} |",
                e.idle_rss_kib as f64 / 1024.0,
                p.idle_rss_kib as f64 / 1024.0,
                e.peak_rss_kib as f64 / 1024.0,
                p.peak_rss_kib as f64 / 1024.0,
                p.peak_rss_kib as f64 / e.peak_rss_kib as f64
            );
        }
    }
    let _ = writeln!(md);
    if let Some(line) = summary(cells, memory) {
        let _ = writeln!(md, "In one line: {line}.\n");
    }
}
