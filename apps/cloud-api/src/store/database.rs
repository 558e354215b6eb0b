//! [`Database`]: the app-lifetime handle that hands out [`Connection`]s.

use std::fmt;
use std::future::Future;
#[cfg(feature = "sqlite")]
use std::path::Path;
use std::pin::Pin;
#[cfg(feature = "postgres")]
use std::str::FromStr;
use std::sync::Arc;
#[cfg(feature = "postgres")]
use std::time::Duration;

use super::{Connection, StoreError};

#[cfg(feature = "postgres")]
use super::postgres::{PgConnection, map_connect_error, map_pool_error};
#[cfg(feature = "sqlite")]
use super::sqlite::SqlitePool;

/// How the service talks to PostgreSQL.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostgresMode {
    /// Connections are kept in a pool and leased per request.
    Pool,
    /// Each request opens its own connection and closes it at the end: the
    /// Cloudflare Workers rule, and what PgBouncer or Hyperdrive in front
    /// of the database expect.
    PerRequest,
}

#[cfg(feature = "postgres")]
impl FromStr for PostgresMode {
    type Err = StoreError;

    /// `pool` or `per-request`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pool" => Ok(PostgresMode::Pool),
            "per-request" => Ok(PostgresMode::PerRequest),
            _ => Err(StoreError::Invalid(
                "database mode must be `pool` or `per-request`".into(),
            )),
        }
    }
}

/// Makes one connection for the current request, for a host that connects
/// its own way: on Cloudflare Workers, a socket per request (see
/// `apps/cloud-api-worker`). Used through [`Database::Connector`].
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
    /// PostgreSQL with a connection pool.
    #[cfg(feature = "postgres")]
    Postgres {
        /// The pool; its wait and create timeouts are the acquire timeout.
        pool: deadpool_postgres::Pool,
    },
    /// PostgreSQL with a connection per request.
    #[cfg(feature = "postgres")]
    PostgresPerRequest {
        /// Parsed from the URL; its connect timeout is the acquire timeout.
        config: tokio_postgres::Config,
        /// How long `acquire` may take in all.
        acquire_timeout: Duration,
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
}

impl fmt::Debug for Database {
    /// Never prints the connection string or password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "postgres")]
            Database::Postgres { pool } => f
                .debug_struct("Postgres")
                .field("max_size", &pool.status().max_size)
                .finish_non_exhaustive(),
            #[cfg(feature = "postgres")]
            Database::PostgresPerRequest {
                acquire_timeout, ..
            } => f
                .debug_struct("PostgresPerRequest")
                .field("acquire_timeout", acquire_timeout)
                .finish_non_exhaustive(),
            #[cfg(feature = "sqlite")]
            Database::Sqlite { pool } => f.debug_struct("Sqlite").field("pool", pool).finish(),
            Database::Connector(_) => f.debug_struct("Connector").finish_non_exhaustive(),
        }
    }
}

