//! For integration crates only: what runs provision under a server or a
//! platform (`provision-axum`, `provision-worker`, one you write for another
//! framework). An application never needs this module: its handlers take
//! `Dep<T>` and `Lazy<T>`, and its services implement `Provide`.
//!
//! An integration, per request:
//!
//! 1. wraps the request's future with [`RegistryControl::request`] (the
//!    scope opens on the first ask for a service, so a request that asks for
//!    nothing opens none), or opens a scope at once with
//!    [`RegistryControl::open_scope`];
//! 2. when the handler has answered, takes the scope back
//!    ([`Scoped::take_scope`]) and runs [`ScopeControl::settle`] before
//!    sending the answer (a transaction commits there);
//! 3. once the response is finished, runs [`ScopeControl::close`] (or
//!    [`ScopeControl::close_if_idle`] when nothing was built), which releases
//!    everything, newest first.
//!
//! The scope operations are methods of two extension traits rather than of
//! [`RequestScope`] and [`Registry`] themselves, so that the types an
//! application uses show only what an application calls, and an integration
//! says what it drives with one `use`. Both traits are sealed: they are
//! implemented by provision's own types only.
//!
//! ```
//! use provision::integration::{RegistryControl, ScopeControl};
//! use provision::{Error, Exit, Provide, Registry, Request};
//! use http::StatusCode;
//!
//! struct Conn;
//! impl Provide for Conn {
//!     type Lifetime = Request;
//!     type Deps = ();
//!     async fn build(_: ()) -> Result<Self, Error> { Ok(Conn) }
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
//! let mut request = std::pin::pin!(registry.request(async {
//!     // The handler: asks for a service through the ambient scope.
//!     let scope = provision::RequestScope::current().expect("inside the request");
//!     scope.resolve::<Conn>().await.map(drop)
//! }));
//! request.as_mut().await?;
//! let scope = request.as_mut().take_scope().expect("the handler asked for a service");
//! let exit = Exit::Success(StatusCode::OK);
//! scope.settle(exit).await?;
//! scope.close(exit).await;
//! assert_eq!(registry.probe().releases::<Conn>(), 1);
//! # Ok::<(), Error>(()) }).unwrap();
//! ```

use std::future::Future;

pub use crate::ambient::Scoped;
pub use crate::catch_unwind::{CatchUnwind, panic_message};
#[cfg(feature = "axum")]
pub use crate::rejection::{error_response, json_error};
pub use crate::resolver::Resolver;
use crate::{Error, Exit, Provide, Registry, RequestScope};

/// The registry of the request being polled on this thread, if any,
/// without opening the request's scope: for an integration that runs part
/// of a request in a scope of its own (`provision-axum`'s `Finish`), so
/// that the request's own scope stays unopened when nothing else asks.
///
/// ```
/// use provision::Registry;
/// use provision::integration::{RegistryControl, current_registry};
///
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } }
/// # }
/// # block_on(async {
/// let registry = Registry::builder().build().await?;
/// assert!(current_registry().is_none(), "outside any request");
/// let mut request = std::pin::pin!(registry.request(async { current_registry().is_some() }));
/// assert!(request.as_mut().await, "inside the request");
/// assert!(request.as_mut().take_scope().is_none(), "asking opened no scope");
/// # Ok::<(), provision::Error>(()) }).unwrap();
/// ```
pub fn current_registry() -> Option<Registry> {
    crate::ambient::registry()
}

/// The budgets the current request's scope is under, if that scope is
/// already open (a budget layer outside opened it and applied its budget),
/// without opening it: what a [`Finish`]-like layer that runs the route in
/// a scope of its own carries over to it. Empty outside a request, or when
/// the request's scope is not open yet (then only the registry's default
/// applies, and the new scope gets that by itself).
///
/// [`Finish`]: https://docs.rs/provision-axum/latest/provision_axum/struct.Finish.html
pub fn current_budgets() -> Vec<crate::Budget> {
    crate::ambient::budgets()
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::Registry {}
    impl Sealed for crate::RequestScope {}
}

/// What an integration does with a [`Registry`]: open request scopes, and
/// write the errors it answers with itself in the application's format.
pub trait RegistryControl: sealed::Sealed {
    /// Opens the scope of one request now. The integration must
    /// [`close`](ScopeControl::close) it. Prefer
    /// [`request`](RegistryControl::request), which opens it only if the
    /// request asks for something.
    fn open_scope(&self) -> RequestScope;

    /// Wraps the future of one request so that it runs inside that request's
    /// scope. The scope is opened only when something first asks for a
    /// service: a request that asks for nothing costs no scope. Take it
    /// back with [`Scoped::take_scope`] when the future completes, to settle
    /// and close it.
    fn request<F>(&self, future: F) -> Scoped<F>;

    /// Whether any known service depends on
    /// [`RequestHead`](crate::RequestHead), so an integration must seed it
    /// into each scope.
    fn uses_request_head(&self) -> bool;

    /// Whether the [`RequestHead`](crate::RequestHead) must be seeded into a
    /// request's scope before service `T` can be built there: whether any
    /// known service depends on it, once `T` itself is known.
    ///
    /// A registered service is known from the start. An unregistered one
    /// (allowed: it is validated on first use) becomes known here, so that
    /// an integration asks this before resolving `T`, while the request's
    /// head is still at hand, instead of finding out during `T`'s first
    /// build, when it is too late to seed it.
    fn needs_request_head<T: Provide>(&self) -> bool;

