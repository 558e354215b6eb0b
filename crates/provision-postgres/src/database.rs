//! [`Postgres`]: the app-lifetime handle that hands out connections.

use std::sync::Arc;
use std::time::Duration;

use provision::{App, Error, Exit, Provide};

#[cfg(feature = "tokio")]
use crate::ErrorKind;
use crate::connection::Limits;
use crate::{Connect, Mode, PgConnection, PgError, PgOptions};

// Behind an `Arc`, built once per app: the size of a config is irrelevant.
#[allow(clippy::large_enum_variant)]
enum Backend {
    #[cfg(feature = "tokio")]
    Pool(deadpool_postgres::Pool),
    #[cfg(feature = "tokio")]
    PerRequest(tokio_postgres::Config),
    Connector(Arc<dyn Connect>),
}

/// Where the database is and how to get a connection to it: a pool, the
/// configuration to connect per request, or a host's [`Connect`]. Holds no
/// connection a request could capture, so it lives as long as the app;
/// cheap to clone.
///
/// Supply it to the registry; handlers then ask for
/// [`PgConn`](crate::PgConn) or [`PgTx`](crate::PgTx):
///
/// ```no_run
/// use provision::Registry;
/// use provision_postgres::{Mode, PgOptions, PgTx, Postgres};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let database = Postgres::new(
///     "postgres://app:secret@127.0.0.1/app",
///     PgOptions::default().mode(Mode::PerRequest),
/// )?;
/// let registry = Registry::builder()
///     .supply(database)
///     .register::<PgTx>()
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Postgres {
    backend: Arc<Backend>,
    limits: Arc<Limits>,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for Postgres {
    /// Never prints the connection string or its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("mode", &self.mode())
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.limits.statement_timeout)
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// Prepares access to PostgreSQL at `url` (`postgres://user:pass@host/db`
    /// or the key=value form), without TLS. No connection is made yet: the
    /// first [`acquire`](Self::acquire) does that, so a database that starts
    /// after the service is fine.
    #[cfg(feature = "tokio")]
    pub fn new(url: &str, options: PgOptions) -> Result<Postgres, PgError> {
        // The parse error could echo part of the URL, and its password.
        let config: tokio_postgres::Config = url.parse().map_err(|_| {
            PgError::new(
                ErrorKind::Invalid,
                "the database URL is not a valid PostgreSQL URL",
            )
        })?;
        Postgres::from_config(config, options)
    }

    /// Like [`new`](Self::new), from a parsed configuration.
    #[cfg(feature = "tokio")]
    pub fn from_config(
        mut config: tokio_postgres::Config,
        options: PgOptions,
    ) -> Result<Postgres, PgError> {
        use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

        // Bounds the TCP connect; the whole acquire (the startup handshake
        // included) is bounded by `with_backoff`'s budget.
        config.connect_timeout(options.acquire_timeout);
        if config.get_application_name().is_none()
            && let Some(name) = &options.application_name
        {
            config.application_name(name);
        }
        if options.startup_statement_timeout {
            let setting = format!(
                "-c statement_timeout={}",
                options.statement_timeout.as_millis().max(1)
            );
            let combined = match config.get_options() {
                Some(existing) => format!("{existing} {setting}"),
                None => setting,
            };
            config.options(&combined);
        }
        let cancel_at = crate::cancel::CancelAddress::of(&config);
        let backend = match options.mode {
            Mode::PerRequest => Backend::PerRequest(config),
            Mode::Pool => {
                // Fast recycling only checks that the socket is open; a
                // connection the server dropped silently fails its next
                // statement once (a 503), where `Verified` would cost a
                // round trip per request.
                let manager = Manager::from_config(
                    config,
                    tokio_postgres::NoTls,
                    ManagerConfig {
                        recycling_method: RecyclingMethod::Fast,
                    },
                );
                let pool = Pool::builder(manager)
                    .max_size(options.pool_size)
                    .wait_timeout(Some(options.acquire_timeout))
                    .create_timeout(Some(options.acquire_timeout))
                    .recycle_timeout(Some(options.acquire_timeout))
                    .runtime(Runtime::Tokio1)
                    .build()
                    .map_err(|_| {
                        PgError::new(ErrorKind::Internal, "cannot build the connection pool")
                    })?;
                Backend::Pool(pool)
            }
        };
        Ok(Postgres::with_backend(backend, options, cancel_at))
    }

    /// A database whose connections the host makes (Cloudflare Workers, a
    /// test): one per request that asks, through `connector`. The options'
    /// mode is ignored (this is per-request by construction) and so is the
    /// pool size; the timeouts, retries and timer apply.
    pub fn with_connector(connector: impl Connect, options: PgOptions) -> Postgres {
        Postgres::with_backend(
            Backend::Connector(Arc::new(connector)),
            options,
            #[cfg(feature = "tokio")]
            None,
        )
    }

    fn with_backend(
        backend: Backend,
        options: PgOptions,
        #[cfg(feature = "tokio")] cancel_at: Option<crate::cancel::CancelAddress>,
    ) -> Postgres {
        Postgres {
            backend: Arc::new(backend),
            limits: Arc::new(Limits {
                statement_timeout: options.statement_timeout,
                timer: options.timer,
                #[cfg(feature = "tokio")]
                cancel_at,
            }),
            acquire_timeout: options.acquire_timeout,
        }
    }

    /// Whether requests share a pool or connect each on their own.
    pub fn mode(&self) -> Mode {
        match *self.backend {
            #[cfg(feature = "tokio")]
            Backend::Pool(_) => Mode::Pool,
            _ => Mode::PerRequest,
        }
    }

    /// The pool, in pool mode (for its status: size, idle connections).
    #[cfg(feature = "tokio")]
    pub fn pool(&self) -> Option<&deadpool_postgres::Pool> {
        match &*self.backend {
            Backend::Pool(pool) => Some(pool),
            _ => None,
        }
    }

    /// A connection for one request: leased from the pool or opened, with
    /// transient connect failures retried, all within the acquire timeout.
    /// A [`ErrorKind::Timeout`] or [`ErrorKind::Unavailable`] error (a `503`)
    /// when the database cannot be reached in time.
    ///
    /// Prefer asking for [`PgConn`](crate::PgConn), which calls this once
    /// per request and closes the connection when the request ends.
    pub async fn acquire(&self) -> Result<PgConnection, PgError> {
        let timer = self.limits.timer.as_deref();
        match &*self.backend {
            #[cfg(feature = "tokio")]
            Backend::Pool(pool) => {
                let object =
                    crate::retry::with_backoff(timer, self.acquire_timeout, || async move {
                        pool.get().await.map_err(classify_pool_error)
                    })
                    .await?;
                Ok(PgConnection::leased(object, self.limits.clone()))
            }
            #[cfg(feature = "tokio")]
            Backend::PerRequest(config) => {
                let connected =
                    crate::retry::with_backoff(timer, self.acquire_timeout, || async move {
                        let (client, connection) = config
                            .connect(tokio_postgres::NoTls)
                            .await
                            .map_err(PgError::from_connect)?;
                        // The task ends by itself once the client is dropped
                        // (it sends Terminate and closes the socket).
                        let task = tokio::spawn(async move {
                            let _ = connection.await;
                        });
                        let abort = task.abort_handle();
                        Ok(crate::Connected::new(client, async move {
                            let _ = task.await;
                        })
                        .on_abort(move || abort.abort()))
                    })
                    .await?;
                Ok(PgConnection::direct(connected, self.limits.clone()))
            }
            Backend::Connector(connector) => {
                let connected =
                    crate::retry::with_backoff(timer, self.acquire_timeout, || connector.connect())
                        .await?;
                Ok(PgConnection::direct(connected, self.limits.clone()))
            }
        }
    }

    /// Stops handing out connections: pooled ones are closed as they come
    /// back. Nothing to do in per-request mode.
    pub fn close(&self) {
        #[cfg(feature = "tokio")]
        if let Backend::Pool(pool) = &*self.backend {
            pool.close();
        }
    }
}

