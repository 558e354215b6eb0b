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
//! * Against a bare workers-rs Worker (`bench/worker-bare`: a plain
//!   `#[event(fetch)]` answering the same health JSON, built by the same
//!   `scripts/build-worker` with the same profile and tools): both served
//!   by the same workerd binary at once, health measured on each in turn,
//!   alternating which goes first, round by round; the report gives
//!   workerd's CPU per request of the reference over the bare one (issue
//!   14's target: at most 1.3).

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
/// The bare workers-rs Worker, from the workspace root.
pub const BARE_CRATE_DIR: &str = "bench/worker-bare";
/// Its build: the same script, profile and tools.
pub const BARE_BUILD_COMMAND: &str = "scripts/build-worker bench/worker-bare";
/// The ratio issue 14 asks for: the reference Worker's CPU per health
/// request at most this many times the bare Worker's.
pub const BARE_TARGET: f64 = 1.3;

/// The Worker build that is measured.
#[derive(Debug, Clone, Serialize)]
pub struct Build {
    pub command: &'static str,
    /// The crate built, from the workspace root.
    pub crate_dir: &'static str,
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

/// The two Worker builds of a run.
pub struct Builds {
    /// `apps/cloud-api-worker`, the one measured.
    pub reference: Build,
    /// `bench/worker-bare`, what its health request is compared with.
    pub bare: Build,
}

/// The reference Worker against the bare workers-rs Worker: health only,
/// both servers up at once, alternated round by round.
#[derive(Debug, Clone, Serialize)]
pub struct VersusBare {
    pub concurrency: Vec<u32>,
    pub rounds: usize,
    /// Both Workers' runs (`server` says which: `worker` or `worker-bare`).
    pub runs: Vec<Run>,
    /// Runs that failed, and why.
    pub failures: Vec<String>,
}

/// What was measured of the Worker, or why nothing was.
#[derive(Debug, Clone, Serialize)]
pub struct Worker {
    /// `measured`, `partly measured`, `failed` or `not run`.
    pub status: &'static str,
    pub reason: String,
    pub build: Option<Build>,
    pub bare_build: Option<Build>,
    /// The reference against the bare Worker (health), if it was measured.
    pub versus_bare: Option<VersusBare>,
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
            bare_build: None,
            versus_bare: None,
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
            BARE_BUILD_COMMAND.to_owned(),
            format!(
                "\"$WORKERD\" serve workerd.capnp   ({BARE_CRATE_DIR}/workerd.capnp on 127.0.0.1:PORT, beside a copy of {BARE_CRATE_DIR}/{BUILD_DIR}/index.js and index_bg.wasm)"
            ),
        ]
    }
}

