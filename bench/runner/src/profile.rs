//! Instructions per request under valgrind's callgrind: for each endpoint,
//! both servers in pool mode on the same database, one keep-alive client
//! sending requests one after another. Unlike time, an instruction count
//! does not move when something else runs on the machine, so this is the
//! steady reading of what provision adds to a request (user space only:
//! the kernel's share, socket reads and writes, is the same for both).
//! The dumps are kept in `target/bench-callgrind/` for `callgrind_annotate`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::http::KeepAlive;
use crate::load::Endpoint;
use crate::servers::{Kind, POOL_SIZE};
use crate::setup::Env;
use crate::tools::{release_binary, target_dir};
use crate::{BoxError, Plan, say};

/// Instructions per request for one endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Instructions {
    pub endpoint: Endpoint,
    pub requests: u64,
    pub baseline: u64,
    pub provision: u64,
    pub ratio: f64,
}

/// The profile, or why there is none.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub status: String,
    pub dumps: String,
    pub rows: Vec<Instructions>,
}

fn valgrind_version() -> Option<String> {
    let output = Command::new("valgrind").arg("--version").output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

struct Profiled {
    child: Child,
    port: u16,
}

impl Drop for Profiled {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(root: &Path, dir: &Path, kind: Kind, url: &str) -> Result<Profiled, BoxError> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut command = Command::new("valgrind");
    command
        .args([
            "--tool=callgrind",
            "--compress-strings=no",
            "--compress-pos=no",
        ])
        .arg(format!(
            "--callgrind-out-file={}/{}.%p",
            dir.display(),
            kind.label()
        ))
        .arg(release_binary(root, kind.binary()));
    if kind == Kind::Provision {
        command.arg("serve");
    }
    command
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            url,
        ])
        .args(["--db-mode", "pool", "--pool-size", &POOL_SIZE.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut server = Profiled {
        child: command.spawn()?,
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = server.child.try_wait()? {
            return Err(format!("{} under valgrind exited ({status})", kind.binary()).into());
        }
        if let Ok(r) = crate::http::request(port, "GET", "/api/health", &[], None).await
            && r.status == 200
        {
            return Ok(server);
        }
        if Instant::now() > deadline {
            return Err(format!("{} under valgrind did not start in 90 s", kind.binary()).into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn callgrind_control(args: &[&str]) -> Result<(), BoxError> {
    let status = Command::new("callgrind_control")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("callgrind_control {} failed ({status})", args.join(" ")).into())
    }
}

/// The `summary:` (or `totals:`) of the newest dump of `pid` in `dir`.
fn newest_total(dir: &Path, kind: Kind, pid: u32) -> Result<u64, BoxError> {
    let prefix = format!("{}.{pid}.", kind.label());
    let newest: Option<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .max_by_key(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .and_then(|e| e.parse::<u32>().ok())
                .unwrap_or(0)
        });
    let path = newest.ok_or("callgrind wrote no dump")?;
    let text = std::fs::read_to_string(&path)?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no totals in {}", path.display()).into())
}

/// `n` requests to `endpoint` over one connection.
async fn drive(
    client: &mut KeepAlive,
    env: &Env,
    endpoint: Endpoint,
    n: u64,
    tag: &str,
) -> Result<(), BoxError> {
    let bearer = format!("Bearer {}", env.token);
    for i in 0..n {
        let status = match endpoint {
            Endpoint::UserCreate => {
                let body = format!(
                    "{{\"name\":\"Profile {i}\",\"email\":\"cg-{tag}-{i}@bench.example\"}}"
                );
                client
                    .send(
                        "POST",
                        "/api/users",
                        &[
                            ("Authorization", &bearer),
                            ("Content-Type", "application/json"),
                        ],
                        Some(&body),
                    )
                    .await?
            }
            Endpoint::Health => client.send("GET", "/api/health", &[], None).await?,
            _ => {
                let request = endpoint.request();
                let path = request.split_once(' ').map_or("", |(_, p)| p);
                client
                    .send("GET", path, &[("Authorization", &bearer)], None)
                    .await?
            }
        };
        if !(200..300).contains(&status) {
            return Err(format!("{endpoint}: status {status} under callgrind").into());
        }
    }
    Ok(())
}

/// Requests per endpoint (after as many warm-up requests, at most 300).
fn requests(endpoint: Endpoint, plan: &Plan) -> u64 {
    let n = match endpoint {
        Endpoint::Health => 2_000,
        Endpoint::UsersList => 300,
        _ => 1_000,
    };
    if plan.quick { n / 4 } else { n }
}

pub async fn run(env: &Env, root: &Path, plan: &Plan, started: Instant) -> Profile {
    let dir = target_dir(root).join("bench-callgrind");
    let Some(version) = valgrind_version() else {
        return Profile {
            status: "Skipped: valgrind is not installed (apt-get install -y valgrind)".into(),
            dumps: String::new(),
            rows: Vec::new(),
        };
    };
    let shown = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
    match measure(env, root, plan, &dir, started).await {
        Ok(rows) => Profile {
            status: format!("Measured with {version}"),
            dumps: shown,
            rows,
        },
        Err(e) => Profile {
            status: format!("Failed: {e}"),
            dumps: shown,
            rows: Vec::new(),
        },
    }
}

async fn measure(
    env: &Env,
    root: &Path,
    plan: &Plan,
    dir: &Path,
    started: Instant,
) -> Result<Vec<Instructions>, BoxError> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let baseline = start(root, dir, Kind::Baseline, &env.url).await?;
    let provision = start(root, dir, Kind::Provision, &env.url).await?;
    let mut rows = Vec::new();
    for &endpoint in &plan.endpoints {
        let n = requests(endpoint, plan);
        let mut totals = [0u64; 2];
        for (i, (kind, server)) in [(Kind::Baseline, &baseline), (Kind::Provision, &provision)]
            .into_iter()
            .enumerate()
        {
            let pid = server.child.id();
            let mut client = KeepAlive::connect(server.port).await?;
            drive(&mut client, env, endpoint, n.min(300), &format!("w{i}")).await?;
            callgrind_control(&["-z", &pid.to_string()])?;
            drive(&mut client, env, endpoint, n, &format!("m{i}")).await?;
            callgrind_control(&["-d", &format!("{endpoint}"), &pid.to_string()])?;
            totals[i] = newest_total(dir, kind, pid)? / n;
        }
        if endpoint == Endpoint::UserCreate {
            env.reset_users().await?;
        }
        let ratio = totals[1] as f64 / totals[0] as f64;
        say(
            started,
            format!(
                "callgrind {endpoint:<11} baseline {:>7} Ir/request, provision {:>7} ({ratio:.3}x)",
                totals[0], totals[1]
            ),
        );
        rows.push(Instructions {
            endpoint,
            requests: n,
            baseline: totals[0],
            provision: totals[1],
            ratio,
        });
    }
    Ok(rows)
}
