//! [`Db`]: the database, for the whole app: a PostgreSQL pool, the config to
//! connect per request, the embedded SQLite file, or (on Cloudflare Workers)
//! the means to connect each request.

use std::sync::Arc;

use provision::{App, Dep, Error, Exit, Provide};

use crate::metrics::Metrics;
#[cfg(feature = "postgres")]
use crate::settings::DbMode;
use crate::settings::Settings;
use crate::store::Database;
#[cfg(feature = "postgres")]
use crate::store::PostgresMode;

use super::store_error;

/// The database handle. App lifetime: it holds no connection a request could
/// capture, only the means to get one (that is [`Conn`](super::Conn)'s job).
pub struct Db {
    database: Database,
    metrics: Dep<Metrics>,
    per_request: bool,
}

impl Db {
    /// A handle on a database the host opened itself, instead of one built
    /// from the settings: on Cloudflare Workers, a
    /// `Database::PostgresConnector` that connects each request. Supply it to the
    /// registry (`RegistryBuilder::supply`); no migrations are run.
    pub fn from_database(database: Database, metrics: Metrics) -> Db {
        Db {
            per_request: connects_per_request(&database),
            database,
            metrics: Dep(Arc::new(metrics)),
        }
    }

    /// The store-level handle.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// A connection for one request: leased from the pool, or opened.
    pub(crate) async fn acquire(&self) -> Result<crate::store::Connection, Error> {
        let connection = self.database.acquire().await.map_err(store_error)?;
        if self.per_request {
            self.metrics.record_connection_opened();
        }
        Ok(connection)
    }
}

impl Provide for Db {
    type Lifetime = App;
    type Deps = (Settings, Metrics);

    async fn build((settings, metrics): (Dep<Settings>, Dep<Metrics>)) -> Result<Self, Error> {
        let database = open(&settings).map_err(store_error)?;
        // Migrations run at startup, in both modes, before any request.
        database
            .migrate()
            .await
            .map_err(|e| Error::with_source("could not apply database migrations", e))?;
        let per_request = connects_per_request(&database);
        tracing::info!(database = ?database, "database ready");
        Ok(Db {
            database,
            metrics,
            per_request,
        })
    }

    async fn release(self, _exit: Exit) -> Result<(), Error> {
        self.database.close();
        Ok(())
    }
}

/// Whether each request opens (and closes) its own connection.
fn connects_per_request(database: &Database) -> bool {
    #[cfg(feature = "postgres")]
    if let Some(postgres) = database.postgres() {
        return postgres.mode() == PostgresMode::PerRequest;
    }
    #[cfg(any(feature = "postgres", feature = "postgres-wasm"))]
    if matches!(database, Database::PostgresConnector(_)) {
        return true;
    }
    matches!(database, Database::Connector(_))
}

/// The database the settings describe: PostgreSQL when a URL is given,
/// else the embedded SQLite file in the data directory.
pub fn open(settings: &Settings) -> Result<Database, crate::store::StoreError> {
    match &settings.database_url {
        #[cfg(feature = "postgres")]
        Some(url) => {
            let mode = match settings.db_mode {
                DbMode::Pool => PostgresMode::Pool,
                DbMode::PerRequest => PostgresMode::PerRequest,
            };
            Database::connect_postgres_with_migrations(
                url,
                settings.migrations_database_url.as_deref(),
                mode,
                settings.pool_size as usize,
                settings.acquire_timeout,
                settings.statement_timeout,
            )
        }
        #[cfg(feature = "sqlite")]
        None => Database::open_sqlite(settings.sqlite_path()),
        #[allow(unreachable_patterns)]
        _ => Err(crate::store::StoreError::Invalid(
            "this build cannot open the configured database (it was built without that feature)"
                .into(),
        )),
    }
}
