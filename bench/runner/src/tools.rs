//! The tools the benchmark needs, and the builds it makes before measuring.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{BoxError, Plan, say};

/// The load generator, pinned: wrk 4.1.0 as packaged by Debian.
pub const WRK_VERSION: &str = "4.1.0";
/// How to get it.
pub const WRK_INSTALL: &str = "apt-get update && apt-get install -y wrk";

/// Cargo's target directory (`CARGO_TARGET_DIR`, else `<root>/target`).
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"))
}

/// A release binary of this workspace.
pub fn release_binary(root: &Path, name: &str) -> PathBuf {
    target_dir(root).join("release").join(name)
}

/// `wrk -v`'s first line, if wrk runs.
fn wrk_banner() -> Option<String> {
    let output = Command::new("wrk").arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    text.lines()
        .find(|l| l.starts_with("wrk "))
        .map(|l| l.trim().to_owned())
}

/// Makes sure wrk 4.1.0 is installed: installs it with apt-get when it is
/// missing and we are root, else fails with the exact command.
pub fn ensure_wrk() -> Result<String, BoxError> {
    if wrk_banner().is_none() {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        if !root {
            return Err(format!(
                "wrk (the load generator, version {WRK_VERSION}) is not installed; run: sudo sh -c '{WRK_INSTALL}'"
            )
            .into());
        }
        eprintln!("wrk is missing: {WRK_INSTALL}");
        let status = Command::new("sh")
            .arg("-c")
            .arg(WRK_INSTALL)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(format!("installing wrk failed ({status}); run: {WRK_INSTALL}").into());
        }
    }
    let banner = wrk_banner().ok_or("wrk is installed but `wrk -v` does not run")?;
    // "wrk debian/4.1.0-3+b2 [epoll] ..." or "wrk 4.1.0 [epoll] ...".
    let version = banner.split_whitespace().nth(1).unwrap_or_default();
    let version = version.strip_prefix("debian/").unwrap_or(version);
    if !version.starts_with(WRK_VERSION) {
        return Err(format!(
            "wrk {WRK_VERSION} is required (the scripts in bench/wrk rely on its Lua API), found {banner:?}; run: {WRK_INSTALL}"
        )
        .into());
    }
    Ok(banner
        .split(" Copyright")
        .next()
        .unwrap_or(&banner)
        .to_owned())
}

/// Builds everything that is measured, in release, before any measurement:
/// the two servers and the criterion benches.
pub fn build(root: &Path, plan: &Plan, started: Instant) -> Result<(), BoxError> {
    // --only-worker needs cloud-api only, for the database's schema, seed
    // and token.
    let servers: &[&str] = if plan.only_worker {
        &["build", "--release", "-p", "cloud-api"]
    } else {
        &[
            "build",
            "--release",
            "-p",
            "cloud-api",
            "-p",
            "bench-baseline",
        ]
    };
    say(started, format!("cargo {}", servers.join(" ")));
    cargo(root, servers)?;
    if !plan.skip_micro {
        say(
            started,
            "cargo bench --no-run -p provision -p provision-axum",
        );
        cargo(
            root,
            &[
                "bench",
                "--no-run",
                "-p",
                "provision",
                "-p",
                "provision-axum",
            ],
        )?;
    }
    Ok(())
}

fn cargo(root: &Path, args: &[&str]) -> Result<(), BoxError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(args)
        .current_dir(root)
        .stdout(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo {} failed ({status})", args.join(" ")).into())
    }
}

/// A scratch directory for scripts, logs and summaries, removed at the end.
pub fn scratch_dir() -> Result<PathBuf, BoxError> {
    let dir = std::env::temp_dir().join(format!("bench-runner-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs a command and returns its stdout, failing with its stderr.
pub fn output(command: &mut Command) -> Result<String, BoxError> {
    let output = command.stdin(Stdio::null()).output()?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Raises this process's scheduling priority (nice -10) so that the
/// processes it starts from now on (PostgreSQL and its backends, both
/// servers, wrk, pgbench, the criterion benches) inherit it: this machine
/// also builds, and a compiler running beside a measurement skews it.
/// Needs root; without it the run goes on at normal priority. Returns what
/// was done, for the report.
pub fn raise_priority() -> String {
    let pid = std::process::id().to_string();
    let result = Command::new("renice")
        .args(["-n", "-10", "-p", &pid])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match result {
        Ok(output) if output.status.success() => {
            "nice -10 for everything measured (the runner, PostgreSQL, both servers, wrk, pgbench, criterion), inherited from the runner".to_owned()
        }
        Ok(output) => format!(
            "normal (renice failed: {})",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(e) => format!("normal (renice not available: {e})"),
    }
}
