//! Schema migrations (refinery), embedded in the binary at compile time.

use super::error::StoreError;

#[cfg(feature = "postgres")]
mod postgres_migrations {
    refinery::embed_migrations!("migrations/postgres");
}

#[cfg(feature = "sqlite")]
mod sqlite_migrations {
    refinery::embed_migrations!("migrations/sqlite");
}

/// An arbitrary constant key: holding this advisory lock while migrating
/// keeps two server instances starting at once from racing each other.
#[cfg(feature = "postgres")]
const MIGRATION_LOCK_KEY: i64 = 0x636c_6f75_6441_5049; // "cloudAPI"

/// Brings a PostgreSQL database up to the latest schema.
#[cfg(feature = "postgres")]
pub async fn migrate_postgres(client: &mut tokio_postgres::Client) -> Result<(), StoreError> {
    use tokio_postgres::types::Type;

    use super::postgres::map_error;

    client
        .query_typed(
            "SELECT pg_advisory_lock($1)",
            &[(&MIGRATION_LOCK_KEY, Type::INT8)],
        )
        .await
        .map_err(map_error)?;
    let result = postgres_migrations::migrations::runner()
        .run_async(client)
        .await
        .map(drop)
        .map_err(migration_error);
    let unlocked = client
        .query_typed(
            "SELECT pg_advisory_unlock($1)",
            &[(&MIGRATION_LOCK_KEY, Type::INT8)],
        )
        .await
        .map_err(map_error);
    result.and(unlocked.map(drop))
}

/// Brings a SQLite database up to the latest schema.
#[cfg(feature = "sqlite")]
pub fn migrate_sqlite(conn: &mut rusqlite::Connection) -> Result<(), StoreError> {
    sqlite_migrations::migrations::runner()
        .run(conn)
        .map(drop)
        .map_err(migration_error)
}

/// Refinery's message names the migration; the driver's error, with the
/// server's reason (a missing privilege, a conflicting table), is kept as
/// the source for the startup failure to print. A lost connection is still
/// reported as `Unavailable` so a supervisor can tell "retry later" from
/// "broken".
fn migration_error(e: refinery::Error) -> StoreError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    while let Some(inner) = source {
        #[cfg(feature = "postgres")]
        if let Some(pg) = inner.downcast_ref::<tokio_postgres::Error>()
            && let mapped @ StoreError::Unavailable(_) = super::postgres::map_error_ref(pg)
        {
            return mapped.caused_by(e);
        }
        source = inner.source();
    }
    StoreError::Internal(format!("migration failed: {e}").into()).caused_by(e)
}
