//! A blocking HTTP GET over a raw socket, for tests that drive the
//! `cloud-api` binary from plain threads (no async client, no runtime).

use std::io::{Read, Write};

/// Sends `GET path` with `headers` to `127.0.0.1:port` on a connection
/// the server closes after answering, and returns the whole answer (status
/// line, headers and body) as text.
pub fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: localhost\r\n{extra}connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}
