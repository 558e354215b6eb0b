//! cloud-api's integration tests, in one binary: linked once rather than
//! once per file (each file was its own ~150 MB executable). A module per
//! area; `support` is the one fixture (the service on a loopback port, a
//! fresh store, `on_every_backend!`). Run one area with
//! `cargo test -p cloud-api --test it -- tenant_isolation::`.
//!
//! Nothing here needs a process of its own: no test installs a global
//! tracing subscriber (`connect_retry` sets a thread-local default), a panic
//! hook or process environment, and the tests that need a process (`cli`,
//! `access_log`, `shutdown`) start the `cloud-api` binary.

#[macro_use]
mod support;

mod aborts;
mod access_log;
mod api;
mod bad_input;
mod budgets;
mod cli;
mod connect_retry;
mod connections;
mod crash;
mod dashboard;
mod disconnect;
mod faults;
mod hostile;
mod jobs;
mod log_fields;
mod metrics;
mod openapi_rules;
mod outage;
mod request_scope;
mod schemathesis;
mod shutdown;
mod store_contract;
mod store_postgres;
mod store_sqlite;
mod tenant_isolation;
mod time_bounds;
mod tls;
