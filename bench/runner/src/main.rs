//! `bench-runner`: the provision load benchmark, end to end.
//!
//! ```text
//! cargo run -p bench-runner --release            # full: writes bench/RESULTS.md, bench/results.json
//! cargo run -p bench-runner --release -- --quick # smoke run: writes target/bench-quick/
//! cargo run -p bench-runner --release -- --soak  # the soak (`soak.rs`, scripts/soak)
//! ```
//!
//! It builds the servers (release), starts a throwaway PostgreSQL, applies
//! cloud-api's migrations (`cloud-api migrate`), seeds 10,000 users and a
//! token, checks that the two servers answer the users contract
//! identically, and then measures, in this order:
//!
//! 1. criterion microbenchmarks of the core (`crates/*/benches`);
//! 2. the cost of a new PostgreSQL connection, trust and SCRAM;
//! 3. the database's ceiling: pgbench running each endpoint's SQL;
//! 4. HTTP load with wrk over loopback: cloud-api (provision) against
//!    bench-baseline (hand-written axum) and the source documents' own
//!    stack (`bench/effect`, Effect on Node.js, `effect.rs`), pool and
//!    per-request modes, four endpoints, three concurrencies, alternating
//!    the servers round by round; then the default configuration
//!    (`cloud-api serve` as a new user runs it, logs on, against logging
//!    off: `defaults.rs`);
//! 5. the Worker build of cloud-api (`apps/cloud-api-worker`, built by
//!    `scripts/build-worker`) served by workerd on loopback against the same
//!    database: health and users with the same wrk method, compared with
//!    the native server in per-request mode, and its CPU per health request
//!    against a bare workers-rs Worker (`bench/worker-bare`) built and
//!    served the same way, alternated (`worker.rs`; `--only-worker` runs
//!    just this part).
//!
//! Performance is only ever reported, never asserted: targets are marked met
//! or missed in the report, and charts drawn from the run (`charts.rs`) are
//! written beside it.

mod badinput;
mod ceiling;
mod charts;
mod conncost;
mod defaults;
mod effect;
mod http;
mod load;
mod machine;
mod micro;
mod profile;
mod report;
mod servers;
mod setup;
mod soak;
mod svg;
mod telemetry;
mod tools;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// What to run, and for how long.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    /// Alternations: baseline, provision, baseline, provision ...
    pub rounds: usize,
    pub warmup_s: u32,
    pub duration_s: u32,
    pub concurrency: Vec<u32>,
    pub modes: Vec<servers::Mode>,
    pub endpoints: Vec<load::Endpoint>,
    pub pgbench_s: u32,
    pub conn_iters: usize,
    /// Requests per kind of bad input (connections per 4xx).
    pub bad_input_requests: u32,
    /// criterion `--warm-up-time` and `--measurement-time`, seconds.
    pub micro_times: (f64, f64),
    pub skip_micro: bool,
    /// Leave out the Worker build in workerd.
    pub skip_worker: bool,
    /// Leave out the Effect server (and its npm install).
    pub skip_effect: bool,
    /// The Effect server runs in every n-th alternation (rounds 0, n, 2n
    /// ...), paired with provision's run of the same round: the full run
    /// stays within its 25 minutes and `--quick` within 4.
    pub effect_every: usize,
    /// Only the HTTP load (no micro, connection cost or ceiling).
    pub only_load: bool,
    /// Only the connections per 4xx (no micro, load, ceiling or Worker).
    pub only_bad_input: bool,
    /// Only the instructions per request under callgrind.
    pub only_callgrind: bool,
    /// Only the Worker in workerd (and the bare Worker beside it).
    pub only_worker: bool,
    /// Some of the matrix was narrowed from the command line.
    pub custom: bool,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            quick: false,
            rounds: 4,
            warmup_s: 1,
            duration_s: 2,
            concurrency: vec![1, 32, 256],
            modes: servers::Mode::ALL.to_vec(),
            endpoints: load::Endpoint::ALL.to_vec(),
            pgbench_s: 3,
            conn_iters: 400,
            bad_input_requests: 200,
            micro_times: (1.0, 3.0),
            skip_micro: false,
            skip_worker: false,
            skip_effect: false,
            effect_every: 2,
            only_load: false,
            only_bad_input: false,
            only_callgrind: false,
            only_worker: false,
            custom: false,
        }
    }

    fn quick() -> Plan {
        Plan {
            quick: true,
            rounds: 2,
            warmup_s: 1,
            duration_s: 1,
            concurrency: vec![32],
            pgbench_s: 1,
            conn_iters: 100,
            bad_input_requests: 20,
            micro_times: (0.3, 0.7),
            ..Plan::full()
        }
    }
}

