//! [`PgConn`]: this request's connection.

use std::future::Future;

use provision::{Dep, Error, Exit, Provide, Request, RequestBound};

use crate::{PgConnection, PgError, Postgres};

/// One connection for one request: leased from the pool or opened on the
/// request's first ask, shared by everything in that request, and given
/// back or closed when the request ends (after the last byte of its body).
///
/// The connection is [`RequestBound`]: used from another request, or after
/// its own ended, it fails with Cloudflare Workers' own error instead of
/// quietly sharing a socket.
///
/// ```no_run
/// use provision::Lazy;
/// use provision_postgres::PgConn;
///
/// async fn count(conn: Lazy<PgConn>) -> Result<String, provision::Error> {
///     let conn = conn.get().await?; // connected (or leased) here
///     let row = conn.get()?.query_one("SELECT count(*) FROM users", &[]).await?;
///     Ok(row.get::<_, i64>(0).to_string())
/// }
/// ```
pub struct PgConn {
    connection: RequestBound<PgConnection>,
}

impl PgConn {
    /// Wraps a connection made elsewhere, bound to the current request (for
    /// a test override).
    pub fn from_connection(connection: PgConnection) -> PgConn {
        PgConn {
            connection: RequestBound::new(connection).named("PgConn"),
        }
    }

    /// The connection, if this is the request that opened it.
    pub fn get(&self) -> Result<&PgConnection, PgError> {
        Ok(self.connection.get()?)
    }
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn").finish_non_exhaustive()
    }
}

impl Provide for PgConn {
    type Lifetime = Request;
    type Deps = (Postgres,);

    async fn build((database,): (Dep<Postgres>,)) -> Result<Self, Error> {
        Ok(PgConn::from_connection(database.acquire().await?))
    }

    /// Rolls back what is left open, then returns the connection to the
    /// pool, or closes it and waits until its socket is closed.
    ///
    /// Not an `async fn`: that would move the whole connection into the
    /// release future, which the scope boxes for every request.
    fn release(self, _exit: Exit) -> impl Future<Output = Result<(), Error>> + Send {
        let closing = self.connection.into_inner().close();
        async move {
            closing.await;
            Ok(())
        }
    }
}
