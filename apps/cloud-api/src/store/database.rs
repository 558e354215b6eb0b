//! [`Database`]: the app-lifetime handle that hands out [`Connection`]s.

use std::fmt;
use std::future::Future;
#[cfg(feature = "sqlite")]
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
#[cfg(feature = "postgres")]
use std::time::Duration;

use super::{Connection, StoreError};

#[cfg(any(feature = "postgres", feature = "postgres-wasm"))]
use super::postgres::PgConnection;
#[cfg(feature = "sqlite")]
use super::sqlite::SqlitePool;

/// How the service talks to PostgreSQL: a pool, or a connection per
/// request (provision-postgres's [`Mode`](provision_postgres::Mode)).
#[cfg(feature = "postgres")]
pub use provision_postgres::Mode as PostgresMode;

/// Makes one connection for the current request, for a host that connects
/// its own way, without provision-postgres's timeouts and retries. Used
/// through [`Database::Connector`]. The Worker connects through
/// provision-postgres instead (`Database::PostgresConnector`); this stays
/// for hosts with their own connection logic (and the Workers test's
/// negative control).
pub trait Connect: Send + Sync + 'static {
    /// A new connection for the request being served. `Unavailable` when
    /// the database cannot be reached.
    fn connect(&self) -> Pin<Box<dyn Future<Output = Result<Connection, StoreError>> + Send + '_>>;
}

/// Where the data lives; built once at startup, cheap to clone.
// Built once per process; the size of `tokio_postgres::Config` is irrelevant.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Database {
    /// PostgreSQL through provision-postgres: a pool, or a connection per
    /// request.
    #[cfg(feature = "postgres")]
    Postgres {
        /// Hands out the request connections.
        postgres: provision_postgres::Postgres,
        /// Where migrations connect (per request, with the same bounded
        /// retry): a direct URL, never through a transaction-mode pooler,
        /// which cannot hold their session lock.
        migrations: provision_postgres::Postgres,
    },
    /// An embedded SQLite file.
    #[cfg(feature = "sqlite")]
    Sqlite {
        /// The file and its idle connections.
        pool: SqlitePool,
    },
    /// A connection per request, made by the host (Cloudflare Workers).
    /// Holds no connection itself, so it may live as long as the app.
    Connector(Arc<dyn Connect>),
    /// PostgreSQL through provision-postgres with connections the host
    /// makes ([`Postgres::with_connector`](provision_postgres::Postgres::with_connector)):
    /// on Cloudflare Workers, a socket per request with the native path's
    /// acquire timeout, connect retries and statement timeout. Migrations
    /// are applied natively, never through it.
    #[cfg(any(feature = "postgres", feature = "postgres-wasm"))]
    PostgresConnector(provision_postgres::Postgres),
}

impl fmt::Debug for Database {
    /// Never prints the connection string or password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "postgres")]
            Database::Postgres { postgres, .. } => f
                .debug_struct("Postgres")
                .field("postgres", postgres)
                .finish_non_exhaustive(),
            #[cfg(feature = "sqlite")]
            Database::Sqlite { pool } => f.debug_struct("Sqlite").field("pool", pool).finish(),
            Database::Connector(_) => f.debug_struct("Connector").finish_non_exhaustive(),
            #[cfg(any(feature = "postgres", feature = "postgres-wasm"))]
            Database::PostgresConnector(postgres) => f
                .debug_struct("PostgresConnector")
                .field("postgres", postgres)
                .finish(),
        }
    }
}

impl Database {
    /// Prepares access to PostgreSQL at `url` (`postgres://user:pass@host/db`
    /// or key=value form), without TLS: a URL that asks for TLS
    /// (`sslmode=require`, `verify-ca`, `verify-full`,
    /// `channel_binding=require`) is refused here, saying so. No connection is made yet: the
    /// first [`acquire`](Self::acquire) or [`migrate`](Self::migrate) does
    /// that, so a database that starts after the service is fine.
    ///
    /// `pool_size` only matters in [`PostgresMode::Pool`]. `acquire_timeout`
    /// bounds how long [`acquire`](Self::acquire) may wait for a free
    /// connection, connect and retry; past it, `Unavailable`.
    ///
    /// `statement_timeout` bounds every statement without any session
    /// setting or startup parameter (both break behind PgBouncer in
    /// transaction mode): `SET LOCAL` in each transaction, and a client-side
    /// deadline on every query, which closes the connection.
    #[cfg(feature = "postgres")]
    pub fn connect_postgres(
        url: &str,
        mode: PostgresMode,
        pool_size: usize,
        acquire_timeout: Duration,
        statement_timeout: Duration,
    ) -> Result<Database, StoreError> {
        Database::connect_postgres_with_migrations(
            url,
            None,
            mode,
            pool_size,
            acquire_timeout,
            statement_timeout,
        )
    }