impl Database {
    /// Prepares access to PostgreSQL at `url` (`postgres://user:pass@host/db`
    /// or key=value form), without TLS. No connection is made yet: the
    /// first [`acquire`](Self::acquire) or [`migrate`](Self::migrate) does
    /// that, so a database that starts after the service is fine.
    ///
    /// `pool_size` only matters in [`PostgresMode::Pool`]. `acquire_timeout`
    /// bounds how long [`acquire`](Self::acquire) may wait for a free
    /// connection and to connect; past it, `Unavailable`.
    ///
    /// Every connection gets `statement_timeout` (so a hung query cannot
    /// hold a connection forever), sent as a startup option: no extra round
    /// trip. (PgBouncer must list `options` in `ignore_startup_parameters`.)
    #[cfg(feature = "postgres")]
    pub fn connect_postgres(
        url: &str,
        mode: PostgresMode,
        pool_size: usize,
        acquire_timeout: Duration,
        statement_timeout: Duration,
    ) -> Result<Database, StoreError> {
        use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

        // The parse error could echo part of the URL (and its password).
        let mut config: tokio_postgres::Config = url.parse().map_err(|_| {
            StoreError::Invalid("the database URL is not a valid PostgreSQL URL".into())
        })?;
        config.connect_timeout(acquire_timeout);
        let statement_timeout = format!(
            "-c statement_timeout={}",
            statement_timeout.as_millis().max(1)
        );
        let options = match config.get_options() {
            Some(existing) => format!("{existing} {statement_timeout}"),
            None => statement_timeout,
        };
        config.options(&options);
        if config.get_application_name().is_none() {
            config.application_name("cloud-api");
        }
        match mode {
            PostgresMode::PerRequest => Ok(Database::PostgresPerRequest {
                config,
                acquire_timeout,
            }),
            PostgresMode::Pool => {
                // Fast recycling only checks that the socket is open. A
                // connection the server dropped silently then fails its
                // first query with `Unavailable` once; `Verified` would
                // prevent that at the cost of a round trip per request.
                let manager = Manager::from_config(
                    config,
                    tokio_postgres::NoTls,
                    ManagerConfig {
                        recycling_method: RecyclingMethod::Fast,
                    },
                );
                let pool = Pool::builder(manager)
                    .max_size(pool_size.max(1))
                    .wait_timeout(Some(acquire_timeout))
                    .create_timeout(Some(acquire_timeout))
                    .recycle_timeout(Some(acquire_timeout))
                    .runtime(Runtime::Tokio1)
                    .build()
                    .map_err(|_| StoreError::Internal("cannot build the database pool".into()))?;
                Ok(Database::Postgres { pool })
            }
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
            Database::Postgres { pool } => {
                // The pool's own timeouts apply to each phase (waiting,
                // connecting); this caps the whole, retries included.
                let budget = pool.timeouts().wait.unwrap_or(Duration::from_secs(30));
                let object = super::retry::with_backoff(budget, || async {
                    pool.get().await.map_err(classify_pool_error)
                })
                .await?;
                Ok(Connection::Postgres(PgConnection::leased(object)))
            }
            #[cfg(feature = "postgres")]
            Database::PostgresPerRequest {
                config,
                acquire_timeout,
            } => {
                let (client, connection) = super::retry::with_backoff(*acquire_timeout, || async {
                    config
                        .connect(tokio_postgres::NoTls)
                        .await
                        .map_err(|e| classify_connect_error(&e))
                })
                .await?;
                // The connection task ends by itself once the client is
                // dropped (it sends Terminate and closes the socket).
                let task = tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(Connection::Postgres(PgConnection::direct(
                    client,
                    Some(task),
                )))
            }
            #[cfg(feature = "sqlite")]
            Database::Sqlite { pool } => Ok(Connection::Sqlite(pool.acquire().await?)),
            Database::Connector(connector) => connector.connect().await,
        }
    }

    /// Applies any pending migrations. Safe to call from several instances
    /// at once on Postgres (they take turns on an advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.acquire().await? {
            #[cfg(feature = "postgres")]
            Connection::Postgres(mut pg) => {
                let result = match pg.client_mut() {
                    Some(client) => super::migrate::migrate_postgres(client).await,
                    None => Err(StoreError::Internal(
                        "cannot migrate through a shared connection".into(),
                    )),
                };
                pg.close().await;
                result
            }
            #[cfg(feature = "sqlite")]
            Connection::Sqlite(sqlite) => sqlite.run(super::migrate::migrate_sqlite).await,
            #[cfg(all(feature = "postgres-wasm", not(feature = "postgres")))]
            Connection::Postgres(pg) => {
                pg.close().await;
                Err(StoreError::Internal(
                    "migrations are applied natively (`cloud-api migrate`), not from a Worker"
                        .into(),
                ))
            }
        }
    }

    /// Stops handing out connections; pooled Postgres connections are
    /// closed as they come back. Per-request and SQLite handles need no
    /// shutdown.
    pub fn close(&self) {
        #[cfg(feature = "postgres")]
        if let Database::Postgres { pool } = self {
            pool.close();
        }
    }
}

/// Whether a failed connect is worth another attempt: refused, reset or
/// timed out connections and a server that is starting up or full are;
/// bad credentials and a missing database are not.
#[cfg(feature = "postgres")]
fn classify_connect_error(e: &tokio_postgres::Error) -> super::retry::Attempt {
    use super::retry::Attempt;
    use tokio_postgres::error::SqlState;
    let error = map_connect_error(e);
    match e.code() {
        Some(code)
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                || *code == SqlState::INVALID_CATALOG_NAME =>
        {
            Attempt::Final(error)
        }
        _ => Attempt::Transient(error),
    }
}

/// Leasing from the pool: a failed connect inside it is judged like a
/// direct one; a pool wait that timed out or a closed pool is final.
#[cfg(feature = "postgres")]
fn classify_pool_error(e: deadpool_postgres::PoolError) -> super::retry::Attempt {
    use super::retry::Attempt;
    use deadpool_postgres::{PoolError, TimeoutType};
    match e {
        PoolError::Backend(ref inner) => match classify_connect_error(inner) {
            Attempt::Final(_) => Attempt::Final(map_pool_error(e)),
            Attempt::Transient(_) => Attempt::Transient(map_pool_error(e)),
        },
        PoolError::Timeout(TimeoutType::Create) => Attempt::Transient(map_pool_error(e)),
        other => Attempt::Final(map_pool_error(other)),
    }
}
