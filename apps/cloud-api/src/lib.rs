//! The reference service's library: domain types, validation, access rules
//! and database access for PostgreSQL and SQLite.
//!
//! A request that touches scoped data goes:
//!
//! 1. `conn.resolve_token(bearer)` → the [`domain::User`] (or 401);
//! 2. `conn.caller(user.id)` → a [`domain::Caller`] (their memberships);
//! 3. load the target (`conn.get_scope(id)`) and check it with
//!    [`domain::access`] (404 / 403 / ok);
//! 4. the operation, e.g. `conn.create_source(scope.id, &new)`, which
//!    validates its input again and filters by scope itself.

#![forbid(unsafe_code)]

#[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "postgres-wasm")))]
compile_error!(
    "cloud-api needs at least one database feature: `postgres`, `sqlite` or (on Cloudflare Workers) `postgres-wasm`"
);

pub mod app;
pub mod cause;
#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
#[cfg(not(target_arch = "wasm32"))]
pub mod deadline;
pub mod domain;
pub mod http;
pub mod jobs;
#[cfg(not(target_arch = "wasm32"))]
pub mod log_fields;
#[cfg(not(target_arch = "wasm32"))]
pub mod log_line;
#[cfg(not(target_arch = "wasm32"))]
pub mod log_time;
#[cfg(not(target_arch = "wasm32"))]
pub mod log_writer;
pub mod metrics;
#[cfg(not(target_arch = "wasm32"))]
pub mod server;
pub mod services;
pub mod settings;
pub mod store;
