//! A handful of idle SQLite connections kept for reuse.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::busy;
use super::connection::SqliteConnection;
use crate::store::StoreError;
use crate::store::migrate::migrate_sqlite;

/// Idle connections kept beyond this are closed. Opening one costs a file
/// open and a few pragmas, so reuse matters under load, but SQLite allows
/// one writer at a time, so many connections buy nothing.
const MAX_IDLE: usize = 16;

/// Opens connections to one SQLite file and keeps idle ones for reuse.
/// Cheap to clone (shared).
#[derive(Clone)]
pub struct SqlitePool {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
    lock_waits: Arc<AtomicU64>,
}

impl std::fmt::Debug for SqlitePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlitePool")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqlitePool {
    /// Creates the file's parent directory if needed, switches the database
    /// to WAL mode (readers then never block the writer) and applies the
    /// migrations. Blocking: call it at startup.
    pub fn open(path: impl AsRef<Path>) -> Result<SqlitePool, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(
                    format!(
                        "cannot create the database directory {}: {e}",
                        parent.display()
                    )
                    .into(),
                )
            })?;
        }
        let mut conn = open_connection(&path)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Internal(
                format!(
                    "SQLite refused WAL mode (got {mode}); use a file path, not an in-memory database"
                )
                .into(),
            ));
        }
        migrate_sqlite(&mut conn)?;
        let pool = SqlitePool {
            inner: Arc::new(Inner {
                path,
                idle: Mutex::new(Vec::new()),
                lock_waits: Arc::new(AtomicU64::new(0)),
            }),
        };
        pool.give_back(conn);
        Ok(pool)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// How many times a call on this pool's connections found the write
    /// lock held by another connection and waited for it (each wait counts
    /// once, however long it lasts; migrations at open are not counted).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let pool = cloud_api::store::sqlite::SqlitePool::open(dir.path().join("db.sqlite3"))?;
    /// assert_eq!(pool.lock_waits(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn lock_waits(&self) -> u64 {
        self.inner.lock_waits.load(Ordering::SeqCst)
    }

    /// The counter [`lock_waits`](Self::lock_waits) reads, for the calls
    /// that wait.
    pub(crate) fn lock_waits_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.inner.lock_waits)
    }

    /// An idle connection, or a new one.
    pub async fn acquire(&self) -> Result<SqliteConnection, StoreError> {
        let idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let path = self.inner.path.clone();
                tokio::task::spawn_blocking(move || open_connection(&path))
                    .await
                    .map_err(|_| StoreError::Unavailable("cannot open the database".into()))??
            }
        };
        Ok(SqliteConnection::new(conn, self.clone()))
    }

    /// Takes back a connection that is outside any transaction.
    pub(crate) fn give_back(&self, conn: rusqlite::Connection) {
        if !conn.is_autocommit() {
            return;
        }
        let mut idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

/// Per-connection settings (WAL mode is a property of the file, set once in
/// [`SqlitePool::open`]).
fn open_connection(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open(path)?;
    // SQLite's busy timeout, with the waits counted (see `busy`).
    conn.busy_handler(Some(busy::wait_for_the_lock))?;
    // Off by default in SQLite; the schema's cascades and checks need it.
    conn.pragma_update(None, "foreign_keys", true)?;
    // Durable across application crashes in WAL mode; only a power loss
    // can lose the last commits. The usual choice for WAL.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}