/// Where the repository is (this crate is `bench/runner`).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().nth(2).map(PathBuf::from).unwrap_or(here)
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs `work` on a current-thread runtime (the subcommands' `main`):
/// exit 0 if it returns `Ok(true)`, 1 otherwise, printing the error.
pub fn block_on(work: impl std::future::Future<Output = Result<bool, BoxError>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("\nerror: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "\
usage: cargo run -p bench-runner --release -- [--quick] [--skip-micro] [--skip-worker] [--skip-effect] [--out DIR]
       [--only-load] [--mode M] [--endpoint E] [--concurrency C] [--rounds N] [--duration S]

  --soak ...         the soak (scripts/soak)
  --telemetry-demo [--seconds N]
                     Prometheus scraping cloud-api under a mixed load with
                     failures and disconnects; draws ops/charts/telemetry.svg
                     (scripts/telemetry-demo)
  (no flag)          the full benchmark (about 23 minutes on 2 cores); writes
                     bench/RESULTS.md and bench/results.json
  --quick            a smoke run (under 4 minutes): one concurrency (32), two
                     alternations, 1 s runs; the Worker: health and users
                     list, one run each; writes target/bench-quick/
  --skip-micro       leave out the criterion microbenchmarks
  --skip-worker      leave out the Worker build in workerd (not built either)
  --skip-effect      leave out the Effect server (bench/effect; no npm ci either)
  --out DIR          write RESULTS.md and results.json to DIR instead

  For investigating one cell (writes target/bench-custom/ unless --out):
  --only-load        only the HTTP load (no micro, connection cost, ceiling)
  --only-bad-input   only the connections per 4xx (bad input, per-request mode)
  --only-callgrind   only the instructions per request (callgrind, pool mode)
  --only-worker      only the Worker in workerd and the bare workers-rs Worker
                     beside it (builds cloud-api for the database setup only)
  --mode M           pool or per-request (repeatable)
  --endpoint E       health, users-list, user-get or user-create (repeatable)
  --concurrency C    wrk connections (repeatable)
  --rounds N         alternations per cell
  --duration S       seconds per measured run
";

fn parse_args() -> Result<(Plan, Option<PathBuf>), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut plan = if args.iter().any(|a| a == "--quick") {
        Plan::quick()
    } else {
        Plan::full()
    };
    let (mut modes, mut endpoints, mut concurrency) = (vec![], vec![], vec![]);
    let mut out = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => {}
            "--skip-micro" => plan.skip_micro = true,
            "--skip-worker" => plan.skip_worker = true,
            "--skip-effect" => plan.skip_effect = true,
            "--only-load" => plan.only_load = true,
            "--only-bad-input" => {
                plan.only_bad_input = true;
                plan.skip_micro = true;
                plan.skip_worker = true;
                plan.skip_effect = true;
                plan.custom = true;
            }
            "--only-callgrind" => {
                plan.only_callgrind = true;
                plan.skip_micro = true;
                plan.skip_worker = true;
                plan.custom = true;
            }
            "--only-worker" => {
                plan.only_worker = true;
                plan.skip_micro = true;
                plan.skip_effect = true;
                plan.custom = true;
            }
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--mode" => modes.push(match value("--mode")?.as_str() {
                "pool" => servers::Mode::Pool,
                "per-request" => servers::Mode::PerRequest,
                other => return Err(format!("unknown mode {other:?}")),
            }),
            "--endpoint" => endpoints.push(match value("--endpoint")?.as_str() {
                "health" => load::Endpoint::Health,
                "users-list" => load::Endpoint::UsersList,
                "user-get" => load::Endpoint::UserGet,
                "user-create" => load::Endpoint::UserCreate,
                other => return Err(format!("unknown endpoint {other:?}")),
            }),
            "--concurrency" => concurrency.push(
                value("--concurrency")?
                    .parse()
                    .map_err(|_| "--concurrency needs a number")?,
            ),
            "--rounds" => {
                plan.rounds = value("--rounds")?
                    .parse()
                    .map_err(|_| "--rounds needs a number")?;
                plan.custom = true;
            }
            "--duration" => {
                plan.duration_s = value("--duration")?
                    .parse()
                    .map_err(|_| "--duration needs a number")?;
                plan.custom = true;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !modes.is_empty() {
        plan.modes = modes;
        plan.custom = true;
    }
    if !endpoints.is_empty() {
        plan.endpoints = endpoints;
        plan.custom = true;
    }
    if !concurrency.is_empty() {
        plan.concurrency = concurrency;
        plan.custom = true;
    }
    if plan.only_load {
        plan.skip_micro = true;
        plan.custom = true;
    }
    if plan.only_worker && plan.skip_worker {
        return Err("--only-worker and --skip-worker exclude each other".into());
    }
    if plan.rounds == 0 || plan.duration_s == 0 {
        return Err("--rounds and --duration must be at least 1".into());
    }
    Ok((plan, out))
}

fn main() -> ExitCode {
    let started = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--soak") {
        return soak::main(&args[1..], started);
    }
    if args.first().map(String::as_str) == Some("--telemetry-demo") {
        return telemetry::main(&args[1..], started);
    }
    if std::env::args().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let (plan, out) = match parse_args() {
        Ok(parsed) => parsed,
        Err(e) => {
            eprint!("error: {e}\n\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let root = workspace_root();
    let out = out.unwrap_or_else(|| {
        if plan.custom {
            tools::target_dir(&root).join("bench-custom")
        } else if plan.quick {
            tools::target_dir(&root).join("bench-quick")
        } else {
            root.join("bench")
        }
    });
    block_on(async { run(plan, root, out, started).await.map(|()| true) })
}

/// Prints a progress line with the elapsed time.
pub fn say(started: Instant, message: impl AsRef<str>) {
    let t = started.elapsed().as_secs_f64();
    eprintln!("[{:>4.0}s] {}", t, message.as_ref());
}

async fn run(plan: Plan, root: PathBuf, out: PathBuf, started: Instant) -> Result<(), BoxError> {
    say(
        started,
        format!(
            "bench-runner ({}), writing to {}",
            if plan.quick { "quick" } else { "full" },
            out.display()
        ),
    );
    let mut report = report::Report::new(&plan, &root);
    report.machine = machine::describe(&root);
    report.load_before = machine::loadavg();

    // Tools and builds come first: this machine builds and measures, and
    // nothing is timed while the compiler runs.
    let wrk = tools::ensure_wrk()?;
    report.wrk_version = wrk.clone();
    let build_started = Instant::now();
    tools::build(&root, &plan, started)?;
    let worker_build = if plan.skip_worker {
        None
    } else {
        Some(worker::build(&root, started)?)
    };
    if !plan.skip_effect {
        report.effect_install = Some(effect::install(&root, started)?);
    }
    report.wall.build_s = build_started.elapsed().as_secs_f64();
    let measure_started = Instant::now();
    report.priority = tools::raise_priority();
    say(started, format!("priority: {}", report.priority));

    let tmp = tools::scratch_dir()?;
    if !plan.skip_micro {
        say(started, "criterion microbenchmarks (crates/*/benches)");
        report.micro = Some(micro::run(&root, &tmp, &plan, started)?);
    }

    say(started, "throwaway PostgreSQL, migrations, seed");
    let env = setup::Env::start(&root, &tmp, started).await?;
    report.postgres = env.server_version.clone();
    report.seed = env.seed_summary();

    if plan.only_bad_input {
        report.bad_input = Some(badinput::run(&env, &root, &tmp, &plan, started).await?);
        return finish(report, env, &root, tmp, out, started, measure_started);
    }
    if plan.only_callgrind {
        say(started, "instructions per request: callgrind, pool mode");
        report.profile = Some(profile::run(&env, &root, &plan, started).await);
        return finish(report, env, &root, tmp, out, started, measure_started);
    }
    if plan.only_worker {
        let builds = worker_build.expect("--only-worker builds the Worker");
        say(
            started,
            "the Worker build in workerd: wrk, and against the bare workers-rs Worker",
        );
        report.worker = worker::run(&env, &root, &tmp, &plan, builds, started).await;
        return finish(report, env, &root, tmp, out, started, measure_started);
    }

    say(
        started,
        "connection cost: connect + authenticate + first query",
    );
    report.conn_cost = Some(conncost::run(&env, &plan, started).await?);

    say(
        started,
        "database ceiling: pgbench with each endpoint's SQL",
    );
    report.ceiling = ceiling::run(&env, &root, &plan, started).await?;

    say(
        started,
        "HTTP load: wrk, baseline vs provision, alternating",
    );
    let load = load::run(&env, &root, &tmp, &plan, started).await?;
    report.contract = load.contract.clone();
    report.effect_contract = load.effect_contract.clone();
    report.runs = load.runs;
    report.rss = load.memory;

    if !plan.custom {
        say(
            started,
            "the default configuration: cloud-api serve at its defaults vs logging off, health, c = 32",
        );
        report.defaults = Some(defaults::run(&env, &root, &tmp, &plan, started).await?);
    }

    if !plan.only_load {
        say(
            started,
            "connections per 4xx: bad input, both servers, per-request mode",
        );
        report.bad_input = Some(badinput::run(&env, &root, &tmp, &plan, started).await?);
        say(started, "instructions per request: callgrind, pool mode");
        report.profile = Some(profile::run(&env, &root, &plan, started).await);
    }

    report.worker = match worker_build {
        Some(builds) => {
            say(
                started,
                "the Worker build in workerd: wrk, as the native servers, and against the bare workers-rs Worker",
            );
            worker::run(&env, &root, &tmp, &plan, builds, started).await
        }
        None => worker::Worker::not_run("left out (--skip-worker)"),
    };
    finish(report, env, &root, tmp, out, started, measure_started)
}

/// Stops the database and writes the report.
fn finish(
    mut report: report::Report,
    env: setup::Env,
    root: &std::path::Path,
    tmp: PathBuf,
    out: PathBuf,
    started: Instant,
    measure_started: Instant,
) -> Result<(), BoxError> {
    report.load_after = machine::loadavg();
    report.wall.measure_s = measure_started.elapsed().as_secs_f64();
    report.wall.total_s = started.elapsed().as_secs_f64();
    report.quick_wall = report::last_quick_wall(root);
    env.stop();
    let _ = std::fs::remove_dir_all(&tmp);

    std::fs::create_dir_all(&out)?;
    report.charts = charts::write(
        &out.join("charts"),
        &report.runs,
        &report.plan.modes,
        &report.plan.endpoints,
        &report.plan.concurrency,
    )?;
    let (markdown, json) = report.render();
    std::fs::write(out.join("RESULTS.md"), markdown)?;
    std::fs::write(out.join("results.json"), json)?;
    say(
        started,
        format!(
            "wrote {} and {} ({:.0} s in all)",
            out.join("RESULTS.md").display(),
            out.join("results.json").display(),
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(())
}
