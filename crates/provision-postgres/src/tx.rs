//! [`PgTx`]: the request's transaction, committed before the answer is sent.

use std::sync::atomic::{AtomicBool, Ordering};

use http::StatusCode;
use provision::{Dep, Error, Exit, Provide, Request};

use crate::{ErrorKind, PgConn, PgConnection, PgError};

/// A transaction on this request's [`PgConn`], begun when a handler first
/// asks for it (with the statement timeout set for it alone).
///
/// - **Committed in `settle`**, once the handler has answered with a success
///   status and before the client hears anything: a streaming body's first
///   byte leaves after the commit. A commit that fails turns the answer into
///   an error (`409` for a constraint checked at commit, `503` when the
///   database is gone, else `500`), so a `201` is never sent for a write
///   that was not kept.
/// - **Rolled back** on an error status in `settle`, and in `release` when
///   `settle` never ran (a panic, a client that went away).
/// - Handles held elsewhere (a streaming body keeping a `Dep<PgTx>`) never
///   stop or skip the commit: `settle` borrows the transaction. Once it has
///   run, [`get`](Self::get) refuses, so nothing can write outside the
///   transaction it believes it is in.
///
/// ```no_run
/// use axum::http::StatusCode;
/// use provision::Lazy;
/// use provision_postgres::PgTx;
///
/// async fn create(tx: Lazy<PgTx>) -> Result<StatusCode, provision::Error> {
///     let tx = tx.get().await?; // BEGIN
///     tx.get()?.execute("INSERT INTO users (name) VALUES ($1)", &[&"Ada"]).await?;
///     Ok(StatusCode::CREATED) // committed before the client sees 201
/// }
/// ```
pub struct PgTx {
    conn: Dep<PgConn>,
    settled: AtomicBool,
}

impl PgTx {
    /// The connection, inside the transaction; an error once the
    /// transaction has been settled (committed or rolled back).
    pub fn get(&self) -> Result<&PgConnection, PgError> {
        if self.settled.load(Ordering::Acquire) {
            // A bug in the app: it is logged, the client sees a 500.
            tracing::error!(
                "PgTx used after it was settled (before the response was sent); use PgConn for work after that"
            );
            return Err(PgError::new(ErrorKind::Internal, "internal error"));
        }
        self.conn.get()
    }
}

impl std::fmt::Debug for PgTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTx")
            .field("settled", &self.settled.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Provide for PgTx {
    type Lifetime = Request;
    type Deps = (PgConn,);

    async fn build((conn,): (Dep<PgConn>,)) -> Result<Self, Error> {
        conn.get()?.begin().await?;
        Ok(PgTx {
            conn,
            settled: AtomicBool::new(false),
        })
    }

    async fn settle(&self, exit: Exit) -> Result<(), Error> {
        let connection = self.conn.get()?;
        self.settled.store(true, Ordering::Release);
        if !exit.is_success() {
            return Ok(connection.rollback().await?);
        }
        connection.commit().await.map_err(|error| {
            tracing::warn!(%error, "commit failed; the answer becomes an error");
            match error.kind() {
                ErrorKind::Conflict | ErrorKind::Timeout | ErrorKind::Unavailable => error.into(),
                _ => Error::with_source("the change could not be saved", error)
                    .with_status(StatusCode::INTERNAL_SERVER_ERROR),
            }
        })
    }

    /// `settle` never ran (a panic, a client that left): undo.
    async fn release(self, exit: Exit) -> Result<(), Error> {
        let connection = self.conn.get()?;
        if connection.in_transaction() && !connection.is_broken() {
            tracing::debug!(
                exit = exit.label(),
                "rolling back a transaction that was never settled"
            );
            connection.rollback().await?;
        }
        Ok(())
    }
}