/// Leasing from the pool: a failed connect inside it is judged like a
/// direct one; a wait that timed out or a closed pool is final.
#[cfg(feature = "tokio")]
fn classify_pool_error(error: deadpool_postgres::PoolError) -> PgError {
    use deadpool_postgres::{PoolError, TimeoutType};
    match error {
        PoolError::Backend(inner) => PgError::from_connect(inner),
        PoolError::Timeout(TimeoutType::Create) => {
            PgError::transient("timed out connecting to the database")
        }
        PoolError::Timeout(_) => PgError::new(
            ErrorKind::Timeout,
            "timed out waiting for a database connection",
        ),
        PoolError::Closed => PgError::new(ErrorKind::Unavailable, "the connection pool is closed"),
        PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => {
            PgError::new(ErrorKind::Internal, "cannot set up a database connection")
        }
    }
}

impl Provide for Postgres {
    type Lifetime = App;
    type Deps = ();

    /// `Postgres` is made from a URL before startup and supplied
    /// (`RegistryBuilder::supply`); there is nothing to build it from.
    async fn build(_: ()) -> Result<Self, Error> {
        Err(Error::new(
            "`Postgres` is supplied at startup: call `RegistryBuilder::supply(Postgres::new(url, options)?)`",
        ))
    }

    /// At shutdown, after every request has ended: closes the pool.
    async fn release(self, _exit: Exit) -> Result<(), Error> {
        self.close();
        Ok(())
    }
}
