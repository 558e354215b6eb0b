//! [`Lazy`]: a handle to a service that is built when first used, not when
//! the handler is called.

use std::fmt;
use std::marker::PhantomData;

use crate::{Dep, Error, Provide, RequestScope};

/// A service of type `T` for this request, built the first time
/// [`get`](Lazy::get) is awaited instead of when the handler's arguments
/// are extracted.
///
/// Take services that do I/O (a database connection, a transaction, a
/// caller looked up by token) as `Lazy<T>` in handlers. axum extracts a
/// handler's arguments in order and the body last, so an eager `Dep<Conn>`
/// would open a connection before the body is read, and a request refused
/// for a malformed body would still have opened one. With `Lazy<Conn>`,
/// every 4xx for bad input (path, query, headers, body syntax, size,
/// content type, and validation done at extraction) is answered before
/// anything is built, whatever order the arguments are listed in. Keep
/// `Dep<T>` for services that do no I/O (a token checked for shape only),
/// whose refusal should come before the body is read.
///
/// Extracting a `Lazy<T>` builds nothing; it only remembers the request's
/// scope (and, when some service depends on it, copies the
/// [`RequestHead`](crate::RequestHead), which is gone once the body has
/// been read). That opens the scope, as any ask does: a request whose
/// handler takes a `Lazy<T>` pays for a scope (one allocation, closed on
/// the idle fast path) even if it never calls `get`. The value is memoised by the scope like any `Dep<T>`: two
/// `get`s of a request service build it once, and it is released when the
/// request ends, like everything else in the scope.
///
/// ```
/// use provision::{Dep, Error, Exit, Lazy, Provide, Registry, Request};
/// use provision::integration::{RegistryControl, ScopeControl};
/// use http::StatusCode;
///
/// struct Conn;
/// impl Provide for Conn {
///     type Lifetime = Request;
///     type Deps = ();
///     async fn build(_: ()) -> Result<Self, Error> { Ok(Conn) }
/// }
///
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } }
/// # }
/// # block_on(async {
/// let registry = Registry::builder().register::<Conn>().build().await?;
/// let scope = registry.open_scope();
/// let conn: Lazy<Conn> = scope.lazy();          // what the extractor does
/// assert_eq!(registry.probe().acquires::<Conn>(), 0, "nothing built yet");
/// let _first: Dep<Conn> = conn.get().await?;    // built here
/// let _again: Dep<Conn> = conn.get().await?;    // memoised
/// assert_eq!(registry.probe().acquires::<Conn>(), 1);
/// # drop((_first, _again));
/// scope.close(Exit::Success(StatusCode::OK)).await;
/// assert_eq!(registry.probe().releases::<Conn>(), 1);
/// # Ok::<(), Error>(()) }).unwrap();
/// ```
///
/// Like `Dep<T>`, `Lazy<T>` for a `T` that nothing provides does not
/// compile:
///
/// ```compile_fail
/// struct Mailer;
/// async fn handler(_mailer: provision::Lazy<Mailer>) {}
/// ```
pub struct Lazy<T: Provide> {
    scope: RequestScope,
    _service: PhantomData<fn() -> T>,
}

impl<T: Provide> Lazy<T> {
    pub(crate) fn new(scope: RequestScope) -> Lazy<T> {
        Lazy {
            scope,
            _service: PhantomData,
        }
    }

    /// The service, built now if this request has not built it yet (a
    /// transient service is built anew by each call).
    ///
    /// The error is the build's own, with its status (a 401 from
    /// authentication, a 503 from an unreachable database), so `?` turns it
    /// into a handler's error type through `From<provision::Error>`. An
    /// error without a status is an internal failure: show the client a
    /// generic message, not this one (it may name a host or a query).
    pub async fn get(&self) -> Result<Dep<T>, Error> {
        if let Some(dep) = self.scope.cached::<T>() {
            return Ok(dep);
        }
        self.scope.resolve_uncached::<T>().await
    }

    /// Whether the service has been built in this request already (always
    /// `true` for an app service, `false` for a transient one).
    pub fn is_built(&self) -> bool {
        self.scope.cached::<T>().is_some()
    }

    /// The scope the service is built in.
    pub fn scope(&self) -> &RequestScope {
        &self.scope
    }
}

impl<T: Provide> Clone for Lazy<T> {
    fn clone(&self) -> Self {
        Lazy::new(self.scope.clone())
    }
}

impl<T: Provide> fmt::Debug for Lazy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lazy")
            .field("service", &crate::short_type_name::<T>())
            .field("request", &self.scope.id())
            .finish()
    }
}
