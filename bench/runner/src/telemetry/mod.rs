//! `bench-runner --telemetry-demo` (`scripts/telemetry-demo`): a real run
//! of cloud-api's telemetry, drawn. Debian's `prometheus` runs as a plain
//! process on loopback with a generated configuration, scraping the release
//! build of cloud-api (on a throwaway PostgreSQL) every second while a
//! load that includes failures and disconnects runs (`load.rs`); then every
//! panel of the Grafana dashboard (`ops/grafana/provision.json`, the one
//! place the queries and metric names live) is asked of Prometheus over
//! the run (`/api/v1/query_range`) and drawn into `ops/charts/telemetry.svg`.
//! Not a test and not part of `scripts/test-all`: it takes minutes.

mod chart;
mod load;
mod prometheus;

use std::path::Path;
use std::time::{Duration, Instant};

use std::process::Command;

use crate::servers::{Kind, Mode, Server, free_port};
use crate::setup::Env;
use crate::{BoxError, say};

/// The dashboard whose panels are drawn.
pub const DASHBOARD: &str = "ops/grafana/provision.json";
/// Where the picture goes.
pub const CHART: &str = "ops/charts/telemetry.svg";

/// Runs the demo: `args` are what follows `--telemetry-demo`
/// (`--seconds N`, 150 by default).
pub async fn run(root: &Path, args: &[String], started: Instant) -> Result<(), BoxError> {
    let mut seconds: u64 = 150;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|s| *s >= 10)
                    .ok_or("--seconds needs a number, at least 10")?;
            }
            other => return Err(format!("unknown --telemetry-demo argument {other:?}").into()),
        }
    }
    let dashboard = chart::Dashboard::read(&root.join(DASHBOARD))?;
    let binary = crate::tools::release_binary(root, "cloud-api");
    if !binary.exists() {
        return Err(format!(
            "{} is missing: `cargo build --release -p cloud-api` first (scripts/telemetry-demo does)",
            binary.display()
        )
        .into());
    }
    let tmp = crate::tools::scratch_dir()?;
    say(started, "throwaway PostgreSQL, migrations, seed");
    let env = Env::start(root, &tmp, started).await?;

    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let mut command = Command::new(&binary);
    command
        .arg("serve")
        .args(["--listen", &listen, "--database-url", &env.url])
        .args(["--db-mode", Mode::Pool.flag(), "--pool-size", "8"])
        // Short enough that an INSERT held behind the load's table lock
        // fails (a cancelled statement, a 503), long enough for the rest.
        .args(["--statement-timeout", "400ms"])
        .env("RUST_LOG", "warn");
    let log = tmp.join("cloud-api.log");
    let server = Server::launch(Kind::Provision, Mode::Pool, port, command, log).await?;
    say(started, format!("cloud-api on {listen}"));

    let prometheus = prometheus::Prometheus::start(&tmp, port).await?;
    say(
        started,
        format!(
            "prometheus on 127.0.0.1:{}, scraping every second",
            prometheus.port
        ),
    );
    prometheus.wait_for_scrape().await?;

    say(started, format!("load for {seconds} s"));
    let from = unix_now();
    let tally = load::run(&env, port, Duration::from_secs(seconds)).await?;
    // Two more scrapes, so the last seconds of the load are in.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let to = unix_now();
    say(started, tally.summary());

    let panels = dashboard.query(&prometheus, from, to).await?;
    let svg = chart::draw(&dashboard.title, &panels, to - from);
    let out = root.join(CHART);
    std::fs::create_dir_all(out.parent().expect("a directory"))?;
    std::fs::write(&out, svg)?;
    say(started, format!("wrote {}", out.display()));
    for panel in &panels {
        say(started, panel.summary());
    }

    prometheus.stop();
    server.stop().await?;
    env.stop();
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// `bench-runner --telemetry-demo [--seconds N]`.
pub fn main(args: &[String], started: Instant) -> std::process::ExitCode {
    crate::block_on(async {
        run(&crate::workspace_root(), args, started)
            .await
            .map(|()| true)
    })
}
