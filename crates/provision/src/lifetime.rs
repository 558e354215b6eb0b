//! How long a service lives: [`App`], [`Request`] or [`Transient`].
//!
//! Lifetimes are types, not values, so that the compiler can refuse a
//! dependency that would outlive what it depends on (see [`ServesLifetime`]).

use std::fmt;

mod sealed {
    pub trait Sealed {}
}

/// A service lifetime. Implemented only by [`App`], [`Request`] and
/// [`Transient`].
pub trait Lifetime: sealed::Sealed + Send + Sync + 'static {
    /// The lifetime as a value, for graphs, probes and messages.
    const KIND: LifetimeKind;
}

/// Built once when the registry is built, shared by every request, released
/// at shutdown (after every request scope has closed).
///
/// Hold configuration and pools here. Never a connection: an app value is
/// shared by all requests, and on Cloudflare Workers an I/O object may only be
/// used by the request that created it.
#[derive(Debug, Clone, Copy)]
pub struct App;

/// Built on first use inside a request, shared by everything in that request
/// (extractors, middleware, other services), released when the request ends.
/// Two requests never share one.
#[derive(Debug, Clone, Copy)]
pub struct Request;

/// Built for each use. Each instance is released when the request that asked
/// for it ends.
#[derive(Debug, Clone, Copy)]
pub struct Transient;

impl sealed::Sealed for App {}
impl sealed::Sealed for Request {}
impl sealed::Sealed for Transient {}

impl Lifetime for App {
    const KIND: LifetimeKind = LifetimeKind::App;
}
impl Lifetime for Request {
    const KIND: LifetimeKind = LifetimeKind::Request;
}
impl Lifetime for Transient {
    const KIND: LifetimeKind = LifetimeKind::Transient;
}

/// A lifetime as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifetimeKind {
    /// See [`App`].
    App,
    /// See [`Request`].
    Request,
    /// See [`Transient`].
    Transient,
}

impl LifetimeKind {
    /// The lowercase name used in graphs and messages: `app`, `request`,
    /// `transient`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LifetimeKind::App => "app",
            LifetimeKind::Request => "request",
            LifetimeKind::Transient => "transient",
        }
    }
}

impl fmt::Display for LifetimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Self` is a lifetime whose services may be dependencies of services with
/// lifetime `L`.
///
/// An app service is built once, before any request, and shared by all of
/// them: if it could depend on a request service it would capture the first
/// request's value and hand it to every later request. That is the bug of the
/// source documents (a database socket opened in request 1 and reused by
/// request 2), so it is a compile error here.
#[diagnostic::on_unimplemented(
    message = "a `{L}`-lifetime service cannot depend on a `{Self}`-lifetime service",
    label = "this dependency list names a `{Self}` service",
    note = "an app service is built once and shared by every request; capturing a request value in it hands request 1's value (say, its database connection) to request 2",
    note = "make the dependent service `Request` (or `Transient`), or depend on an `App` service (a pool) and take the per-request value in a `Request` service"
)]
pub trait ServesLifetime<L: Lifetime>: Lifetime {}

impl ServesLifetime<App> for App {}
impl ServesLifetime<Request> for App {}
impl ServesLifetime<Request> for Request {}
impl ServesLifetime<Request> for Transient {}
impl ServesLifetime<Transient> for App {}
impl ServesLifetime<Transient> for Request {}
impl ServesLifetime<Transient> for Transient {}
