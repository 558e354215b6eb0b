//! [`Conn`]: this request's database connection.

use std::future::Future;

use provision::{Dep, Error, Exit, Provide, Request, RequestBound};

use crate::store::Connection;

use super::Db;

/// One connection, for one request: leased from the pool (pool mode) or
/// opened (per-request mode) on the request's first query, shared by
/// everything in that request, and given back or closed when it ends.
///
/// The connection is [`RequestBound`]: used from any other request, or
/// after this one ended, it fails with Cloudflare Workers' own error
/// instead of quietly sharing a socket.
pub struct Conn {
    connection: RequestBound<Connection>,
}

impl Conn {
    /// Wraps a connection made elsewhere, bound to the current request: for
    /// a test override that hands requests a fake or counted connection.
    pub fn from_connection(connection: Connection) -> Conn {
        Conn {
            connection: RequestBound::new(connection).named("Conn"),
        }
    }

    /// The connection, if this is the request that opened it.
    pub fn get(&self) -> Result<&Connection, Error> {
        Ok(self.connection.get()?)
    }
}

impl Provide for Conn {
    type Lifetime = Request;
    type Deps = (Db,);

    async fn build((db,): (Dep<Db>,)) -> Result<Self, Error> {
        Ok(Conn::from_connection(db.acquire().await?))
    }

    /// Rolls back anything left open, then returns the connection to the
    /// pool or closes it (waiting for its connection task to end).
    ///
    /// Not an `async fn`: that would move the whole connection into the
    /// release future, which the scope boxes for every request. Here the
    /// connection is given back when the release starts, and the future
    /// holds only what is left to await.
    fn release(self, _exit: Exit) -> impl Future<Output = Result<(), Error>> + Send {
        let closing = self.connection.into_inner().close();
        async move {
            closing.await;
            Ok(())
        }
    }
}
