//! The log's fields: tracing-subscriber's own text (`name=value`, separated
//! by spaces, the message first and unnamed), written with fewer trips
//! through `core::fmt`.
//!
//! tracing-subscriber's [`DefaultFields`](tracing_subscriber::fmt::format::DefaultFields)
//! formats every field with one `write!` of three arguments (the name and
//! the `=` painted in case the output is a terminal, then the value), and
//! the message through a writer that checks each character for terminal
//! escapes. Measured with callgrind on `GET /api/health` with the access log
//! on, the fields were most of what a line costs. [`PlainFields`] writes the
//! name, the `=` and the value one after the other, and hands everything it
//! does not speed up to `DefaultVisitor` itself: the message (so its
//! escaping is tracing-subscriber's), errors with their sources, raw
//! identifiers (`r#type`), and every field when the output has colours.
//! The text is the same byte for byte; `tests/it/log_fields.rs` compares
//! the two on the same events.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// A field formatter for `tracing_subscriber::fmt::layer().fmt_fields(..)`
/// that writes what [`DefaultFields`](tracing_subscriber::fmt::format::DefaultFields)
/// writes.
///
/// ```
/// use std::io::Write;
/// use std::sync::{Arc, Mutex};
///
/// #[derive(Clone, Default)]
/// struct Lines(Arc<Mutex<Vec<u8>>>);
/// impl Write for Lines {
///     fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
///         self.0.lock().unwrap().write(bytes)
///     }
///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// }
///
/// let lines = Lines::default();
/// let sink = lines.clone();
/// let subscriber = tracing_subscriber::fmt()
///     .fmt_fields(cloud_api::log_fields::PlainFields)
///     .with_writer(move || sink.clone())
///     .with_ansi(false)
///     .without_time()
///     .finish();
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info!(status = 200u16, route = %"/api/health", "answered");
/// });
/// let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
/// assert!(text.ends_with("answered status=200 route=/api/health\n"), "{text}");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainFields;

impl<'w> MakeVisitor<Writer<'w>> for PlainFields {
    type Visitor = PlainVisitor<'w>;

    fn make_visitor(&self, target: Writer<'w>) -> PlainVisitor<'w> {
        PlainVisitor {
            writer: target,
            is_empty: true,
            result: Ok(()),
        }
    }
}

/// Writes one event's or span's fields (see [`PlainFields`]).
#[derive(Debug)]
pub struct PlainVisitor<'w> {
    writer: Writer<'w>,
    /// No field written yet: the next one needs no separating space.
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Whether `field` is written here rather than by `DefaultVisitor`.
    fn plain(&self, field: &Field) -> bool {
        let name = field.name();
        // `log.*`: the fields of a `log` record, which `DefaultVisitor`
        // leaves out when tracing-subscriber's `tracing-log` feature is on.
        !self.writer.has_ansi_escapes()
            && name != "message"
            && !name.starts_with("r#")
            && !name.starts_with("log.")
    }

    /// `DefaultVisitor` writes this field, on the same line.
    fn delegate(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut default = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut default);
        self.result = default.finish();
        self.is_empty = false;
    }

    /// One field: written here by `value` if it is plain, else by
    /// `DefaultVisitor` through `default`; nothing after a failed write.
    fn record(
        &mut self,
        field: &Field,
        value: impl FnOnce(&mut Writer<'_>) -> fmt::Result,
        default: impl FnOnce(&mut DefaultVisitor<'_>),
    ) {
        if self.result.is_err() {
            return;
        }
        if self.plain(field) {
            self.write(field, value);
        } else {
            self.delegate(default);
        }
    }

    /// `name=` then the value, after a space unless it is the first field.
    fn write(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        let writer = &mut self.writer;
        let separator = if std::mem::replace(&mut self.is_empty, false) {
            Ok(())
        } else {
            writer.write_char(' ')
        };
        self.result = separator
            .and_then(|()| writer.write_str(field.name()))
            .and_then(|()| writer.write_char('='))
            .and_then(|()| value(writer));
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(
            field,
            |w| write!(w, "{value:?}"),
            |default| default.record_str(field, value),
        );
    }

    // Integers (a status, a latency) through `itoa`, the digits `Display`
    // writes without `core::fmt`'s padding on the way.
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record(
            field,
            |w| w.write_str(itoa::Buffer::new().format(value)),
            |default| default.record_u64(field, value),
        );
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record(
            field,
            |w| w.write_str(itoa::Buffer::new().format(value)),
            |default| default.record_i64(field, value),
        );
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_ok() {
            self.delegate(|default| default.record_error(field, value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record(
            field,
            |w| write!(w, "{value:?}"),
            |default| default.record_debug(field, value),
        );
    }
}

impl VisitOutput<fmt::Result> for PlainVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for PlainVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}
