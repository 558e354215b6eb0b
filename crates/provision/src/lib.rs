//! Services with lifetimes for HTTP handlers: built only for the handlers
//! that ask, never shared between requests, always released.
//!
//! A handler says what it needs in its signature (`Dep<Db>`); provision
//! builds it on first use inside that request, shares it with everything
//! else in the same request, and releases it, asynchronously and exactly
//! once, when the request ends, telling the release step how it ended. A
//! health check that asks for nothing builds nothing.
//!
//! Three lifetimes ([`App`], [`Request`], [`Transient`]) are types, so the
//! compiler refuses the two mistakes this crate exists to prevent:
//!
//! * asking for a service nothing provides (`Dep<T>` needs `T: Provide`), and
//! * an app service depending on a request service, which would hand
//!   request 1's database connection to request 2.
//!
//! ```
//! use provision::{Dep, Error, Exit, Registry, provide};
//! use http::StatusCode;
//!
//! struct Pool;                       // app: built once at startup
//! #[provide(App)]
//! impl Pool {
//!     async fn build() -> Result<Self, Error> { Ok(Pool) }
//! }
//!
//! struct Conn { id: u32 }            // request: one per request, released at its end
//! #[provide(Request)]
//! impl Conn {
//!     async fn build(pool: Dep<Pool>) -> Result<Self, Error> { Ok(Conn { id: 1 }) }
//!     async fn release(self, exit: Exit) -> Result<(), Error> {
//!         // Return to the pool, close, commit or roll back: `exit` says how the request ended.
//!         Ok(())
//!     }
//! }
//!
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     let waker = std::task::Waker::noop();
//! #     let mut cx = std::task::Context::from_waker(&waker);
//! #     let mut f = std::pin::pin!(f);
//! #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } }
//! # }
//! # block_on(async {
//! let registry = Registry::builder().register::<Conn>().build().await?;
//!
//! // What an integration (provision-axum, provision-worker) does per request:
//! use provision::integration::{RegistryControl, ScopeControl};
//! let scope = registry.open_scope();
//! let conn = scope.resolve::<Conn>().await?;
//! assert_eq!(conn.id, 1);
//! drop(conn);
//! scope.close(Exit::Success(StatusCode::OK)).await;
//!
//! let probe = registry.probe();
//! assert_eq!((probe.acquires::<Conn>(), probe.releases::<Conn>()), (1, 1));
//! registry.shutdown().await;
//! # Ok::<(), Error>(()) }).unwrap();
//! ```
//!
//! [`provide`] writes the [`Provide`] implementation: the lifetime from its
//! argument, the dependency list (`type Deps = (Pool,)`) from `build`'s
//! `Dep<T>` parameters. Implementing [`Provide`] by hand is the same thing
//! spelled out.
//!
//! # A transaction
//!
//! `settle` runs once the handler has answered and before the client is
//! told, so a write is acknowledged only once it is committed; `release`
//! runs when the request has ended, however it ended. The exit says which
//! happened: `release` is told [`Exit::Success`] only if every `settle`
//! succeeded on a success, so the transaction keeps no flag of its own.
//!
//! ```
//! # use std::sync::Mutex;
//! # use provision::{Dep, Error, Exit, Registry, provide};
//! # use provision::integration::{RegistryControl, ScopeControl};
//! # use http::StatusCode;
//! # static SENT: Mutex<Vec<&str>> = Mutex::new(Vec::new());
//! # struct Conn;
//! # impl Conn {
//! #     async fn execute(&self, sql: &'static str) -> Result<(), Error> {
//! #         Ok(SENT.lock().unwrap().push(sql))
//! #     }
//! # }
//! # #[provide(Request)]
//! # impl Conn { async fn build() -> Result<Self, Error> { Ok(Conn) } }
//! struct Tx(Dep<Conn>);
//! #[provide(Request)]
//! impl Tx {
//!     async fn build(conn: Dep<Conn>) -> Result<Self, Error> {
//!         conn.execute("BEGIN").await?;
//!         Ok(Tx(conn))
//!     }
//!     async fn settle(&self, exit: Exit) -> Result<(), Error> {
//!         if exit.is_success() { self.0.execute("COMMIT").await } else { Ok(()) }
//!     }
//!     async fn release(self, exit: Exit) -> Result<(), Error> {
//!         if exit.is_success() { Ok(()) } else { self.0.execute("ROLLBACK").await }
//!     }
//! }
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     let waker = std::task::Waker::noop();
//! #     let mut cx = std::task::Context::from_waker(&waker);
//! #     let mut f = std::pin::pin!(f);
//! #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } }
//! # }
//! # block_on(async {
//! # let registry = Registry::builder().register::<Tx>().build().await?;
//! # for (status, expected) in [
//! #     (StatusCode::CREATED, ["BEGIN", "COMMIT"]),
//! #     (StatusCode::CONFLICT, ["BEGIN", "ROLLBACK"]),
//! # ] {
//! #     let scope = registry.open_scope();
//! #     drop(scope.resolve::<Tx>().await?);
//! #     let exit = Exit::from_status(status);
//! #     scope.settle(exit).await?;
//! #     scope.close(exit).await;
//! #     assert_eq!(std::mem::take(&mut *SENT.lock().unwrap()), expected);
//! # }
//! # registry.shutdown().await;
//! # Ok::<(), Error>(()) }).unwrap();
//! ```
//!
//! # In handlers: `Lazy<T>` for what does I/O
//!
//! With the `axum` feature, a handler takes services as arguments. axum
//! extracts arguments in order and the body last, so an eager `Dep<Conn>`
//! is built (a connection opened) before the body is read, and a request
//! then refused for a malformed body has paid for a connection it never
//! used. Take services that do I/O as [`Lazy<T>`](Lazy): extracting one
//! builds nothing, and the handler builds it with `.get().await?`, which
//! runs only once every argument (path, query, headers, body, and any
//! validation done while extracting them) has been accepted. A request
//! refused for bad input then builds nothing, whatever order the arguments
//! are listed in. Keep `Dep<T>` for services that do no I/O and should
//! refuse a request early (a bearer token checked for shape: a 401 before
//! the body is read).
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use provision::{Dep, Error, Lazy, Provide, Request};
//! # struct Conn;
//! # impl Conn { async fn insert(&self, _: &str) -> Result<u64, Error> { Ok(1) } }
//! # impl Provide for Conn {
//! #     type Lifetime = Request;
//! #     type Deps = ();
//! #     async fn build(_: ()) -> Result<Self, Error> { Ok(Conn) }
//! # }
//! // The body is extracted after `conn`, and a body that cannot be read
//! // refuses the request before the handler runs: nothing was built.
//! async fn create(conn: Lazy<Conn>, body: String) -> Result<String, Error> {
//!     let conn: Dep<Conn> = conn.get().await?;   // built here, on first use
//!     Ok(conn.insert(&body).await?.to_string())
//! }
//! # fn is_response<R: axum_core::response::IntoResponse>(_: Option<R>) {}
//! # is_response::<Result<String, Error>>(None);
//! # let _ = create;
//! # }
//! ```
//!
//! The core has no async runtime dependency and compiles for
//! `wasm32-unknown-unknown`. `provision-axum` runs it on a tokio server;
//! `provision-worker` on Cloudflare Workers.
//!
//! # Budgets: what one request may hold
//!
//! A [`Budget`] limits one request's scope: at most N builds of a service
//! (a transient built in a loop is refused with a `500` naming it), at most
//! T waiting to acquire in all (a `503`), and, through a [`BudgetGroup`]
//! shared by several routes, at most M values of a service held at once by
//! all their requests. Set one for every request with
//! [`RegistryBuilder::budget`], and per route as a tower layer (feature
//! `axum`). Refusals are counted per service
//! ([`ServiceReport::budget_exceeded`], [`Observer::budget_exceeded`]) and
//! what the request built before is released with its exit. A request
//! under no budget pays one atomic load per build: the budget's state is
//! made only for a scope a budget applies to.
//!
//! ```
//! use std::time::Duration;
//! use provision::{Budget, BudgetGroup, Error, Exit, Registry, provide};
//! use provision::integration::{RegistryControl, ScopeControl};
//! use http::StatusCode;
//!
//! struct Statement;
//! #[provide(Transient)]
//! impl Statement {
//!     async fn build() -> Result<Self, Error> { Ok(Statement) }
//! }
//!
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     let waker = std::task::Waker::noop();
//! #     let mut cx = std::task::Context::from_waker(&waker);
//! #     let mut f = std::pin::pin!(f);
//! #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } }
//! # }
//! # block_on(async {
//! let registry = Registry::builder()
//!     .budget(Budget::new().max_builds::<Statement>(2))
//!     .build()
//!     .await?;
//! let scope = registry.open_scope();
//! drop(scope.resolve::<Statement>().await?);
//! drop(scope.resolve::<Statement>().await?);
//! let refused = scope.resolve::<Statement>().await.err().expect("a third is one too many");
//! assert_eq!(refused.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
//! scope.close(Exit::Failure(StatusCode::INTERNAL_SERVER_ERROR)).await;
//! assert_eq!(registry.probe().releases::<Statement>(), 2);
//! # Ok::<(), Error>(()) }).unwrap();
//! ```
//!
//! # Features
//!
//! * `macros` (default): [`provide`], the attribute that writes the
//!   `impl Provide` from an `impl` block whose `build` takes its
//!   dependencies as parameters.
//! * `axum`: [`Dep`], [`Lazy`] and [`RequestScope`] become axum extractors;
//!   [`Error`] and [`Rejection`] answer with the application's error format
//!   ([`RegistryBuilder::error_response`], `{"error": ...}` JSON by default).
//! * `prometheus`: `prometheus::PrometheusObserver`, an [`Observer`] that
//!   keeps every service's lifecycle (builds, releases by exit, failures,
//!   steps abandoned, time waiting and held, values held) as Prometheus
//!   metrics named `provision_service_*`, through `prometheus-client`.
//!
//! # Telemetry
//!
//! A registry's [`Observer`] ([`RegistryBuilder::observer`]) hears every
//! build, settle failure and release. Each build, settle and release also
//! runs in a `tracing` span (`build`, `settle`, `release`; fields
//! `service`, `lifetime`, `exit`, and `error` when it failed) whose parent
//! is the request's span (the span current when its scope opened), even
//! for a release that runs after the response on another task. The spans
//! are at DEBUG level with the target `provision::span`, so at `info` they
//! cost only tracing's cached callsite check; a subscriber that enables
//! them (`RUST_LOG=info,provision::span=debug`, or `tracing-opentelemetry`
//! for OpenTelemetry) sees them inside the request's trace.
//!
//! # For integration crates
//!
//! Opening, settling and closing scopes, and the other pieces a server
//! integration needs, are in [`integration`]; an application does not use
//! them.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod ambient;
mod bound;
mod budget;
mod budget_group;
#[cfg(feature = "axum")]
mod budget_layer;
mod build_once;
mod catch_unwind;
mod dep;
mod error;
mod exit;
#[cfg(feature = "axum")]
mod extract;
mod graph;
mod head;
pub mod integration;
mod job;
mod lazy;
mod lifetime;
mod probe;
#[cfg(feature = "prometheus")]
pub mod prometheus;
mod provide;
mod registry;
#[cfg(feature = "axum")]
mod rejection;
mod resolver;
mod scope;
mod scope_budget;
mod service;
mod span;
mod step_bound;
mod store;
mod timer;
mod wait_list;