    /// An error response in this application's format: the one given to
    /// [`RegistryBuilder::error_response`](crate::RegistryBuilder::error_response),
    /// or [`json_error`] by default. For the errors an integration writes
    /// itself (a handler that panicked, a settle step that failed).
    #[cfg(feature = "axum")]
    fn error_response(
        &self,
        status: http::StatusCode,
        message: &str,
    ) -> axum_core::response::Response;
}

impl RegistryControl for Registry {
    fn open_scope(&self) -> RequestScope {
        Registry::open_scope(self)
    }

    fn request<F>(&self, future: F) -> Scoped<F> {
        Registry::request(self, future)
    }

    fn uses_request_head(&self) -> bool {
        Registry::uses_request_head(self)
    }

    fn needs_request_head<T: Provide>(&self) -> bool {
        Registry::needs_request_head::<T>(self)
    }

    #[cfg(feature = "axum")]
    fn error_response(
        &self,
        status: http::StatusCode,
        message: &str,
    ) -> axum_core::response::Response {
        crate::rejection::respond_for(Some(self), status, message)
    }
}

/// What an integration does with a request's [`RequestScope`]: seed it, run
/// work inside it, settle it and close it.
pub trait ScopeControl: sealed::Sealed {
    /// Puts a value for request service `T` in this scope without building
    /// it. Integrations seed what comes with the request itself, such as the
    /// [`RequestHead`](crate::RequestHead); a seeded value has no release
    /// step. Does nothing if `T` is already in the scope.
    fn seed<T: Provide>(&self, value: T);

    /// Whether `T` has a value in this scope (built, or seeded by
    /// [`seed`](ScopeControl::seed)).
    fn contains<T: Provide>(&self) -> bool;

    /// Whether anything was built in this scope. An integration can skip all
    /// end-of-request work when nothing was.
    fn has_acquisitions(&self) -> bool;

    /// Wraps `future` so that it runs inside this scope, without holding the
    /// scope's release back (unlike [`RequestScope::bind`]): for the
    /// integration's own request future.
    fn enter_while<F>(self, future: F) -> Scoped<F>;

    /// Runs `f` inside this scope (for synchronous work such as polling a
    /// response body).
    fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R;

    /// Runs every acquired service's [`settle`](Provide::settle) step, newest
    /// first, once the handler has answered and before the answer is sent.
    /// Returns the first error; every step runs regardless, and once one has
    /// failed the steps after it are told the request failed
    /// (`Exit::Failure` with the error's status, 500 if it has none), since
    /// that failure is what the client will hear. Runs at most once per
    /// scope; later calls return `Ok`.
    fn settle(&self, exit: Exit) -> impl Future<Output = Result<(), Error>> + Send;

    /// Ends the scope: waits for tasks bound to it, then releases everything
    /// acquired, newest first, each exactly once, telling each how the
    /// request ended. Nothing can be built in the scope afterwards, and
    /// request-bound values from it refuse to be used. Only the first call
    /// does anything.
    fn close(&self, exit: Exit) -> impl Future<Output = ()> + Send;

    /// Closes a scope that has nothing to release, without a future: the
    /// fast path for requests that asked for no service. Returns `false`
    /// (and does nothing) if something was acquired or tasks are bound to
    /// the scope; use [`close`](ScopeControl::close) then.
    fn close_if_idle(&self) -> bool;

    /// Whether [`close`](ScopeControl::close) has started.
    fn is_closing(&self) -> bool;

    /// Puts this scope under `budget` as well as the budgets already on it
    /// (the registry's default, earlier layers); its limits win where
    /// several set one. What a route's budget layer does; an integration
    /// that runs a route in a scope of its own (`provision_axum::Finish`)
    /// carries the request's [`budgets`](ScopeControl::budgets) over with it.
    fn apply_budget(&self, budget: &crate::Budget);

    /// The budgets this scope is under, the registry's default first.
    fn budgets(&self) -> Vec<crate::Budget>;
}

impl ScopeControl for RequestScope {
    fn seed<T: Provide>(&self, value: T) {
        RequestScope::seed(self, value)
    }

    fn contains<T: Provide>(&self) -> bool {
        RequestScope::contains::<T>(self)
    }

    fn has_acquisitions(&self) -> bool {
        RequestScope::has_acquisitions(self)
    }

    fn enter_while<F>(self, future: F) -> Scoped<F> {
        RequestScope::enter_while(self, future)
    }

    fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        RequestScope::in_scope(self, f)
    }

    fn settle(&self, exit: Exit) -> impl Future<Output = Result<(), Error>> + Send {
        RequestScope::settle(self, exit)
    }

    fn close(&self, exit: Exit) -> impl Future<Output = ()> + Send {
        RequestScope::close(self, exit)
    }

    fn close_if_idle(&self) -> bool {
        RequestScope::close_if_idle(self)
    }

    fn is_closing(&self) -> bool {
        RequestScope::is_closing(self)
    }

    fn apply_budget(&self, budget: &crate::Budget) {
        RequestScope::apply_budget(self, budget)
    }

    fn budgets(&self) -> Vec<crate::Budget> {
        RequestScope::budgets(self)
    }
}
