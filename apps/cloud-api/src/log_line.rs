//! The log's line around its fields: tracing-subscriber's own `Full` text
//! (`<time>  INFO <target>: <fields>`), written as plain strings.
//!
//! tracing-subscriber's [`Full`](tracing_subscriber::fmt::format::Full)
//! format writes the level, the target and the separators each through
//! `write!`, wrapped in styles that paint nothing when the output has no
//! colours. Measured with callgrind on `GET /api/health`, that was a
//! quarter of what the access line costs (bench/README.md, "The default
//! configuration"). [`PlainLine`] writes the same bytes with `write_str`
//! for a line without colours and outside any span, which is what the
//! access log is at the default `info`; any other line (colours, or spans
//! to name) is written by `Full` itself. `tests/it/log_fields.rs` compares
//! the two on the same events.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// An event formatter for `tracing_subscriber::fmt::layer().event_format(..)`
/// that writes what tracing-subscriber's default `Full` format writes with
/// the timer `T`.
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
///     .with_writer(move || sink.clone())
///     .with_ansi(false)
///     .event_format(cloud_api::log_line::PlainLine::new(cloud_api::log_time::CachedUtc))
///     .finish();
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info!(target: "cloud_api::http::observe", status = 200u16, "answered");
/// });
/// let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
/// assert!(text.ends_with("Z  INFO cloud_api::http::observe: answered status=200\n"), "{text}");
/// ```
#[derive(Debug, Clone)]
pub struct PlainLine<T> {
    timer: T,
    /// tracing-subscriber's own format, with the same timer: the lines
    /// that are not plain.
    full: Format<Full, T>,
}

impl<T: FormatTime + Clone> PlainLine<T> {
    /// The `Full` format with `timer`'s timestamps.
    pub fn new(timer: T) -> PlainLine<T> {
        PlainLine {
            full: tracing_subscriber::fmt::format().with_timer(timer.clone()),
            timer,
        }
    }
}

impl<S, N, T> FormatEvent<S, N> for PlainLine<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if writer.has_ansi_escapes() || ctx.event_scope().is_some() {
            return self.full.format_event(ctx, writer, event);
        }
        let metadata = event.metadata();
        // As `Full`: a clock that fails does not lose the line.
        if self.timer.format_time(&mut writer).is_err() {
            writer.write_str("<unknown time>")?;
        }
        writer.write_char(' ')?;
        writer.write_str(level(metadata.level()))?;
        writer.write_char(' ')?;
        writer.write_str(metadata.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

/// The level as `Full` writes it without colours: right-aligned in five.
fn level(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}
