//! The Worker build of cloud-api (`apps/cloud-api-worker`, wasm32) served
//! by workerd, the open-source Cloudflare Workers runtime, on loopback,
//! against the same database as the native servers, measured with the
//! same wrk method (`load::measure`).
//!
//! * Build (before anything is measured, with the native builds):
//!   `scripts/build-worker --tools` installs worker-build, wasm-bindgen,
//!   esbuild, binaryen and workerd if they are missing (once, into
//!   `~/.cache/provision-worker-tools`) and says where they are; then
//!   `scripts/build-worker` makes the normal release build (profile
//!   `worker`, no test features) in `apps/cloud-api-worker/build/`. Either
//!   failing stops the runner: the Worker is never skipped silently.
//! * Serve: the checked-in `apps/cloud-api-worker/workerd.capnp` on a free
//!   port, with the build beside it and `DATABASE_URL` pointing at the
//!   runner's database (as `tests/workerd.rs` does).
//! * Measure: health, the users list and (full run) a user by id, at the
//!   run's concurrencies. On Workers a connection is opened per request
//!   (the only mode), so the report compares with the native provision
//!   server in per-request mode from the same run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

use crate::load::{self, Endpoint, Run};
use crate::servers::{Kind, Mode, Server, free_port};
use crate::setup::Env;
use crate::{BoxError, Plan, say};

/// Where the Worker crate is, from the workspace root.
pub const CRATE_DIR: &str = "apps/cloud-api-worker";
/// The build directory `scripts/build-worker` writes by default.
pub const BUILD_DIR: &str = "build";
/// What installs the tools (and prints where they are).
pub const TOOLS_COMMAND: &str = "scripts/build-worker --tools";
/// The build measured: release (`worker` profile), no test features.
pub const BUILD_COMMAND: &str = "scripts/build-worker";

/// The Worker build that is measured.
#[derive(Debug, Clone, Serialize)]
pub struct Build {
    pub command: &'static str,
    /// Wall time of `scripts/build-worker` (cargo, wasm-bindgen, wasm-opt,
    /// esbuild); the tools check before it is not counted.
    pub seconds: f64,
    pub wasm_kib: u64,
    pub js_kib: u64,
    /// `workerd --version`.
    pub workerd_version: String,
    #[serde(skip)]
    workerd: PathBuf,
    #[serde(skip)]
    dir: PathBuf,
}

/// What was measured of the Worker, or why nothing was.
#[derive(Debug, Clone, Serialize)]
pub struct Worker {
    /// `measured`, `partly measured`, `failed` or `not run`.
    pub status: &'static str,
    pub reason: String,
    pub build: Option<Build>,
    pub endpoints: Vec<Endpoint>,
    pub concurrency: Vec<u32>,
    /// Runs per (endpoint, concurrency); each a warm-up and a measured run.
    pub rounds: usize,
    pub runs: Vec<Run>,
    /// Cells that could not be measured, and why.
    pub failures: Vec<String>,
    /// workerd's `VmRSS` once ready, and its `VmHWM` after all runs (KiB).
    pub idle_rss_kib: Option<u64>,
    pub peak_rss_kib: Option<u64>,
    /// The first lines workerd logged, if any.
    pub log: String,
    /// Wall time of the measurement (start of workerd to its end), seconds.
    pub measure_s: f64,
}

impl Worker {
    /// Not measured, saying why.
    pub fn not_run(reason: impl Into<String>) -> Worker {
        Worker {
            status: "not run",
            reason: reason.into(),
            build: None,
            endpoints: Vec::new(),
            concurrency: Vec::new(),
            rounds: 0,
            runs: Vec::new(),
            failures: Vec::new(),
            idle_rss_kib: None,
            peak_rss_kib: None,
            log: String::new(),
            measure_s: 0.0,
        }
    }

    /// The exact commands, for the report.
    pub fn commands(&self) -> Vec<String> {
        if self.build.is_none() {
            return Vec::new();
        }
        vec![
            format!("eval \"$({TOOLS_COMMAND})\"   # WORKERD=...; installs the tools if missing"),
            BUILD_COMMAND.to_owned(),
            format!(
                "DATABASE_URL=postgres://postgres@127.0.0.1:PGPORT/DB \"$WORKERD\" serve workerd.capnp   \
                 ({CRATE_DIR}/workerd.capnp on 127.0.0.1:PORT, beside a copy of {CRATE_DIR}/{BUILD_DIR}/index.js and index_bg.wasm)"
            ),
        ]
    }
}

