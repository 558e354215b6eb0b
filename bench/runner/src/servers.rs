//! The servers under test: the two native ones, started from their release
//! binaries on loopback with the same settings, and (`Kind::Worker`)
//! workerd serving the Worker build (started by `crate::worker`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::BoxError;
use crate::tools::release_binary;

/// How a server gets its PostgreSQL connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Pool,
    PerRequest,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Pool, Mode::PerRequest];

    pub fn flag(self) -> &'static str {
        match self {
            Mode::Pool => "pool",
            Mode::PerRequest => "per-request",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.flag())
    }
}

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `bench-baseline`: hand-written axum.
    Baseline,
    /// `cloud-api`: the reference service on provision.
    Provision,
    /// `cloud-api-worker`: the same service built for Cloudflare Workers
    /// (wasm32), served by workerd.
    Worker,
    /// `bench/worker-bare`: a bare workers-rs Worker answering health, served
    /// by workerd; the floor the Worker's CPU per request is compared with.
    WorkerBare,
    /// `bench/effect`: the same contract with Effect's HttpApi and
    /// `@effect/sql-pg` on Node.js (started by `crate::effect`).
    Effect,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Baseline => "baseline",
            Kind::Provision => "provision",
            Kind::Worker => "worker",
            Kind::WorkerBare => "worker-bare",
            Kind::Effect => "effect",
        }
    }

    pub fn binary(self) -> &'static str {
        match self {
            Kind::Baseline => "bench-baseline",
            Kind::Provision => "cloud-api",
            Kind::Worker | Kind::WorkerBare => "workerd",
            Kind::Effect => "node",
        }
    }

    /// The `application_name` its connections show in `pg_stat_activity`.
    pub fn application_name(self) -> &'static str {
        match self {
            Kind::Baseline => "bench-baseline",
            Kind::Provision => "cloud-api",
            // Set by `provision_worker::postgres` when the URL names none.
            Kind::Worker => "cloud-api-worker",
            // It connects to nothing.
            Kind::WorkerBare => "bench-worker-bare",
            Kind::Effect => "bench-effect",
        }
    }
}

/// The pool size both servers get (cloud-api's default).
pub const POOL_SIZE: u32 = 16;

/// A running server.
pub struct Server {
    pub kind: Kind,
    pub mode: Mode,
    pub port: u16,
    child: Child,
    log: PathBuf,
}

/// The exact command line, for the report.
pub fn command_line(kind: Kind, mode: Mode) -> String {
    let mut line = format!("RUST_LOG=warn target/release/{} ", kind.binary());
    if kind == Kind::Provision {
        line.push_str("serve ");
    }
    line.push_str(&format!(
        "--listen 127.0.0.1:PORT --database-url postgres://postgres@127.0.0.1:PGPORT/DB --db-mode {} --pool-size {POOL_SIZE}",
        mode.flag()
    ));
    line
}

pub fn free_port() -> Result<u16, BoxError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl Server {
    /// Starts `kind` in `mode` and waits until `/api/health` answers.
    pub async fn start(
        root: &Path,
        tmp: &Path,
        kind: Kind,
        mode: Mode,
        url: &str,
    ) -> Result<Server, BoxError> {
        let port = free_port()?;
        let log = tmp.join(format!("{}-{}.log", kind.label(), mode.flag()));
        let mut command = Command::new(release_binary(root, kind.binary()));
        if kind == Kind::Provision {
            command.arg("serve");
        }
        let listen = format!("127.0.0.1:{port}");
        let pool_size = POOL_SIZE.to_string();
        command
            .args(["--listen", &listen, "--database-url", url])
            .args(["--db-mode", mode.flag(), "--pool-size", &pool_size])
            // One log line per request would measure stderr, not the
            // server: both log at warn (the same middleware runs).
            .env("RUST_LOG", "warn");
        Server::launch(kind, mode, port, command, log).await
    }

    /// Spawns `command` (a server that will listen on `127.0.0.1:port`),
    /// its stdout and stderr into `log`, and waits (at most 30 s) until
    /// `/api/health` answers 200.
    pub async fn launch(
        kind: Kind,
        mode: Mode,
        port: u16,
        mut command: Command,
        log: PathBuf,
    ) -> Result<Server, BoxError> {
        let file = std::fs::File::create(&log)?;
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", kind.binary()))?;
        let mut server = Server {
            kind,
            mode,
            port,
            child,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = server.child.try_wait()? {
                return Err(format!(
                    "{} exited at startup ({status}): {}",
                    kind.binary(),
                    server.log()
                )
                .into());
            }
            if let Ok(response) = crate::http::request(port, "GET", "/api/health", &[], None).await
                && response.status == 200
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                let _ = server.child.kill();
                return Err(format!(
                    "{} did not become ready in 30 s: {}",
                    kind.binary(),
                    server.log()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (`VmRSS`, `VmHWM`) in KiB: resident now, and at its peak.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// CPU time the server has used so far, in nanoseconds: the sum over its
    /// threads of `/proc/<pid>/task/*/schedstat` (time on a CPU), which
    /// unlike throughput barely moves when other work shares the machine.
    pub fn cpu_ns(&self) -> u64 {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) else {
            return 0;
        };
        tasks
            .filter_map(Result::ok)
            .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
            .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    /// Waits (at most 10 s) until the server is idle: less than 2 ms of CPU
    /// in each of two 50 ms windows in a row. wrk closes its connections at
    /// the end of a run with requests in flight; a hand-written server drops
    /// them, while cloud-api completes a write whose client left (its
    /// `finish` routes), so without this wait the writes abandoned at the
    /// end of the warm-up would run inside the measured run and be charged
    /// to its requests (about one `POST /api/users` per wrk connection: 256
    /// at c = 256, half as many again as the measured run's own in
    /// per-request mode).
    pub async fn until_idle(&self) {
        const WINDOW: Duration = Duration::from_millis(50);
        const BUSY_NS: u64 = 2_000_000;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut quiet = 0;
        let mut before = self.cpu_ns();
        while quiet < 2 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(WINDOW).await;
            let now = self.cpu_ns();
            quiet = if now.saturating_sub(before) < BUSY_NS {
                quiet + 1
            } else {
                0
            };
            before = now;
        }
    }

    /// `db_connections_opened_total` from the server's `/metrics`.
    pub async fn connections_metric(&self) -> Option<u64> {
        let response = crate::http::request(self.port, "GET", "/metrics", &[], None)
            .await
            .ok()?;
        response
            .body
            .lines()
            .find_map(|l| l.strip_prefix("db_connections_opened_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    }

    /// SIGTERM, then waits (at most 20 s) for a clean exit; kills if not.
    /// workerd is killed at once, as its end-to-end test does: its shutdown
    /// is not what is measured, and a hung request would keep it from
    /// exiting on SIGTERM.
    pub async fn stop(mut self) -> Result<(), BoxError> {
        if matches!(self.kind, Kind::Worker | Kind::WorkerBare) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return Ok(());
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    eprintln!(
                        "warning: {} exited with {status}; log: {}",
                        self.kind.binary(),
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    );
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!("{} did not stop within 20 s", self.kind.binary()).into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What the server logged (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
