//! [`RequestBound`]: a value that only the request that created it may use.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::StatusCode;

use crate::Error;
use crate::ambient;
use crate::scope::ScopeMark;

/// The beginning of every [`CrossRequest`] message: Cloudflare Workers' own
/// words for the same mistake.
pub const CROSS_REQUEST_MESSAGE: &str = "Cannot perform I/O on behalf of a different request.";

/// A value bound to the request that created it, the way Cloudflare Workers
/// binds every I/O object (a socket, a stream) to its request.
///
/// On Workers, using a database socket opened by another request fails with
/// "Cannot perform I/O on behalf of a different request". A native server
/// would happily share the socket, so the bug only shows in production. Wrap
/// the I/O object of a request service in `RequestBound` and the same misuse
/// fails the same way everywhere, in `cargo test` included: using it from
/// another request, after its request ended, or from a request when it was
/// created outside one.
///
/// Checking costs a thread-local read and a comparison.
///
/// ```
/// use provision::{Error, Exit, Registry, RequestBound, RequestScope};
/// use provision::integration::{RegistryControl, ScopeControl};
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } }
/// # }
/// # block_on(async {
/// let registry = Registry::builder().build().await?;
/// let first = registry.open_scope();
/// let second = registry.open_scope();
///
/// let socket = first.in_scope(|| RequestBound::new("socket").named("Db"));
/// assert!(first.in_scope(|| socket.get().is_ok()));
///
/// let err = second.in_scope(|| socket.get().unwrap_err());
/// assert!(err.to_string().starts_with("Cannot perform I/O on behalf of a different request."));
/// # first.close(Exit::Cancelled).await; second.close(Exit::Cancelled).await;
/// # Ok::<(), Error>(()) }).unwrap();
/// ```
pub struct RequestBound<T> {
    value: T,
    origin: Option<Arc<ScopeMark>>,
    name: Name,
}

/// The name for messages, computed only when a message is written.
#[derive(Clone, Copy)]
enum Name {
    Given(&'static str),
    OfType(fn() -> &'static str),
}

impl Name {
    fn get(self) -> &'static str {
        match self {
            Name::Given(name) => name,
            Name::OfType(name) => name(),
        }
    }
}

impl<T> RequestBound<T> {
    /// Binds `value` to the request being polled on this thread (or to "no
    /// request" when called outside one, at startup say).
    ///
    /// Created while an app service is being built, it makes the registry
    /// refuse that service: an app value is shared by every request, so a
    /// request-bound value inside it could never be used.
    pub fn new(value: T) -> Self {
        ambient::note_request_bound(crate::short_type_name::<T>);
        RequestBound {
            value,
            origin: ambient::with_current(|scope| scope.map(|s| s.mark().clone())),
            name: Name::OfType(crate::short_type_name::<T>),
        }
    }

    /// Names the value in error messages (the service that holds it, say);
    /// the default is its type's name.
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = Name::Given(name);
        self
    }

    /// The value, if the current request is the one that created it.
    pub fn get(&self) -> Result<&T, CrossRequest> {
        self.check()?;
        Ok(&self.value)
    }

    /// The value mutably, if the current request is the one that created it.
    pub fn get_mut(&mut self) -> Result<&mut T, CrossRequest> {
        self.check()?;
        Ok(&mut self.value)
    }

    /// The value, unchecked: for a release step that closes it.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The number of the request that created the value (`None`: created
    /// outside any request).
    pub fn origin(&self) -> Option<u64> {
        self.origin.as_ref().map(|o| o.id)
    }

    fn check(&self) -> Result<(), CrossRequest> {
        ambient::with_current(|current| {
            let used_in = current.map(|s| s.id());
            let origin = self.origin.as_ref();
            let ended = origin.is_some_and(|o| o.ended.load(Ordering::Acquire));
            let same = origin.map(|o| o.id) == used_in;
            if same && !ended {
                Ok(())
            } else {
                Err(CrossRequest {
                    name: self.name.get(),
                    created_in: origin.map(|o| o.id),
                    used_in,
                    ended,
                })
            }
        })
    }
}

impl<T: fmt::Debug> fmt::Debug for RequestBound<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBound")
            .field("name", &self.name.get())
            .field("origin", &self.origin())
            .field("value", &self.value)
            .finish()
    }
}

/// A [`RequestBound`] value was used outside the request that created it.
/// Its message begins with [`CROSS_REQUEST_MESSAGE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossRequest {
    name: &'static str,
    created_in: Option<u64>,
    used_in: Option<u64>,
    ended: bool,
}

impl CrossRequest {
    /// The request that created the value (`None`: outside any request).
    pub fn created_in(&self) -> Option<u64> {
        self.created_in
    }

    /// The request that tried to use it (`None`: outside any request).
    pub fn used_in(&self) -> Option<u64> {
        self.used_in
    }

    /// Whether the creating request had already ended.
    pub fn after_end(&self) -> bool {
        self.ended
    }
}

impl fmt::Display for CrossRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = |id: Option<u64>| match id {
            Some(id) => format!("request {id}"),
            None => "outside any request".to_owned(),
        };
        let created = match self.created_in {
            Some(id) => format!("in request {id}"),
            None => "outside any request".to_owned(),
        };
        write!(
            f,
            "{CROSS_REQUEST_MESSAGE} `{}` was created {created} and used ",
            self.name
        )?;
        if self.ended {
            write!(
                f,
                "after that request ended (from {}).",
                place(self.used_in)
            )
        } else {
            write!(f, "from {}.", place(self.used_in))
        }
    }
}

impl std::error::Error for CrossRequest {}

impl From<CrossRequest> for Error {
    fn from(e: CrossRequest) -> Error {
        Error::from_source(e).with_status(StatusCode::INTERNAL_SERVER_ERROR)
    }
}