/// The Worker's matrix: (endpoints, concurrencies, rounds). Full: health,
/// the users list and a user by id at every concurrency of the run, three
/// rounds; quick: health and the users list at the quick concurrency, one.
pub fn matrix(plan: &Plan) -> (Vec<Endpoint>, Vec<u32>, usize) {
    let wanted: &[Endpoint] = if plan.quick {
        &[Endpoint::Health, Endpoint::UsersList]
    } else {
        &[Endpoint::Health, Endpoint::UsersList, Endpoint::UserGet]
    };
    let endpoints = wanted
        .iter()
        .copied()
        .filter(|e| plan.endpoints.contains(e))
        .collect();
    let rounds = if plan.quick { 1 } else { plan.rounds.min(3) };
    (endpoints, plan.concurrency.clone(), rounds)
}

/// Finds the Workers tools (installing them if missing, through
/// `scripts/build-worker --tools`) and builds the Worker. Fails, saying
/// what to run, if either does.
pub fn build(root: &Path, started: Instant) -> Result<Build, BoxError> {
    say(
        started,
        format!("{TOOLS_COMMAND} (worker-build, wasm-bindgen, esbuild, binaryen, workerd)"),
    );
    // stderr is the script's: if it installs, its progress shows.
    let tools = Command::new(root.join("scripts/build-worker"))
        .arg("--tools")
        .current_dir(root)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {TOOLS_COMMAND}: {e}"))?;
    if !tools.status.success() {
        return Err(format!(
            "the Workers tools are missing and could not be installed ({TOOLS_COMMAND}: {}); \
             run `{TOOLS_COMMAND}` by hand (it needs cargo, rustup and Node.js 18+ with npm, \
             and crates.io and the npm registry) and then run the benchmark again",
            tools.status
        )
        .into());
    }
    let stdout = String::from_utf8_lossy(&tools.stdout);
    let workerd = assignment(&stdout, "WORKERD")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .ok_or_else(|| {
            format!("{TOOLS_COMMAND} printed no usable WORKERD=...: {stdout}; run it by hand")
        })?;
    let version = Command::new(&workerd).arg("--version").output()?;
    if !version.status.success() {
        return Err(format!(
            "{} --version failed ({}); reinstall with {TOOLS_COMMAND}",
            workerd.display(),
            version.status
        )
        .into());
    }
    let workerd_version = String::from_utf8_lossy(&version.stdout).trim().to_owned();

    say(
        started,
        format!("{BUILD_COMMAND} (cloud-api-worker: wasm32, profile worker, wasm-opt)"),
    );
    let build_started = Instant::now();
    let output = Command::new(root.join(BUILD_COMMAND))
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {BUILD_COMMAND}: {e}"))?;
    let seconds = build_started.elapsed().as_secs_f64();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        return Err(format!(
            "{BUILD_COMMAND} failed ({}):\n{}",
            output.status,
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
        .into());
    }
    let dir = root.join(CRATE_DIR).join(BUILD_DIR);
    let kib = |file: &str| -> Result<u64, BoxError> {
        let path = dir.join(file);
        let meta = std::fs::metadata(&path)
            .map_err(|e| format!("{BUILD_COMMAND} left no {}: {e}", path.display()))?;
        Ok(meta.len().div_ceil(1024))
    };
    let build = Build {
        command: BUILD_COMMAND,
        seconds,
        wasm_kib: kib("index_bg.wasm")?,
        js_kib: kib("index.js")?,
        workerd_version,
        workerd,
        dir,
    };
    say(
        started,
        format!(
            "Worker built in {:.0} s: index_bg.wasm {} KiB, index.js {} KiB; {}",
            build.seconds, build.wasm_kib, build.js_kib, build.workerd_version
        ),
    );
    Ok(build)
}

