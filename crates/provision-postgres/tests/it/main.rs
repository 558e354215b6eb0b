//! provision-postgres over real HTTP on loopback against a throwaway
//! PostgreSQL cluster (a fresh database per test), in both modes.

mod abandon;
mod bounds;
mod cancel;
mod connector;
mod footprint;
mod pooler;
mod retry;
mod streaming;
mod support;
mod transaction;
