//! The access log at cloud-api's defaults (no `RUST_LOG`): one line per
//! request on stderr, each line there while the server runs (not held back
//! until exit), and none lost when the server stops on SIGTERM.

use crate::support::raw_http;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cloud-api");

/// The server at its defaults (embedded SQLite in a temporary directory),
/// and its stderr line by line on a channel.
fn start(dir: &std::path::Path) -> (Child, u16, Receiver<String>) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("DATA_DIR", dir)
        .env_remove("RUST_LOG")
        .env_remove("DATABASE_URL")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (send, lines) = channel();
    std::thread::spawn(move || {
        for line in stderr.lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    (child, port, lines)
}

/// Waits (at most 30 s) for a line containing `needle`; returns the lines
/// read on the way, that one included.
fn wait_for(lines: &Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(RecvTimeoutError::Timeout) => panic!("no {needle:?} in 30 s:\n{}", seen.join("\n")),
            Err(RecvTimeoutError::Disconnected) => {
                panic!("stderr closed before {needle:?}:\n{}", seen.join("\n"))
            }
        }
    }
}

fn access_line(line: &str, request_id: &str) -> bool {
    line.contains("answered") && line.contains(&format!("id={request_id} "))
}

#[test]
fn each_request_is_logged_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port, lines) = start(dir.path());
    wait_for(&lines, "listening");
    for n in 0..3 {
        let id = format!("live-{n}");
        let answer = raw_http::get(port, "/api/health", &[("x-request-id", &id)]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // The line arrives while the server keeps running: the writer does
        // not hold lines back until exit.
        let seen = wait_for(&lines, &format!("id={id} "));
        let line = seen.last().unwrap();
        assert!(access_line(line, &id), "{line}");
        assert!(line.contains("route=/api/health"), "{line}");
        assert!(line.contains("status=200"), "{line}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn no_line_is_lost_when_the_server_stops() {
    const REQUESTS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port, lines) = start(dir.path());
    wait_for(&lines, "listening");
    for n in 0..REQUESTS {
        let answer = raw_http::get(
            port,
            "/api/health",
            &[("x-request-id", &format!("stop-{n}"))],
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    // The process has exited, so its stderr ends: everything is in the channel.
    let log: Vec<String> = lines.iter().collect();
    assert_eq!(exit.code(), Some(0), "{}", log.join("\n"));
    let logged = (0..REQUESTS)
        .filter(|n| {
            let id = format!("stop-{n}");
            log.iter().any(|line| access_line(line, &id))
        })
        .count();
    assert_eq!(logged, REQUESTS, "{}", log.join("\n"));
    assert!(
        log.last().is_some_and(|l| l.contains("shut down cleanly")),
        "the last line is the shutdown's: {}",
        log.join("\n")
    );
}