/// The concurrencies of the comparison with the bare Worker: the run's, up
/// to 32 (a Worker's isolate is single-threaded; 256 connections measure
/// workerd's queueing more than the Worker), or 32 if none is.
pub fn versus_bare_concurrency(plan: &Plan) -> Vec<u32> {
    let wanted: Vec<u32> = plan
        .concurrency
        .iter()
        .copied()
        .filter(|&c| c <= 32)
        .collect();
    if wanted.is_empty() { vec![32] } else { wanted }
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
/// `scripts/build-worker --tools`) and builds the reference Worker and the
/// bare one. Fails, saying what to run, if any of it does.
pub fn build(root: &Path, started: Instant) -> Result<Builds, BoxError> {
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

    let reference = build_one(
        root,
        BUILD_COMMAND,
        CRATE_DIR,
        &workerd,
        &workerd_version,
        started,
    )?;
    let bare = build_one(
        root,
        BARE_BUILD_COMMAND,
        BARE_CRATE_DIR,
        &workerd,
        &workerd_version,
        started,
    )?;
    Ok(Builds { reference, bare })
}

/// Runs `command` (`scripts/build-worker`, with the crate's directory
/// unless it is the default one) and checks what it left in
/// `crate_dir/build`.
fn build_one(
    root: &Path,
    command: &'static str,
    crate_dir: &'static str,
    workerd: &Path,
    workerd_version: &str,
    started: Instant,
) -> Result<Build, BoxError> {
    say(
        started,
        format!("{command} ({crate_dir}: wasm32, profile worker, wasm-opt)"),
    );
    let build_started = Instant::now();
    let mut words = command.split_whitespace();
    let script = words.next().expect("a command");
    let output = Command::new(root.join(script))
        .args(words)
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {command}: {e}"))?;
    let seconds = build_started.elapsed().as_secs_f64();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        return Err(format!(
            "{command} failed ({}):\n{}",
            output.status,
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
        .into());
    }
    let dir = root.join(crate_dir).join(BUILD_DIR);
    let kib = |file: &str| -> Result<u64, BoxError> {
        let path = dir.join(file);
        let meta = std::fs::metadata(&path)
            .map_err(|e| format!("{command} left no {}: {e}", path.display()))?;
        Ok(meta.len().div_ceil(1024))
    };
    let build = Build {
        command,
        crate_dir,
        seconds,
        wasm_kib: kib("index_bg.wasm")?,
        js_kib: kib("index.js")?,
        workerd_version: workerd_version.to_owned(),
        workerd: workerd.to_owned(),
        dir,
    };
    say(
        started,
        format!(
            "{crate_dir} built in {:.0} s: index_bg.wasm {} KiB, index.js {} KiB; {}",
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
    builds: Builds,
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
        worker.build = Some(builds.reference);
        worker.bare_build = Some(builds.bare);
        return worker;
    }
    let measure_started = Instant::now();
    if let Err(e) = measure(env, root, tmp, plan, &builds, &mut worker, started).await {
        worker.status = if worker.runs.is_empty() {
            "failed"
        } else {
            "partly measured"
        };
        worker.reason = e.to_string();
    }
    let versus_failed = worker.versus_bare.as_ref().map_or(0, |v| v.failures.len());
    if worker.status == "measured" && versus_failed > 0 {
        worker.status = "partly measured";
        worker.reason = format!("{versus_failed} run(s) against the bare Worker failed");
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
        for failure in worker.versus_bare.iter().flat_map(|v| &v.failures) {
            eprintln!("  against the bare Worker: {failure}");
        }
    }
    worker.measure_s = measure_started.elapsed().as_secs_f64();
    worker.build = Some(builds.reference);
    worker.bare_build = Some(builds.bare);
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
    builds: &Builds,
    worker: &mut Worker,
    started: Instant,
) -> Result<(), BoxError> {
    // The users table as seeded (the profile step resets it too).
    env.reset_users().await?;
    let mut server = start(env, root, tmp, &builds.reference).await?;
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
    if server.running() {
        worker.versus_bare =
            Some(versus_bare(env, root, tmp, plan, &mut server, &builds.bare, started).await);
    }
    worker.peak_rss_kib = Some(server.memory_kib().1);
    worker.log = head(&server.log(), 20);
    if !worker.log.trim().is_empty() {
        eprintln!("workerd logged:\n{}", worker.log);
    }
    server.stop().await?;
    Ok(())
}

/// Health on the reference Worker (`server`, already warm) and on the bare
/// one, in turn, round by round, the first of each round alternating; the
/// same wrk method and CPU reading as every other cell.
async fn versus_bare(
    env: &Env,
    root: &Path,
    tmp: &Path,
    plan: &Plan,
    server: &mut Server,
    bare: &Build,
    started: Instant,
) -> VersusBare {
    let mut versus = VersusBare {
        concurrency: versus_bare_concurrency(plan),
        rounds: plan.rounds,
        runs: Vec::new(),
        failures: Vec::new(),
    };
    let mut bare_server = match start_bare(root, tmp, bare).await {
        Ok(bare_server) => bare_server,
        Err(e) => {
            versus
                .failures
                .push(format!("the bare Worker did not start: {e}"));
            return versus;
        }
    };
    say(
        started,
        format!(
            "against the bare workers-rs Worker (127.0.0.1:{}): health, c={:?}, {} round(s), alternating",
            bare_server.port, versus.concurrency, versus.rounds
        ),
    );
    for concurrency in versus.concurrency.clone() {
        for round in 0..versus.rounds {
            let bare_first = round % 2 == 0;
            for turn in 0..2 {
                let target: &Server = if (turn == 0) == bare_first {
                    &bare_server
                } else {
                    server
                };
                match load::measure(
                    env,
                    root,
                    plan,
                    target,
                    Endpoint::Health,
                    concurrency,
                    round,
                )
                .await
                {
                    Ok(run) => {
                        say(started, run.summary());
                        versus.runs.push(run);
                    }
                    Err(e) => versus.failures.push(format!(
                        "{} c={concurrency} round {round}: {e}",
                        target.kind.label()
                    )),
                }
            }
            if !bare_server.running() || !server.running() {
                versus.failures.push(format!(
                    "workerd exited during c={concurrency} round {round}: {}",
                    head(&bare_server.log(), 20)
                ));
                let _ = bare_server.stop().await;
                return versus;
            }
        }
    }
    let _ = bare_server.stop().await;
    versus
}

/// workerd serving the bare Worker with its `workerd.capnp`, on a free port.
async fn start_bare(root: &Path, tmp: &Path, build: &Build) -> Result<Server, BoxError> {
    let dir = tmp.join("workerd-bare");
    let template_path = root.join(BARE_CRATE_DIR).join("workerd.capnp");
    let port = serve_dir(&dir, build, &template_path, &[])?;
    let mut command = Command::new(&build.workerd);
    command.args(["serve", "workerd.capnp"]).current_dir(&dir);
    Server::launch(
        Kind::WorkerBare,
        Mode::PerRequest,
        port,
        command,
        dir.join("workerd.log"),
    )
    .await
}

/// Copies `build` into `dir` with `template` (its `build/` paths made
/// local, its port 8787 replaced by a free one, plus `extra` replacements),
/// and returns the port.
fn serve_dir(
    dir: &Path,
    build: &Build,
    template_path: &Path,
    extra: &[(String, String)],
) -> Result<u16, BoxError> {
    std::fs::create_dir_all(dir)?;
    for file in ["index.js", "index_bg.wasm"] {
        std::fs::copy(build.dir.join(file), dir.join(file))
            .map_err(|e| format!("{}: {e}", build.dir.join(file).display()))?;
    }
    let port = free_port()?;
    let mut config = std::fs::read_to_string(template_path)
        .map_err(|e| format!("{}: {e}", template_path.display()))?;
    let mut replacements = vec![
        (format!("{BUILD_DIR}/index.js"), "index.js".to_owned()),
        (
            format!("{BUILD_DIR}/index_bg.wasm"),
            "index_bg.wasm".to_owned(),
        ),
        ("127.0.0.1:8787".to_owned(), format!("127.0.0.1:{port}")),
    ];
    replacements.extend(extra.iter().cloned());
    for (from, to) in replacements {
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
    Ok(port)
}

/// workerd with the checked-in configuration on a free port, the build
/// copied beside it (as `tests/workerd.rs` does), the database from
/// `DATABASE_URL`.
async fn start(env: &Env, root: &Path, tmp: &Path, build: &Build) -> Result<Server, BoxError> {
    let dir = tmp.join("workerd");
    // The trigger's socket gets a free port too: a fixed 8788 would clash
    // with any other workerd on the machine (a test run, a second bench).
    let events = free_port()?;
    let port = serve_dir(
        &dir,
        build,
        &root.join(CRATE_DIR).join("workerd.capnp"),
        &[("127.0.0.1:8788".to_owned(), format!("127.0.0.1:{events}"))],
    )?;
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
