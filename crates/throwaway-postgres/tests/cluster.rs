//! End-to-end tests: these start real PostgreSQL servers and fail (never
//! skip) when PostgreSQL is not installed.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use throwaway_postgres::{Cluster, ClusterOptions, shared};

const CHILD_ENV: &str = "THROWAWAY_PG_GUARDIAN_CHILD";

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_ok()
}

/// Runs psql as `user` with `password` over TCP; returns (success, stdout, stderr).
fn psql_with_password(
    cluster: &Cluster,
    user: &str,
    password: &str,
    db: &str,
    sql: &str,
) -> (bool, String, String) {
    let out = Command::new(cluster.psql_path())
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
        .args(["-p", &cluster.port().to_string(), "-U", user, "-d", db])
        .args(["-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn lifecycle_databases_outage_scram_and_drop() {
    let started = Instant::now();
    let cluster = ClusterOptions::new()
        .max_connections(50)
        .scram_user("bench", "s3cret pw:'x")
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("cluster started in {:?}", started.elapsed());
    let port = cluster.port();
    let data_dir = cluster.data_dir().to_path_buf();
    let root = data_dir.parent().unwrap().to_path_buf();
    assert!(data_dir.join("PG_VERSION").is_file());
    assert!(port_open(port));
    assert_eq!(
        cluster.url("postgres"),
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    );
    assert_eq!(
        cluster.url_as("bench", "a b", "db"),
        format!("postgres://bench:a%20b@127.0.0.1:{port}/db")
    );
    assert_eq!(
        cluster
            .psql("postgres", "SHOW max_connections")
            .unwrap()
            .trim(),
        "50"
    );
    assert_eq!(
        cluster.psql("postgres", "SHOW fsync").unwrap().trim(),
        "off"
    );

    // Two fresh databases, really distinct.
    let t = Instant::now();
    let db1 = cluster.create_database().unwrap();
    let db2 = cluster.create_database().unwrap();
    eprintln!("two databases created in {:?}", t.elapsed());
    assert_ne!(db1, db2);
    assert_eq!(
        cluster
            .psql(&db1, "SELECT current_database()")
            .unwrap()
            .trim(),
        db1
    );
    cluster
        .psql(
            &db1,
            "CREATE TABLE t (x int); INSERT INTO t VALUES (41), (1);",
        )
        .unwrap();
    assert_eq!(
        cluster.psql(&db1, "SELECT sum(x) FROM t").unwrap().trim(),
        "42"
    );
    assert_eq!(
        cluster
            .psql(&db2, "SELECT to_regclass('t') IS NULL")
            .unwrap()
            .trim(),
        "t"
    );
    let err = cluster.psql(&db2, "SELECT * FROM t").unwrap_err();
    assert!(err.message().contains("does not exist"), "{err}");
    // ON_ERROR_STOP: nothing after the failing statement runs.
    let err = cluster
        .psql(&db2, "SELECT 1/0;\nCREATE TABLE after_error (x int);")
        .unwrap_err();
    assert!(err.message().contains("division by zero"), "{err}");
    assert_eq!(
        cluster
            .psql(&db2, "SELECT to_regclass('after_error') IS NULL")
            .unwrap()
            .trim(),
        "t"
    );

    // Outage: stop (twice), nothing listens, start (twice), data survived.
    let t = Instant::now();
    cluster.stop_server().unwrap();
    cluster.stop_server().unwrap();
    assert!(!cluster.is_running());
    assert!(!port_open(port), "port {port} still open after stop_server");
    assert!(cluster.psql(&db1, "SELECT 1").is_err());
    assert!(data_dir.join("PG_VERSION").is_file());
    cluster.start_server().unwrap();
    cluster.start_server().unwrap();
    eprintln!("stop + start took {:?}", t.elapsed());
    assert!(cluster.is_running());
    assert_eq!(cluster.port(), port);
    assert_eq!(
        cluster.psql(&db1, "SELECT sum(x) FROM t").unwrap().trim(),
        "42"
    );

    // SCRAM user: right password works, wrong one fails, stored as SCRAM.
    assert_eq!(cluster.scram_user(), Some("bench"));
    let (ok, out, err) = psql_with_password(
        &cluster,
        "bench",
        "s3cret pw:'x",
        &db1,
        "SELECT current_user",
    );
    assert!(ok, "SCRAM login with the right password failed: {err}");
    assert_eq!(out, "bench");
    let (ok, _, err) = psql_with_password(&cluster, "bench", "wrong", &db1, "SELECT current_user");
    assert!(!ok, "SCRAM login with a wrong password succeeded");
    assert!(err.contains("password authentication failed"), "{err}");
    assert_eq!(
        cluster
            .psql(
                "postgres",
                "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'bench'"
            )
            .unwrap()
            .trim(),
        "t"
    );
    // postgres itself still needs no password.
    let (ok, _, err) = psql_with_password(&cluster, "postgres", "", &db1, "SELECT 1");
    assert!(ok, "{err}");

    // Drop: server gone, directory gone.
    let t = Instant::now();
    drop(cluster);
    eprintln!("drop took {:?}", t.elapsed());
    assert!(!data_dir.exists(), "{} survived drop", data_dir.display());
    assert!(!root.exists(), "{} survived drop", root.display());
    assert!(!port_open(port), "port {port} still open after drop");
}

#[test]
fn shared_cluster_gives_each_thread_its_own_database() {
    let a = shared();
    let b = shared();
    assert!(std::ptr::eq(a, b));
    let names: Vec<String> = thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                s.spawn(move || {
                    let db = shared().create_database().unwrap();
                    shared()
                        .psql(&db, &format!("CREATE TABLE mine AS SELECT {i} AS v"))
                        .unwrap();
                    assert_eq!(
                        shared().psql(&db, "SELECT v FROM mine").unwrap().trim(),
                        i.to_string()
                    );
                    db
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: HashSet<&String> = names.iter().collect();
    assert_eq!(distinct.len(), names.len());
    shared().drop_database(&names[0]).unwrap();
    let remaining = shared()
        .psql("postgres", "SELECT datname FROM pg_database")
        .unwrap();
    assert!(!remaining.lines().any(|l| l == names[0]), "{remaining}");
    assert!(remaining.lines().any(|l| l == names[1]), "{remaining}");
}

/// Not a test on its own: when re-run by `guardian_cleans_up_after_abort`
/// with `CHILD_ENV` set, it starts the shared cluster, reports it and aborts.
#[test]
fn guardian_child_process() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let cluster = shared();
    assert!(port_open(cluster.port()));
    let holders = other_holders_of_our_stdio();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "THROWAWAY data={} port={} holders={holders:?}",
        cluster.data_dir().display(),
        cluster.port()
    )
    .unwrap();
    out.flush().unwrap();
    std::process::abort();
}

/// Processes other than us and our parent that hold our stdout or stderr
/// (which would make the parent wait for them to see EOF).
fn other_holders_of_our_stdio() -> Vec<(u32, String)> {
    let me = std::process::id();
    let parent = std::os::unix::process::parent_id();
    let ours: Vec<PathBuf> = ["/proc/self/fd/1", "/proc/self/fd/2"]
        .iter()
        .filter_map(|p| fs::read_link(p).ok())
        .filter(|l| l.to_string_lossy().starts_with("pipe:"))
        .collect();
    assert_eq!(ours.len(), 2, "the parent test pipes stdout and stderr");
    let mut holders = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me || pid == parent {
            continue;
        }
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = fs::read_link(fd.path())
                && ours.contains(&link)
            {
                let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                holders.push((pid, comm.trim().to_owned()));
            }
        }
    }
    holders
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len();
    line[start..].split(' ').next().unwrap()
}

