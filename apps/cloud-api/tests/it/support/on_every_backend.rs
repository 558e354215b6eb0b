//! The one way to run a test body on every backend: a module per backend
//! (`sqlite`, `postgres_pool`, `postgres_per_request`, and where asked
//! `pgbouncer_pool`, `pgbouncer_per_request`), one test per body in each, so
//! that a failure names both the body and the backend
//! (`api::postgres_pool::users_pagination`).
//!
//! ```ignore
//! on_every_backend! {
//!     #[tokio::test]
//!     contract::{users_pagination, sources_in_scopes}(backend)
//! }
//! ```
//!
//! - `#[...]`: the test attribute each generated test carries.
//! - `[backend, ...]` (optional): the backends, by module name; the
//!   default is SQLite and PostgreSQL in both connection modes.
//! - `path::{name, ...}`: the bodies. `path` is resolved inside the
//!   generated module, which glob-imports its parent: `super` names the
//!   caller's own functions.
//! - `(backend)`: each body is `async fn(Backend)`, given the backend (it
//!   starts what it needs). `(database)`: each body is
//!   `async fn(&Database)`, given a fresh migrated store of that backend
//!   ([`store_db`](super::store_db)).
//!
//! The list of names is the single place naming the tests; a body missing
//! from it is dead code, which clippy rejects.

/// See the module documentation.
macro_rules! on_every_backend {
    (@variant sqlite) => { $crate::support::Backend::Sqlite };
    (@variant postgres_pool) => { $crate::support::Backend::PostgresPool };
    (@variant postgres_per_request) => { $crate::support::Backend::PostgresPerRequest };
    (@variant pgbouncer_pool) => { $crate::support::Backend::PgBouncerPool };
    (@variant pgbouncer_per_request) => { $crate::support::Backend::PgBouncerPerRequest };

    (@call backend $body:path, $backend:expr) => {
        $body($backend).await
    };
    (@call database $body:path, $backend:expr) => {{
        let test_db = $crate::support::store_db($backend).await;
        $body(&test_db.db).await;
        drop(test_db);
    }};

    // The names travel as one token tree: a list repeated inside the
    // repetition over backends would have to repeat as many times as it.
    (@module $backend:ident #$attr:tt $prefix:ident { $($name:ident),* $(,)? } $arg:ident) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            $(
                #$attr
                async fn $name() {
                    on_every_backend!(@call $arg $prefix::$name, on_every_backend!(@variant $backend))
                }
            )*
        }
    };

    (#$attr:tt [$($backend:ident),+ $(,)?] $prefix:ident :: $names:tt ($arg:ident)) => {
        $(on_every_backend!(@module $backend #$attr $prefix $names $arg);)+
    };
    (#$attr:tt $prefix:ident :: $names:tt ($arg:ident)) => {
        on_every_backend!(
            #$attr [sqlite, postgres_pool, postgres_per_request] $prefix :: $names ($arg)
        );
    };
}
