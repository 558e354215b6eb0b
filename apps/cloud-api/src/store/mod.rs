//! Database access: a [`Database`] built at startup hands out a
//! [`Connection`] per request, whose methods are the queries the endpoints
//! need, on PostgreSQL or SQLite with the same behaviour.

mod connection;
mod database;
mod error;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod migrate;
#[cfg(any(feature = "postgres", feature = "postgres-wasm"))]
pub mod postgres;
mod reason;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "postgres")]
mod tls;
#[cfg(feature = "sqlite")]
mod transaction;

pub use connection::{Closing, Connection};
#[cfg(feature = "postgres")]
pub use database::PostgresMode;
pub use database::{Connect, Database};
pub use error::StoreError;
#[cfg(feature = "postgres")]
pub use migrate::migrate_postgres;
#[cfg(feature = "sqlite")]
pub use migrate::migrate_sqlite;
pub use reason::Reason;