#[test]
fn guardian_cleans_up_after_abort() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "guardian_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read both pipes to EOF on threads: EOF proves no leftover process
    // (server, guardian) kept them open after the child died.
    let (tx, rx) = mpsc::channel();
    for mut pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            let _ = tx.send(text);
        });
    }
    let stdout = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("child stdio reaches EOF");
    let stderr = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("child stdio reaches EOF");
    let status = child.wait().unwrap();
    let output = format!("{stdout}{stderr}");
    assert!(!status.success(), "child should abort: {output}");
    let line = output
        .lines()
        .find_map(|l| l.find("THROWAWAY ").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("child did not report its cluster:\n{output}"));
    assert!(
        line.ends_with("holders=[]"),
        "other processes hold the test's stdout/stderr: {line}"
    );
    let data_dir = Path::new(field(line, "data=")).to_path_buf();
    let port: u16 = field(line, "port=").parse().unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dir_gone = !data_dir.exists() && !data_dir.parent().unwrap().exists();
        let port_closed = !port_open(port);
        if dir_gone && port_closed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "guardian did not clean up within 10 s: dir_gone={dir_gone} port_closed={port_closed} ({})",
            data_dir.display()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A durable cluster keeps every committed row across a `SIGKILL` of its
/// postmaster, with a backend still busy at the time: the restart waits
/// for that backend to go and runs crash recovery.
#[test]
fn a_durable_cluster_keeps_commits_across_a_kill() {
    let cluster = ClusterOptions::new().durable(true).start().unwrap();
    let db = cluster.create_database().unwrap();
    for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
        let value = cluster.psql(&db, &format!("SHOW {setting}")).unwrap();
        assert_eq!(value.trim(), "on", "{setting}");
    }
    cluster
        .psql(
            &db,
            "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 1000);",
        )
        .unwrap();
    // A backend busy in a statement when the postmaster dies.
    let mut busy = Command::new(cluster.psql_path())
        .args(["-X", "-h", "127.0.0.1", "-U", "postgres", "-p"])
        .arg(cluster.port().to_string())
        .args(["-d", &db, "-c", "SELECT pg_sleep(60)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster
        .psql(
            &db,
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'",
        )
        .unwrap()
        .trim()
        != "1"
    {
        assert!(Instant::now() < deadline, "psql never started");
        thread::sleep(Duration::from_millis(20));
    }

    cluster.kill_server().unwrap();
    assert!(!cluster.is_running());
    cluster.start_server().unwrap();

    let count = cluster.psql(&db, "SELECT count(*) FROM t").unwrap();
    assert_eq!(count.trim(), "1000");
    assert!(
        cluster
            .server_log()
            .contains("database system was interrupted")
            || cluster.server_log().contains("was not properly shut down"),
        "{}",
        cluster.server_log()
    );
    let _ = busy.wait();
}

#[test]
fn a_default_cluster_trades_durability_for_speed() {
    let cluster = shared();
    let value = cluster.psql("postgres", "SHOW synchronous_commit").unwrap();
    assert_eq!(value.trim(), "off");
}
