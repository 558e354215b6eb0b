//! What a write does when another connection holds SQLite's write lock: it
//! waits, retrying, up to the busy timeout, and the wait is counted on the
//! pool whose call is waiting ([`SqlitePool::lock_waits`](super::SqlitePool::lock_waits)),
//! so a test can see a writer queued behind another (SQLite itself shows
//! no waiters, unlike PostgreSQL's `pg_stat_activity`).
//!
//! The handler is a plain function (rusqlite takes no closure), so the
//! counter reaches it through the blocking thread that runs the call:
//! [`counting_into`] sets it for the duration of one call.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a write waits for another writer before giving up with
/// `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite's own busy-timeout schedule (`sqliteDefaultBusyCallback`), in
/// milliseconds: short sleeps first, for the common brief lock, then 100 ms.
const DELAYS_MS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];

thread_local! {
    static WAITS: RefCell<Option<Arc<AtomicU64>>> = const { RefCell::new(None) };
}

/// Counts, until dropped, the lock waits of SQLite calls made on this
/// thread into `waits`.
pub(super) fn counting_into(waits: Arc<AtomicU64>) -> Counting {
    WAITS.with(|w| *w.borrow_mut() = Some(waits));
    Counting(())
}

/// Stops the counting begun by [`counting_into`] when dropped.
pub(super) struct Counting(());

impl Drop for Counting {
    fn drop(&mut self) {
        WAITS.with(|w| *w.borrow_mut() = None);
    }
}

/// The busy handler: called with the number of earlier calls for the same
/// lock; returns whether to try again (after sleeping here) or give up
/// (the statement then fails with `SQLITE_BUSY`).
pub(super) fn wait_for_the_lock(earlier_calls: i32) -> bool {
    let attempt = usize::try_from(earlier_calls).unwrap_or(0);
    if attempt == 0 {
        WAITS.with(|w| {
            if let Some(waits) = w.borrow().as_ref() {
                waits.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    let last = DELAYS_MS[DELAYS_MS.len() - 1];
    let delay = DELAYS_MS.get(attempt).copied().unwrap_or(last);
    let waited: u64 = match DELAYS_MS.get(..attempt) {
        Some(earlier) => earlier.iter().sum(),
        None => DELAYS_MS.iter().sum::<u64>() + (attempt - DELAYS_MS.len()) as u64 * last,
    };
    let timeout = BUSY_TIMEOUT.as_millis() as u64;
    if waited >= timeout {
        return false;
    }
    std::thread::sleep(Duration::from_millis(delay.min(timeout - waited)));
    true
}
