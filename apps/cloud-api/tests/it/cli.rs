//! The `cloud-api` binary as a user runs it: help, token creation, bad
//! flags, and a clean exit on SIGTERM with everything released.

use crate::support::raw_http;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cloud-api");

fn cloud_api(args: &[&str], data_dir: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("DATA_DIR", data_dir)
        .env_remove("DATABASE_URL")
        .output()
        .expect("the binary runs")
}

#[test]
fn help_explains_every_setting() {
    let dir = tempfile::tempdir().unwrap();
    let out = cloud_api(&["serve", "--help"], dir.path());
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "LISTEN_ADDR",
        "--database-url",
        "DATABASE_URL",
        "--data-dir",
        "DATA_DIR",
        "--db-mode",
        "DB_MODE",
        "per-request",
        "--pool-size",
        "POOL_SIZE",
        "--acquire-timeout",
        "ACQUIRE_TIMEOUT",
        "--migrations-database-url",
        "MIGRATIONS_DATABASE_URL",
        "--list-connections",
        "LIST_CONNECTIONS",
    ] {
        assert!(help.contains(flag), "`{flag}` missing from:\n{help}");
    }
    let top = String::from_utf8(cloud_api(&["--help"], dir.path()).stdout).unwrap();
    for command in ["serve", "migrate", "token"] {
        assert!(top.contains(command), "{top}");
    }
}

