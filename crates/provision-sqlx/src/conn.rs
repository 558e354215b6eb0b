//! [`Conn`]: one pooled connection for one request.

use provision::{Dep, Error, Exit, Provide, Request};
use sqlx::Database;
use sqlx::pool::PoolConnection;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use crate::Pool;
use crate::error::acquire_error;

/// A connection leased from the [`Pool`] on the request's first ask, used by
/// every handler, extractor and task of that request in turn, and returned
/// to the pool after the response's last byte. Queries autocommit; for
/// writes that must stand or fall together, ask for [`Tx`](crate::Tx).
///
/// ```
/// use provision::Lazy;
/// use provision_sqlx::SqliteConn;
///
/// async fn count(conn: Lazy<SqliteConn>) -> Result<String, String> {
///     let conn = conn.get().await.map_err(|e| e.to_string())?; // leased here
///     let mut conn = conn.acquire().await;
///     let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
///         .fetch_one(&mut *conn)
///         .await
///         .map_err(|e| e.to_string())?;
///     Ok(n.to_string())
/// }
/// ```
pub struct Conn<DB: Database> {
    // A `Dep` is shared by everything the request runs; queries need the
    // connection mutably, one at a time.
    conn: Mutex<PoolConnection<DB>>,
}

impl<DB: Database> Conn<DB> {
    /// The connection, for as long as the guard lives; other users of the
    /// request wait until it is dropped. Use `&mut *guard` as the executor.
    pub async fn acquire(&self) -> MappedMutexGuard<'_, DB::Connection> {
        MutexGuard::map(self.conn.lock().await, |conn| &mut **conn)
    }
}

impl<DB: Database> Provide for Conn<DB> {
    type Lifetime = Request;
    type Deps = (Pool<DB>,);

    async fn build((pool,): (Dep<Pool<DB>>,)) -> Result<Self, Error> {
        let conn = pool.acquire().await.map_err(acquire_error)?;
        Ok(Conn {
            conn: Mutex::new(conn),
        })
    }

    async fn release(self, _: Exit) -> Result<(), Error> {
        // Dropping a `PoolConnection` hands it back to the pool, which
        // finishes whatever a cancelled query left on it before reuse.
        drop(self.conn.into_inner());
        Ok(())
    }
}
