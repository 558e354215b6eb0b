//! [`Tx`]: the request's write transaction.

use http::StatusCode;
use provision::{Dep, Error, Exit, Provide, Request};

use crate::store::Connection;

use super::{Conn, store_error};

/// A transaction on this request's connection, opened when a handler first
/// asks for it. Committed in `settle`, once the handler has answered with a
/// success and before the client hears so; rolled back on any other
/// outcome. A failed commit turns the answer into an error, so a 201 is
/// never sent for a write that was not kept.
pub struct Tx {
    conn: Dep<Conn>,
}

impl Tx {
    /// The connection, inside the transaction.
    pub fn get(&self) -> Result<&Connection, Error> {
        self.conn.get()
    }
}

impl Provide for Tx {
    type Lifetime = Request;
    type Deps = (Conn,);

    async fn build((conn,): (Dep<Conn>,)) -> Result<Self, Error> {
        conn.get()?.begin().await.map_err(store_error)?;
        Ok(Tx { conn })
    }

    async fn settle(&self, exit: Exit) -> Result<(), Error> {
        let connection = self.get()?;
        if exit.is_success() {
            connection.commit().await.map_err(|e| {
                let error = store_error(e);
                if error.status() == Some(StatusCode::SERVICE_UNAVAILABLE) {
                    error
                } else {
                    Error::new("the change could not be saved")
                        .with_status(StatusCode::INTERNAL_SERVER_ERROR)
                }
            })
        } else {
            connection.rollback().await.map_err(store_error)
        }
    }

    /// The handler panicked or the client left before `settle`: undo.
    async fn release(self, exit: Exit) -> Result<(), Error> {
        let connection = self.get()?;
        if connection.in_transaction() {
            tracing::debug!(exit = exit.label(), "rolling back an unsettled transaction");
            connection.rollback().await.map_err(store_error)?;
        }
        Ok(())
    }
}
