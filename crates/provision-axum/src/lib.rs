//! axum and tower integration for [`provision`]: one request scope per
//! request, released when the response body has been sent or dropped.
//!
//! ```
//! use axum::{Router, routing::get};
//! use provision::{Dep, Error, Registry, provide};
//! use provision_axum::ProvisionLayer;
//!
//! struct Greeting(&'static str);
//! #[provide(Request)]
//! impl Greeting {
//!     async fn build() -> Result<Self, Error> { Ok(Greeting("hello")) }
//! }
//!
//! async fn health() -> &'static str { "ok" }                   // builds nothing
//! async fn hello(Dep(g): Dep<Greeting>) -> &'static str { g.0 } // builds one Greeting
//!
//! # async fn run() -> Result<(), Error> {
//! let registry = Registry::builder().register::<Greeting>().build().await?;
//! let app: Router = Router::new()
//!     .route("/health", get(health))
//!     .route("/hello", get(hello))
//!     .layer(ProvisionLayer::new(registry.clone())); // outermost: add it last
//! # Ok(()) }
//! ```
//!
//! What the layer guarantees, per request:
//!
//! * The request is entered whenever its futures (middleware, extractors,
//!   handler, response body) are polled; its scope opens when something
//!   first asks for a service. Handlers and `from_fn` middleware share its
//!   services.
//! * When the handler answers, acquired services are
//!   [settled](provision::Provide::settle) before the answer is sent (a
//!   transaction commits, or the answer becomes an error).
//! * Everything acquired is released exactly once, newest first: once the
//!   body has produced its last frame and before that frame is handed to
//!   the server; when the body is dropped unfinished (the client left); when
//!   the handler panics (the client gets a 500); when the request is dropped
//!   mid-handler; or at shutdown.
//! * The errors the layer answers with itself (a panic, a failed settle) are
//!   written in the application's format
//!   ([`RegistryBuilder::error_response`](provision::RegistryBuilder::error_response);
//!   `{"error": ...}` JSON by default), like `Dep<T>`'s rejections.
//! * A request that acquired nothing costs no future allocation, no body
//!   wrapper and no release work.
//!
//! The releases that cannot be awaited (a request dropped mid-handler, a
//! body dropped unfinished) run on a tokio task by default; a host without
//! tokio supplies a [`Background`] in the request's extensions (on
//! Cloudflare Workers, `provision-worker` hands them to the fetch event's
//! `wait_until`).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod background;
mod body;
mod disconnect;
mod finish_report;
mod future;
mod layer;
mod span;
mod spawn;
#[cfg(not(target_arch = "wasm32"))]
mod timer;

pub use background::{Background, BackgroundTask};
pub use body::ScopedBody;
pub use disconnect::{Finish, FinishFuture, FinishOutcomes, FinishService};
pub use finish_report::{FinishOutcome, FinishReport};
pub use future::ResponseFuture;
pub use layer::{Provision, ProvisionLayer};
pub use spawn::{spawn, spawn_scoped};
#[cfg(not(target_arch = "wasm32"))]
pub use timer::TokioTimer;

// The project README's Rust examples, compiled as doctests of this crate
// (the one that has provision, axum and this layer together), so that the
// first code a reader sees cannot drift from the API. Only under
// `cfg(doctest)`: the README is outside this package.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

use provision::{Exit, Registry};

/// How a request that never finished ended: cut short by shutdown, or its
/// client went away.
pub(crate) fn interrupted(registry: &Registry) -> Exit {
    if registry.is_shutting_down() {
        Exit::Shutdown
    } else {
        Exit::Cancelled
    }
}