/// `NAME=value` from the shell assignments `scripts/build-worker --tools`
/// prints (bash `printf %q`: a plain path as it is, anything else escaped
/// with backslashes).
fn assignment(stdout: &str, name: &str) -> Option<String> {
    let value = stdout
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))?;
    if value.starts_with("$'") || value.starts_with('\'') {
        return None;
    }
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Serves the build in workerd and measures it. A failure is reported (in
/// the report and on stderr), not raised: the native figures of the run
/// are kept.
pub async fn run(
    env: &Env,
    root: &Path,
    tmp: &Path,
    plan: &Plan,
    build: Build,
    started: Instant,
) -> Worker {
    let (endpoints, concurrency, rounds) = matrix(plan);
    let mut worker = Worker {
        status: "measured",
        reason: String::new(),
        endpoints,
        concurrency,
        rounds,
        ..Worker::not_run("")
    };
    if worker.endpoints.is_empty() || worker.concurrency.is_empty() {
        worker.status = "not run";
        worker.reason = "none of the selected endpoints is one the Worker is measured on (health, users list, user by id)".into();
        worker.build = Some(build);
        return worker;
    }
    let measure_started = Instant::now();
    if let Err(e) = measure(env, root, tmp, plan, &build, &mut worker, started).await {
        worker.status = if worker.runs.is_empty() {
            "failed"
        } else {
            "partly measured"
        };
        worker.reason = e.to_string();
    }
    if worker.status == "measured" && !worker.failures.is_empty() {
        worker.status = "partly measured";
        worker.reason = format!("{} cell(s) failed", worker.failures.len());
    }
    if worker.status != "measured" {
        eprintln!(
            "warning: the Worker in workerd was {}: {}",
            worker.status, worker.reason
        );
        for failure in &worker.failures {
            eprintln!("  {failure}");
        }
    }
    worker.measure_s = measure_started.elapsed().as_secs_f64();
    worker.build = Some(build);
    say(
        started,
        format!(
            "Worker in workerd: {} in {:.0} s",
            worker.status, worker.measure_s
        ),
    );
    worker
}

async fn measure(
    env: &Env,
    root: &Path,
    tmp: &Path,
    plan: &Plan,
    build: &Build,
    worker: &mut Worker,
    started: Instant,
) -> Result<(), BoxError> {
    // The users table as seeded (the profile step resets it too).
    env.reset_users().await?;
    let mut server = start(env, root, tmp, build).await?;
    worker.idle_rss_kib = Some(server.memory_kib().0);
    say(
        started,
        format!(
            "workerd on 127.0.0.1:{} (pid {}), {} endpoint(s) x c={:?}, {} round(s) each",
            server.port,
            server.pid(),
            worker.endpoints.len(),
            worker.concurrency,
            worker.rounds
        ),
    );
    let cells: Vec<(Endpoint, u32)> = worker
        .endpoints
        .iter()
        .flat_map(|&e| worker.concurrency.iter().map(move |&c| (e, c)))
        .collect();
    'cells: for (endpoint, concurrency) in cells {
        for round in 0..worker.rounds {
            match load::measure(env, root, plan, &server, endpoint, concurrency, round).await {
                Ok(run) => {
                    say(started, run.summary());
                    worker.runs.push(run);
                }
                Err(e) => {
                    let failure = format!("{endpoint} c={concurrency} round {round}: {e}");
                    say(started, format!("worker: {failure}"));
                    worker.failures.push(failure);
                    break;
                }
            }
            if !server.running() {
                worker.failures.push(format!(
                    "workerd exited during {endpoint} c={concurrency}: {}",
                    head(&server.log(), 20)
                ));
                break 'cells;
            }
        }
    }
    worker.peak_rss_kib = Some(server.memory_kib().1);
    worker.log = head(&server.log(), 20);
    if !worker.log.trim().is_empty() {
        eprintln!("workerd logged:\n{}", worker.log);
    }
    server.stop().await?;
    Ok(())
}

/// workerd with the checked-in configuration on a free port, the build
/// copied beside it (as `tests/workerd.rs` does), the database from
/// `DATABASE_URL`.
async fn start(env: &Env, root: &Path, tmp: &Path, build: &Build) -> Result<Server, BoxError> {
    let dir = tmp.join("workerd");
    std::fs::create_dir_all(&dir)?;
    for file in ["index.js", "index_bg.wasm"] {
        std::fs::copy(build.dir.join(file), dir.join(file))
            .map_err(|e| format!("{}: {e}", build.dir.join(file).display()))?;
    }
    let port = free_port()?;
    let template_path = root.join(CRATE_DIR).join("workerd.capnp");
    let mut config = std::fs::read_to_string(&template_path)
        .map_err(|e| format!("{}: {e}", template_path.display()))?;
    for (from, to) in [
        (format!("{BUILD_DIR}/index.js"), "index.js".to_owned()),
        (
            format!("{BUILD_DIR}/index_bg.wasm"),
            "index_bg.wasm".to_owned(),
        ),
        ("127.0.0.1:8787".to_owned(), format!("127.0.0.1:{port}")),
    ] {
        if !config.contains(&from) {
            return Err(format!(
                "{} no longer contains {from:?}: update bench/runner/src/worker.rs",
                template_path.display()
            )
            .into());
        }
        config = config.replace(&from, &to);
    }
    std::fs::write(dir.join("workerd.capnp"), config)?;
    // The config embeds the test trigger (cron and queue delivery), which
    // needs workerd's experimental features, as in tests/workerd.rs.
    std::fs::copy(
        root.join(CRATE_DIR).join("trigger.js"),
        dir.join("trigger.js"),
    )?;
    let mut command = Command::new(&build.workerd);
    command
        .args(["serve", "workerd.capnp", "--experimental"])
        .current_dir(&dir)
        .env("DATABASE_URL", &env.url);
    Server::launch(
        Kind::Worker,
        Mode::PerRequest,
        port,
        command,
        dir.join("workerd.log"),
    )
    .await
}

fn head(text: &str, lines: usize) -> String {
    text.lines().take(lines).collect::<Vec<_>>().join("\n")
}
