//! The service's `tracing` output, on the Worker's console (`wrangler
//! tail`, or workerd's log): one `console.log` per event.

use std::io;

use tracing_subscriber::fmt::MakeWriter;
use worker::Env;

/// Installs the subscriber, at the level of the `LOG_LEVEL` binding
/// (default `warn`). Once per instance; later calls do nothing.
pub(crate) fn init(env: &Env) {
    let level = env
        .var("LOG_LEVEL")
        .ok()
        .and_then(|v| v.to_string().parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::WARN);
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        // The default timer reads the system clock, which panics on wasm32.
        .without_time()
        .with_writer(Console)
        .finish();
    let _ = tracing::subscriber::set_global_default(subscriber);
}

struct Console;

impl<'a> MakeWriter<'a> for Console {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(Vec::new())
    }
}

/// One event's text, logged when the formatter is done with it.
struct Line(Vec<u8>);

impl io::Write for Line {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            worker::console_log!("{}", String::from_utf8_lossy(&self.0).trim_end());
        }
    }
}
