//! The log's timestamps: tracing-subscriber's own format (RFC 3339 in UTC,
//! to the microsecond: `2026-11-30T19:33:00.123456Z`), with the date and
//! time of day worked out once per second instead of for every line.
//!
//! Measured with callgrind on `GET /api/health` with the access log on,
//! the timestamp was 2,300 of the 9,800 instructions a line costs; a
//! server answering thousands of requests a second writes the same second
//! on every one of them (as nginx caches its time strings, for the same
//! reason).

use std::cell::RefCell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// [`FormatTime`] for the log: `YYYY-MM-DDTHH:MM:SS.ffffffZ`, UTC.
///
/// ```
/// use tracing_subscriber::fmt::format::Writer;
/// use tracing_subscriber::fmt::time::FormatTime;
///
/// let mut line = String::new();
/// cloud_api::log_time::CachedUtc.format_time(&mut Writer::new(&mut line)).unwrap();
/// assert_eq!(line.len(), "2026-11-30T19:33:00.123456Z".len());
/// assert!(line.ends_with('Z'));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CachedUtc;

thread_local! {
    /// The second last formatted on this thread, and its text up to the
    /// seconds (`2026-11-30T19:33:00`).
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

impl FormatTime for CachedUtc {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = SystemTime::now();
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since_epoch.as_secs();
        SECOND.with(|cached| {
            let mut cached = cached.borrow_mut();
            if cached.0 != second {
                // tracing-subscriber's own formatting of this instant, cut
                // at the seconds.
                let mut full = String::with_capacity(32);
                tracing_subscriber::fmt::time::SystemTime
                    .format_time(&mut Writer::new(&mut full))?;
                let seconds = full.find('.').unwrap_or(full.len().saturating_sub(1));
                full.truncate(seconds);
                *cached = (second, full);
            }
            w.write_str(&cached.1)?;
            write!(w, ".{:06}Z", since_epoch.subsec_micros())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(timer: &impl FormatTime) -> String {
        let mut line = String::new();
        timer.format_time(&mut Writer::new(&mut line)).unwrap();
        line
    }

    #[test]
    fn reads_as_tracing_subscribers_own_format() {
        // The two readings fall in the same second but at a boundary;
        // retry then.
        for _ in 0..3 {
            let ours = format(&CachedUtc);
            let theirs = format(&tracing_subscriber::fmt::time::SystemTime);
            if ours[..19] == theirs[..19] {
                assert_eq!(ours.len(), theirs.len(), "{ours} / {theirs}");
                assert_eq!(&ours[19..20], ".");
                assert!(ours[20..26].bytes().all(|b| b.is_ascii_digit()), "{ours}");
                assert!(ours.ends_with('Z'), "{ours}");
                return;
            }
        }
        panic!("three readings in a row straddled a second");
    }

    #[test]
    fn a_new_second_is_formatted_anew() {
        let first = format(&CachedUtc);
        // Pretend the cache holds another second: it must not be reused.
        SECOND.with(|c| c.borrow_mut().1 = "1999-01-01T00:00:00".to_owned());
        SECOND.with(|c| c.borrow_mut().0 -= 1);
        let second = format(&CachedUtc);
        assert_eq!(first[..4], second[..4], "{first} / {second}");
        assert!(!second.starts_with("1999"), "{second}");
    }
}
