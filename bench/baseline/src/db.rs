//! Getting a connection: leased from a deadpool pool, or opened for the
//! request. Configured exactly like cloud-api's store (`store/database.rs`):
//! no TLS, fast recycling, the acquire timeout on every phase.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{Client, NoTls};

use crate::error::ApiError;
use crate::observe::Metrics;

/// The database, for the whole process.
#[derive(Clone)]
pub enum Db {
    /// Connections kept in a pool, leased per request.
    Pool(Pool),
    /// A fresh connection for each request that needs one.
    PerRequest {
        config: Arc<tokio_postgres::Config>,
        timeout: Duration,
    },
}

impl Db {
    fn config(url: &str, timeout: Duration) -> Result<tokio_postgres::Config, String> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| "the database URL is not a valid PostgreSQL URL".to_owned())?;
        config.connect_timeout(timeout);
        if config.get_application_name().is_none() {
            config.application_name("bench-baseline");
        }
        Ok(config)
    }

    /// A pool of at most `size` connections.
    pub fn pool(url: &str, size: usize, timeout: Duration) -> Result<Db, String> {
        let manager = Manager::from_config(
            Db::config(url, timeout)?,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(size.max(1))
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| format!("cannot build the pool: {e}"))?;
        Ok(Db::Pool(pool))
    }

    /// Connect per request.
    pub fn per_request(url: &str, timeout: Duration) -> Result<Db, String> {
        Ok(Db::PerRequest {
            config: Arc::new(Db::config(url, timeout)?),
            timeout,
        })
    }

    /// A connection for this request.
    pub async fn connect(&self, metrics: &Metrics) -> Result<Conn, ApiError> {
        match self {
            Db::Pool(pool) => {
                let object = pool.get().await.map_err(|e| {
                    tracing::warn!(error = %e, "cannot lease a connection");
                    ApiError::unavailable()
                })?;
                Ok(Conn::Pooled(object))
            }
            Db::PerRequest { config, timeout } => {
                let (client, connection) = tokio::time::timeout(*timeout, config.connect(NoTls))
                    .await
                    .map_err(|_| ApiError::unavailable())?
                    .map_err(|e| {
                        tracing::warn!(error = %e, "cannot connect");
                        ApiError::unavailable()
                    })?;
                metrics.record_connection_opened();
                // Ends by itself (Terminate, then the socket closes) once the
                // client is dropped.
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(Conn::Direct(client))
            }
        }
    }

    /// Stops handing out pooled connections.
    pub fn close(&self) {
        if let Db::Pool(pool) = self {
            pool.close();
        }
    }
}

/// One request's connection: back to the pool, or closed, when dropped.
pub enum Conn {
    /// Leased from the pool.
    Pooled(Object),
    /// Opened for this request.
    Direct(Client),
}

impl Conn {
    /// Runs `work` between `BEGIN` and `COMMIT` (the same statements as
    /// cloud-api's `Tx`: `batch_execute("BEGIN")`, `("COMMIT")`), or
    /// `ROLLBACK` if it fails.
    pub async fn in_transaction<T>(
        self,
        work: impl AsyncFnOnce(&Client) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut tx = Transaction {
            conn: Some(self),
            open: false,
        };
        tx.client()
            .batch_execute("BEGIN")
            .await
            .map_err(crate::error::db_error)?;
        tx.open = true;
        let result = work(tx.client()).await;
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = tx.client().batch_execute(end).await;
        if ended.is_ok() {
            tx.open = false;
        }
        match (result, ended) {
            (Ok(value), Ok(())) => Ok(value),
            (Ok(_), Err(e)) => Err(crate::error::db_error(e)),
            (Err(e), _) => Err(e),
        }
    }
}

/// A connection with (perhaps) an open transaction. Dropped while one is
/// open (the client went away mid-request), it is rolled back in the
/// background and the connection goes back to the pool; if the rollback
/// fails, a pooled connection is detached instead of carrying the
/// transaction to the next request.
struct Transaction {
    conn: Option<Conn>,
    open: bool,
}

impl Transaction {
    fn client(&self) -> &Client {
        self.conn.as_deref().expect("present until dropped")
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        let Some(conn) = self.conn.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            if let Conn::Pooled(object) = conn {
                drop(Object::take(object));
            }
            return;
        };
        runtime.spawn(async move {
            if conn.batch_execute("ROLLBACK").await.is_err()
                && let Conn::Pooled(object) = conn
            {
                drop(Object::take(object));
            }
        });
    }
}

impl Deref for Conn {
    type Target = Client;

    fn deref(&self) -> &Client {
        match self {
            Conn::Pooled(object) => object,
            Conn::Direct(client) => client,
        }
    }
}