#[test]
fn bad_settings_fail_with_a_message_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (
            vec!["serve", "--db-mode", "sometimes"],
            "invalid value 'sometimes'",
        ),
        (vec!["serve", "--acquire-timeout", "soon"], "not a duration"),
        (vec!["serve", "--pool-size", "0"], "--pool-size"),
        (
            vec!["serve", "--list-connections", "0"],
            "--list-connections",
        ),
        (vec!["serve", "--listen", "nowhere"], "--listen"),
        (vec!["token", "create"], "--email"),
    ] {
        let out = cloud_api(&args, dir.path());
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let out = cloud_api(&["token", "create", "--email", "not-an-email"], dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("email"));
    let out = Command::new(BIN)
        .args(["migrate", "--database-url", "mysql://nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("not a valid PostgreSQL URL"), "{stderr}");
    assert!(
        !stderr.contains("mysql://nope"),
        "the URL is not echoed: {stderr}"
    );
}

/// `token create` and `migrate` only touch the database: their help lists
/// the database flags and theirs, not the server's, and they refuse a
/// server flag rather than ignoring it.
#[test]
fn token_create_and_migrate_show_only_the_flags_they_use() {
    let dir = tempfile::tempdir().unwrap();
    for command in [&["token", "create", "--help"][..], &["migrate", "--help"]] {
        let out = cloud_api(command, dir.path());
        assert!(out.status.success(), "{command:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        for used in [
            "--database-url",
            "--migrations-database-url",
            "--data-dir",
            "--acquire-timeout",
            "--statement-timeout",
        ] {
            assert!(
                help.contains(used),
                "{command:?}: `{used}` missing:\n{help}"
            );
        }
        for unused in [
            "--listen",
            "--db-mode",
            "--pool-size",
            "--shutdown-grace",
            "--body-limit",
            "--metrics-token",
        ] {
            assert!(
                !help.contains(unused),
                "{command:?}: `{unused}` shown:\n{help}"
            );
        }
    }
    let help =
        String::from_utf8(cloud_api(&["token", "create", "--help"], dir.path()).stdout).unwrap();
    assert!(
        help.contains("--email") && help.contains("--name"),
        "{help}"
    );
    let out = cloud_api(
        &[
            "token",
            "create",
            "--email",
            "a@example.com",
            "--listen",
            "127.0.0.1:1",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("unexpected argument '--listen'"),
        "{stderr}"
    );
}

/// A startup that fails on the database says why, in PostgreSQL's words:
/// the whole chain of causes, not only the outermost step.
#[test]
fn a_startup_failure_prints_its_whole_cause_chain() {
    let cluster = throwaway_postgres::shared();
    let db = cluster.create_database().unwrap();
    // A role that may connect but not create tables (PostgreSQL 15 took
    // CREATE on `public` away from ordinary roles).
    let role = format!("{db}_reader");
    cluster
        .psql(&db, &format!("CREATE ROLE {role} LOGIN;"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = cluster.port();
    let cases = [
        (
            vec!["serve".to_owned(), "--listen".into(), "127.0.0.1:0".into()],
            format!("postgres://{role}@127.0.0.1:{port}/{db}"),
            "permission denied for schema public",
        ),
        (
            vec!["migrate".to_owned()],
            format!("postgres://{role}@127.0.0.1:{port}/{db}"),
            "permission denied for schema public",
        ),
        (
            vec!["serve".to_owned(), "--listen".into(), "127.0.0.1:0".into()],
            format!("postgres://postgres@127.0.0.1:{port}/{db}_missing"),
            "does not exist",
        ),
    ];
    for (args, url, reason) in cases {
        let out = Command::new(BIN)
            .args(&args)
            .args(["--acquire-timeout", "2s"])
            .env("DATA_DIR", dir.path())
            .env("DATABASE_URL", &url)
            .output()
            .expect("the binary runs");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        let error = stderr
            .lines()
            .skip_while(|l| !l.starts_with("error: "))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            error.contains(reason),
            "{args:?}: `{reason}` missing from:\n{stderr}"
        );
    }
}

/// Behind PgBouncer in transaction mode, migrations go straight to the
/// server through their own URL, and a token is created through the pooler.
#[test]
fn migrate_and_token_create_behind_pgbouncer() {
    let cluster = throwaway_postgres::shared();
    let db = cluster.create_database().unwrap();
    let bouncer = cluster
        .pgbouncer()
        .unwrap_or_else(|e| panic!("cannot start PgBouncer: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("DATA_DIR", dir.path())
            .env("DATABASE_URL", bouncer.url(&db))
            .env("MIGRATIONS_DATABASE_URL", cluster.url(&db))
            .output()
            .expect("the binary runs")
    };
    let migrated = run(&["migrate"]);
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let token = run(&["token", "create", "--email", "ada@example.com"]);
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    assert!(String::from_utf8(token.stdout).unwrap().trim().len() > 20);
    let tables = cluster
        .psql(
            &db,
            "SELECT count(*) FROM users WHERE email = 'ada@example.com'",
        )
        .unwrap();
    assert_eq!(tables.trim(), "1");
}

#[test]
fn token_create_prints_a_working_token_once_and_reuses_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let first = cloud_api(
        &[
            "token",
            "create",
            "--email",
            "ada@example.com",
            "--name",
            "Ada",
        ],
        dir.path(),
    );
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let token = String::from_utf8(first.stdout).unwrap();
    let token = token.trim();
    assert!(token.starts_with("pv_"), "{token}");
    assert!(
        String::from_utf8(first.stderr)
            .unwrap()
            .contains("created user Ada")
    );
    let second = cloud_api(
        &["token", "create", "--email", "ada@example.com"],
        dir.path(),
    );
    let second_token = String::from_utf8(second.stdout).unwrap();
    assert_ne!(second_token.trim(), token, "a new token each time");
    assert!(
        String::from_utf8(second.stderr)
            .unwrap()
            .contains("found user Ada")
    );
    // The token is stored only as a hash.
    let database = std::fs::read(dir.path().join("cloud-api.sqlite3")).unwrap();
    let secret = token.rsplit('_').next().unwrap();
    assert!(
        !database
            .windows(secret.len())
            .any(|w| w == secret.as_bytes()),
        "the secret is not in the database file"
    );
}

#[test]
fn sigterm_drains_releases_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("DATA_DIR", dir.path())
        .env("RUST_LOG", "info,provision=debug")
        .env_remove("DATABASE_URL")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log.contains("listening") {
        assert!(
            Instant::now() < deadline,
            "the server did not start:\n{log}"
        );
        stderr.read_line(&mut log).unwrap();
    }
    // The embedded database answers readiness, so a connection is used.
    let ready = raw_http::get(port, "/api/ready", &[]);
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    log.push_str(&rest);
    assert_eq!(exit.code(), Some(0), "{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("shut down cleanly"), "{log}");
    // The request's connection and, at shutdown, the database were released.
    assert!(
        log.contains(r#"released service="Conn" exit="success""#),
        "{log}"
    );
    assert!(
        log.contains(r#"released service="Db" exit="shutdown""#),
        "{log}"
    );
}
