//! [`Tx`]: one transaction for one request, committed before the client is
//! told.

use http::StatusCode;
use provision::{Dep, Error, Exit, Provide, Request};
use sqlx::Database;
use sqlx::pool::PoolConnection;
use sqlx::{SqlSafeStr, SqlStr};
use sqlx_core::transaction::TransactionManager;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use crate::Pool;
use crate::error::{acquire_error, into_error};

/// A transaction begun on a connection leased from the [`Pool`] on the
/// request's first ask.
///
/// * **Commit before the answer.** Once the handler has answered with a
///   success status, and before the client hears of it, the transaction
///   commits (`settle`). If the commit fails, the client gets an error
///   instead of the handler's answer: `409` for a constraint the commit
///   found broken (a deferred one), `500` otherwise.
/// * **Roll back otherwise.** An error status, a panic, a client that went
///   away, a shutdown, or a commit that failed: the transaction is rolled
///   back when the request ends (`release`).
/// * **Never skipped.** The commit runs even when a streaming body or a task
///   still holds the `Dep<Tx>`: it waits for nobody's handle to go away,
///   only for a guard from [`acquire`](Tx::acquire) that is held at that
///   moment to be dropped (so do not keep one across a task's `await` on
///   the response).
///   After the commit, [`acquire`](Tx::acquire) refuses with an error, so
///   a streaming body cannot write outside the transaction by accident (no
///   silent autocommit).
/// * **SQLite writers queue at the begin.** On SQLite the transaction
///   begins with `BEGIN IMMEDIATE` (it takes the write lock at once), so a
///   request that reads and then writes cannot fail on a stale snapshot;
///   concurrent writers wait for each other (the pool's busy timeout). For
///   reads, ask for a [`Conn`](crate::Conn).
/// * **One connection to the last byte.** The connection stays leased until
///   the response's last byte has been sent (or the request was dropped),
///   then goes back to the pool.
///
/// ```
/// use axum::http::StatusCode;
/// use provision::Lazy;
/// use provision_sqlx::{PgTx, into_error};
///
/// async fn create(tx: Lazy<PgTx>) -> Result<StatusCode, (StatusCode, String)> {
///     let failed = |e: provision::Error| (e.status().unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), e.to_string());
///     let tx = tx.get().await.map_err(failed)?; // BEGIN here, after the arguments were accepted
///     let mut conn = tx.acquire().await.map_err(failed)?;
///     sqlx::query("INSERT INTO users (name) VALUES ('Ada')")
///         .execute(&mut *conn)
///         .await
///         .map_err(|e| failed(into_error(e)))?;
///     Ok(StatusCode::CREATED) // committed before the client sees this
/// }
/// ```
pub struct Tx<DB: Database> {
    // Behind a lock because everything the request runs shares the `Dep`,
    // and because `settle` (which gets `&self`) must commit on the same
    // connection without consuming it: the connection is held to the end.
    state: Mutex<State<DB>>,
}

struct State<DB: Database> {
    conn: PoolConnection<DB>,
    phase: Phase,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    Committed,
    /// The commit failed; what the database still holds is rolled back by
    /// `release`.
    CommitFailed,
}

impl<DB: Database> Tx<DB> {
    /// The transaction's connection, for as long as the guard lives; other
    /// users of the request wait until it is dropped. Use `&mut *guard` as
    /// the executor.
    ///
    /// Fails once the transaction has committed or tried to (a streaming
    /// body that runs after the commit): its queries would otherwise run
    /// outside the transaction, each committing on its own.
    pub async fn acquire(&self) -> Result<MappedMutexGuard<'_, DB::Connection>, Error> {
        let state = self.state.lock().await;
        match state.phase {
            Phase::Open => Ok(MutexGuard::map(state, |s| &mut *s.conn)),
            Phase::Committed | Phase::CommitFailed => Err(Error::new(
                "the request's transaction has already ended (it commits before the response \
                 is sent): a query here would run outside it",
            )
            .with_status(StatusCode::INTERNAL_SERVER_ERROR)),
        }
    }
}

/// How the transaction begins: the database's default, except on SQLite,
/// where a deferred `BEGIN` takes the write lock only at the first write,
/// and a transaction that read before another writer committed then fails
/// that write with `SQLITE_BUSY` (its snapshot is stale), which no busy
/// timeout cures. `BEGIN IMMEDIATE` takes the lock up front: other writers
/// wait (up to their busy timeout) instead.
fn begin_statement<DB: Database>() -> Option<SqlStr> {
    (DB::NAME == "SQLite").then(|| "BEGIN IMMEDIATE".into_sql_str())
}

impl<DB: Database> Provide for Tx<DB> {
    type Lifetime = Request;
    type Deps = (Pool<DB>,);

    async fn build((pool,): (Dep<Pool<DB>>,)) -> Result<Self, Error> {
        let mut conn = pool.acquire().await.map_err(acquire_error)?;
        DB::TransactionManager::begin(&mut conn, begin_statement::<DB>())
            .await
            .map_err(acquire_error)?;
        Ok(Tx {
            state: Mutex::new(State {
                conn,
                phase: Phase::Open,
            }),
        })
    }

    async fn settle(&self, exit: Exit) -> Result<(), Error> {
        if !exit.is_success() {
            return Ok(()); // `release` rolls back
        }
        let mut state = self.state.lock().await;
        if state.phase != Phase::Open {
            return Ok(());
        }
        match DB::TransactionManager::commit(&mut state.conn).await {
            Ok(()) => {
                state.phase = Phase::Committed;
                Ok(())
            }
            Err(error) => {
                state.phase = Phase::CommitFailed;
                tracing::warn!(%error, "the request's transaction could not commit");
                Err(into_error(error))
            }
        }
    }

    async fn release(self, exit: Exit) -> Result<(), Error> {
        let State { mut conn, phase } = self.state.into_inner();
        // After a failed commit PostgreSQL has ended the transaction, but
        // SQLite keeps it open (a deferred foreign key): ask the connection.
        let open = phase == Phase::Open || DB::TransactionManager::get_transaction_depth(&conn) > 0;
        if !open {
            return Ok(());
        }
        if let Err(error) = DB::TransactionManager::rollback(&mut conn).await {
            // A connection whose transaction state is unknown must not
            // serve another request.
            let _ = conn.close().await;
            return Err(Error::with_source(
                format!(
                    "the request's transaction could not roll back ({})",
                    exit.label()
                ),
                error,
            ));
        }
        Ok(())
    }
}