    /// Like [`connect_postgres`](Self::connect_postgres), with migrations
    /// applied through `migrations_url` (a direct connection, when `url`
    /// goes through a transaction-mode pooler) instead of `url`.
    #[cfg(feature = "postgres")]
    pub fn connect_postgres_with_migrations(
        url: &str,
        migrations_url: Option<&str>,
        mode: PostgresMode,
        pool_size: usize,
        acquire_timeout: Duration,
        statement_timeout: Duration,
    ) -> Result<Database, StoreError> {
        for url in std::iter::once(url).chain(migrations_url) {
            if let Some(reason) = super::tls::refusal(url) {
                return Err(StoreError::Misconfigured(reason));
            }
        }
        // The parse error could echo part of the URL (and its password).
        let parse = |url: &str, which: &str| -> Result<tokio_postgres::Config, StoreError> {
            url.parse().map_err(|_| {
                StoreError::Invalid(format!("the {which} is not a valid PostgreSQL URL"))
            })
        };
        let config = parse(url, "database URL")?;
        let migrations = match migrations_url {
            Some(url) => parse(url, "migrations database URL")?,
            None => config.clone(),
        };
        let migrations = provision_postgres::Postgres::from_config(
            migrations,
            provision_postgres::PgOptions::default()
                .mode(PostgresMode::PerRequest)
                .acquire_timeout(acquire_timeout)
                .application_name("cloud-api-migrate"),
        )
        .map_err(super::postgres::from_pg)?;
        let options = provision_postgres::PgOptions::default()
            .mode(mode)
            .pool_size(pool_size)
            .acquire_timeout(acquire_timeout)
            .statement_timeout(statement_timeout)
            .application_name("cloud-api");
        let postgres = provision_postgres::Postgres::from_config(config, options)
            .map_err(super::postgres::from_pg)?;
        Ok(Database::Postgres {
            postgres,
            migrations,
        })
    }

    /// The provision-postgres handle, for PostgreSQL.
    #[cfg(feature = "postgres")]
    pub fn postgres(&self) -> Option<&provision_postgres::Postgres> {
        match self {
            Database::Postgres { postgres, .. } => Some(postgres),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Opens (creating if needed, with its directory) the SQLite database
    /// at `path`, switches it to WAL mode and applies the migrations.
    /// Blocking: call it at startup.
    #[cfg(feature = "sqlite")]
    pub fn open_sqlite(path: impl AsRef<Path>) -> Result<Database, StoreError> {
        Ok(Database::Sqlite {
            pool: SqlitePool::open(path)?,
        })
    }

    /// A connection for one request: leased from the pool, freshly
    /// connected, or a SQLite connection. `Unavailable` when the database
    /// cannot be reached within the acquire timeout.
    pub async fn acquire(&self) -> Result<Connection, StoreError> {
        match self {
            #[cfg(feature = "postgres")]
            Database::Postgres { postgres, .. } => {
                let connection = postgres.acquire().await.map_err(super::postgres::from_pg)?;
                Ok(Connection::Postgres(PgConnection::new(connection)))
            }
            #[cfg(feature = "sqlite")]
            Database::Sqlite { pool } => Ok(Connection::Sqlite(pool.acquire().await?)),
            Database::Connector(connector) => connector.connect().await,
            #[cfg(any(feature = "postgres", feature = "postgres-wasm"))]
            Database::PostgresConnector(postgres) => {
                let connection = postgres.acquire().await.map_err(super::postgres::from_pg)?;
                Ok(Connection::Postgres(PgConnection::new(connection)))
            }
        }
    }

    /// Applies any pending migrations. Safe to call from several instances
    /// at once on Postgres (they take turns on an advisory lock), over a
    /// connection of its own to the migrations URL.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            #[cfg(feature = "postgres")]
            Database::Postgres { migrations, .. } => {
                let mut connection = migrations
                    .acquire()
                    .await
                    .map_err(super::postgres::from_pg)?;
                let result = match connection.client_mut() {
                    Some(client) => super::migrate::migrate_postgres(client).await,
                    None => Err(StoreError::Internal(
                        "cannot migrate through a shared connection".into(),
                    )),
                };
                connection.close().await;
                result
            }
            #[cfg(feature = "sqlite")]
            Database::Sqlite { pool } => {
                pool.acquire()
                    .await?
                    .run(super::migrate::migrate_sqlite)
                    .await
            }
            Database::Connector(_) => Err(StoreError::Internal(
                "migrations are applied natively (`cloud-api migrate`), not from a Worker".into(),
            )),
            #[cfg(any(feature = "postgres", feature = "postgres-wasm"))]
            Database::PostgresConnector(_) => Err(StoreError::Internal(
                "migrations are applied natively (`cloud-api migrate`), not from a Worker".into(),
            )),
        }
    }

    /// Stops handing out connections; pooled Postgres connections are
    /// closed as they come back. Per-request and SQLite handles need no
    /// shutdown.
    pub fn close(&self) {
        #[cfg(feature = "postgres")]
        if let Database::Postgres { postgres, .. } = self {
            postgres.close();
        }
    }
}
