//! `cloud_api::log_fields::PlainFields` writes what tracing-subscriber's
//! `DefaultFields` writes, and `cloud_api::log_line::PlainLine` what its
//! `Full` format writes, byte for byte: the same events through two
//! subscribers that differ only in the formatter under test, without
//! colours and with them.

use std::io::Write;
use std::sync::{Arc, Mutex};

use cloud_api::log_fields::PlainFields;
use cloud_api::log_line::PlainLine;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::time::FormatTime;

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(bytes)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
struct Outer(Inner);
#[derive(Debug)]
struct Inner;
impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request failed")
    }
}
impl std::fmt::Display for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the database said \"no\"")
    }
}
impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
impl std::error::Error for Inner {}

/// Every kind of field the server's lines carry, and the ones that need
/// care: quotes, terminal escapes in the message and in values, raw
/// identifiers, errors with sources, spans' fields.
fn events() {
    let id = String::from("2301");
    let method = http::Method::GET;
    tracing::info!(
        id = %id,
        method = %method,
        route = %"/api/users/{id}",
        status = 200u16,
        latency_us = 47u64,
        "answered"
    );
    tracing::warn!(
        offset = -3i64,
        ratio = 0.5f64,
        ready = true,
        big = u128::MAX,
        "mixed"
    );
    tracing::info!(name = "quoted \"value\"\twith a tab", "a str field");
    tracing::info!(note = %"escape \x1b[31m in a display value", "display");
    tracing::info!("a message with an escape \x1b[2J and \"quotes\"");
    tracing::info!(r#type = "raw", "a raw identifier");
    tracing::error!(
        error = &Outer(Inner) as &(dyn std::error::Error + 'static),
        "with sources"
    );
    tracing::error!(
        error = &Inner as &(dyn std::error::Error + 'static),
        "no sources"
    );
    tracing::info!(value = ?Some(vec![1, 2]), "debug");
    tracing::info!(only = 1u64);
    tracing::debug!(level = "debug", "below info");
    tracing::trace!(target: "elsewhere", "the lowest level, another target");
    tracing::info!(empty = "", "");
    let span = tracing::info_span!("request", id = 7u64, method = %"POST", path = "/x");
    span.in_scope(|| {
        tracing::info!(step = "inside", "in a span");
        span.record("path", "/y");
        tracing::info!("after a record");
    });
}

/// What `events` writes through the subscriber `make` builds around a
/// sink.
fn written<S>(make: impl FnOnce(Lines) -> S) -> String
where
    S: tracing::Subscriber + Send + Sync + 'static,
{
    let lines = Lines::default();
    tracing::subscriber::with_default(make(lines.clone()), events);
    String::from_utf8(lines.0.lock().unwrap().clone()).unwrap()
}

/// The events through `PlainFields` (`plain`) or `DefaultFields`.
fn formatted(plain: bool, ansi: bool) -> String {
    let builder = move |sink: Lines| {
        tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(ansi)
            .without_time()
    };
    if plain {
        written(|sink| builder(sink).fmt_fields(PlainFields).finish())
    } else {
        written(|sink| builder(sink).fmt_fields(DefaultFields::new()).finish())
    }
}

#[test]
fn plain_fields_write_what_default_fields_write() {
    for ansi in [false, true] {
        assert_same_text(&formatted(false, ansi), &formatted(true, ansi), 13, ansi);
    }
}

/// `ours` is `theirs`, line by line (the first that differs is named),
/// and both hold all `lines` events: a formatter that wrote nothing would
/// compare equal to one that also wrote nothing.
fn assert_same_text(theirs: &str, ours: &str, lines: usize, ansi: bool) {
    assert_eq!(theirs.lines().count(), lines, "ansi {ansi}:\n{theirs}");
    assert!(theirs.contains("answered"), "{theirs}");
    for (line, (t, o)) in theirs.lines().zip(ours.lines()).enumerate() {
        assert_eq!(o, t, "ansi {ansi}, line {line}");
    }
    assert_eq!(ours, theirs, "ansi {ansi}");
}

#[test]
fn the_access_line_reads_as_before() {
    let text = formatted(true, false);
    let first = text.lines().next().unwrap();
    assert!(
        first.ends_with(
            "answered id=2301 method=GET route=/api/users/{id} status=200 latency_us=47"
        ),
        "{first}"
    );
}

/// The same instant on every line, so that two runs compare equal.
#[derive(Clone)]
struct Fixed;

impl FormatTime for Fixed {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        w.write_str("2026-12-01T05:40:00.123456Z")
    }
}

/// The events through `PlainLine` (`plain`) or tracing-subscriber's `Full`
/// format, both with `PlainFields`, every level on.
fn lines(plain: bool, ansi: bool) -> String {
    let builder = move |sink: Lines| {
        tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(ansi)
            .with_max_level(tracing::Level::TRACE)
            .fmt_fields(PlainFields)
    };
    if plain {
        written(|sink| builder(sink).event_format(PlainLine::new(Fixed)).finish())
    } else {
        written(|sink| builder(sink).with_timer(Fixed).finish())
    }
}

#[test]
fn plain_line_writes_what_the_full_format_writes() {
    for ansi in [false, true] {
        assert_same_text(&lines(false, ansi), &lines(true, ansi), 15, ansi);
    }
    // The access line, as the server writes it.
    let plain = lines(true, false);
    assert!(
        plain.lines().next().unwrap().starts_with(
            "2026-12-01T05:40:00.123456Z  INFO it::log_fields: answered id=2301 method=GET"
        ),
        "{plain}"
    );
}
