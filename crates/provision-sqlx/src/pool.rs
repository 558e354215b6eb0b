//! [`Pool`]: the app's sqlx pool, supplied at startup.

use std::ops::Deref;

use provision::{App, Error, Exit, Provide};
use sqlx::Database;

/// The app's connection pool: one per process, made before startup and
/// handed to [`RegistryBuilder::supply`](provision::RegistryBuilder::supply).
/// [`Conn`](crate::Conn) and [`Tx`](crate::Tx) lease their connection from
/// it. It dereferences to [`sqlx::Pool`], for work outside any request.
///
/// Released (closed) when the registry shuts down, after every request
/// scope has closed.
///
/// ```no_run
/// use provision::Registry;
/// use provision_sqlx::{Pool, SqliteTx};
/// use sqlx::Sqlite;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = sqlx::SqlitePool::connect("sqlite://app.db?mode=rwc").await?;
/// let registry = Registry::builder()
///     .supply(Pool::<Sqlite>::new(pool))
///     .register::<SqliteTx>()
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
pub struct Pool<DB: Database>(sqlx::Pool<DB>);

impl<DB: Database> Pool<DB> {
    /// Wraps a sqlx pool so that it can be supplied to a registry.
    pub fn new(pool: sqlx::Pool<DB>) -> Pool<DB> {
        Pool(pool)
    }
}

impl<DB: Database> Deref for Pool<DB> {
    type Target = sqlx::Pool<DB>;

    fn deref(&self) -> &sqlx::Pool<DB> {
        &self.0
    }
}

impl<DB: Database> Provide for Pool<DB> {
    type Lifetime = App;
    type Deps = ();

    async fn build(_: ()) -> Result<Self, Error> {
        // The pool's URL and sizes are the app's configuration, not
        // provision's: it can only be supplied.
        Err(Error::new(format!(
            "`{}` is supplied at startup: call `RegistryBuilder::supply(Pool::new(pool))`",
            provision::short_type_name::<Self>()
        )))
    }

    async fn release(self, _: Exit) -> Result<(), Error> {
        // Waits for leased connections to come back, then closes them all:
        // every request scope has closed by now (provision's shutdown order).
        self.0.close().await;
        Ok(())
    }
}