pub use bound::{CROSS_REQUEST_MESSAGE, CrossRequest, RequestBound};
pub use budget::{Budget, BudgetLimit};
pub use budget_group::BudgetGroup;
#[cfg(feature = "axum")]
pub use budget_layer::{BudgetFuture, BudgetService};
pub use dep::{Dep, Deps};
pub use error::Error;
pub use exit::Exit;
pub use graph::Graph;
pub use head::RequestHead;
pub use job::{DetachedClose, Job};
pub use lazy::Lazy;
pub use lifetime::{App, Lifetime, LifetimeKind, Request, ServesLifetime, Transient};
pub use probe::{Observer, Probe, ServiceReport};
pub use provide::{Handles, Provide};
#[cfg(feature = "macros")]
pub use provision_macros::provide;
pub use registry::{Registry, RegistryBuilder};
#[cfg(feature = "axum")]
pub use rejection::Rejection;
pub use scope::RequestScope;
pub use service::ServiceInfo;
pub use step_bound::{DEFAULT_STEP_TIMEOUT, Step};
pub use timer::Timer;

/// A type's name without module paths: `Arc<Db>` for `alloc::sync::Arc<app::db::Db>`.
///
/// ```
/// assert_eq!(provision::short_type_name::<Vec<std::string::String>>(), "Vec<String>");
/// assert_eq!(provision::short_type_name::<std::string::String>(), "String");
/// assert_eq!(provision::short_type_name::<u32>(), "u32");
/// ```
pub fn short_type_name<T: ?Sized>() -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    let full = std::any::type_name::<T>();
    // A plain path (`app::db::Db`, most services) shortens to a slice of
    // itself: no allocation and, since observers ask for service names on
    // every build and release, no lock on the request path.
    if full
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
    {
        return full.rsplit("::").next().unwrap_or(full);
    }
    // Generic and other composite names are computed once per type and
    // leaked: there are as many as such service types, a few in a program.
    static NAMES: OnceLock<Mutex<HashMap<&'static str, &'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    names.entry(full).or_insert_with(|| {
        let mut out = String::with_capacity(full.len());
        let mut segment = String::new();
        for c in full.chars() {
            if c.is_alphanumeric() || c == '_' || c == ':' {
                segment.push(c);
            } else {
                out.push_str(segment.rsplit("::").next().unwrap_or(""));
                segment.clear();
                out.push(c);
            }
        }
        out.push_str(segment.rsplit("::").next().unwrap_or(""));
        Box::leak(out.into_boxed_str())
    })
}
