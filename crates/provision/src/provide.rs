//! The [`Provide`] trait: how a service is built, settled and released.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::{Deps, Error, Exit, Lifetime};

/// The dependencies a service's `build` receives: a tuple of [`Dep`](crate::Dep)
/// handles, one for each service named in [`Provide::Deps`].
pub type Handles<T> = <<T as Provide>::Deps as Deps<<T as Provide>::Lifetime>>::Handles;

/// A service: a value with a lifetime, built from other services by an async
/// constructor, and released by an async step that sees how its request ended.
///
/// Implementing `Provide` is what makes a type available to handlers
/// (`Dep<T>`) and to other services (`type Deps = (T, ...)`). A type without
/// an implementation cannot be asked for: that is a compile error, never a
/// runtime surprise.
///
/// ```
/// use provision::{Dep, Error, Exit, Provide, Request, App};
///
/// struct Settings { greeting: String }
/// provision::supplied!(Settings);
///
/// struct Greeter { text: String }
///
/// impl Provide for Greeter {
///     type Lifetime = Request;
///     type Deps = (Settings,);
///
///     async fn build((settings,): (Dep<Settings>,)) -> Result<Self, Error> {
///         Ok(Greeter { text: settings.greeting.clone() })
///     }
///
///     async fn release(self, exit: Exit) -> Result<(), Error> {
///         // Runs exactly once, when the request that built it has ended.
///         let _ = exit.is_success();
///         Ok(())
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "no provider for `{Self}`: nothing tells provision how to build it",
    label = "`{Self}` is asked for here, but it does not implement `provision::Provide`",
    note = "register it by implementing `provision::Provide` for `{Self}`: choose `type Lifetime` (App, Request or Transient), list `type Deps`, and write `async fn build`",
    note = "for a value made before startup (configuration), write `provision::supplied!({Self});` and pass it to `RegistryBuilder::supply`"
)]
pub trait Provide: Sized + Send + Sync + 'static {
    /// How long one built value lives: [`App`](crate::App),
    /// [`Request`](crate::Request) or [`Transient`](crate::Transient).
    type Lifetime: Lifetime;

    /// The services this one is built from, as a tuple of service types:
    /// `()`, `(Pool,)`, `(Pool, Settings)`. The compiler refuses a dependency
    /// whose lifetime is shorter than this service's.
    type Deps: Deps<Self::Lifetime>;

    /// Builds the service from its dependencies.
    ///
    /// For a request service this runs at most once per request, on first
    /// use, even when several tasks of the request ask at the same time. If
    /// it fails, every task that asked receives the error, nothing is cached,
    /// and the dependencies it had already acquired are released with the
    /// request.
    fn build(deps: Handles<Self>) -> impl Future<Output = Result<Self, Error>> + Send;

    /// Settles the work this service did, once the handler's outcome is known
    /// and *before* the client is told.
    ///
    /// A transaction commits here, so that a `201 Created` is never sent for
    /// a write that then fails to commit: if `settle` fails, the response is
    /// replaced by an error response and the exit becomes a failure. Runs in
    /// reverse order of acquisition, at most once, and only when the handler
    /// returned a response (not after a panic or a cancellation). Once a
    /// (newer) service's `settle` has failed, the older ones are told
    /// `Exit::Failure` with the status the client will get, so they roll back.
    ///
    /// It takes `&self`: when it runs, the response body (a stream) or a task
    /// may still hold `Dep` handles to the service, so it cannot have the
    /// value alone, and a commit must never be skipped because of them.
    /// Whatever handlers change through their shared handle is already
    /// behind a lock or a connection that synchronises it; `settle` uses the
    /// same. It needs no flag of its own for `release` either: `release`
    /// is told [`Exit::Success`] only if every `settle` succeeded on a
    /// success.
    fn settle(&self, exit: Exit) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = exit;
        NothingLeft
    }

    /// Releases the service. Runs exactly once for every built value, in
    /// reverse order of acquisition, when its scope ends (the response body is
    /// finished or dropped, the handler panicked, or the registry shuts
    /// down), and sees how it ended.
    ///
    /// A failure (or a panic) is reported through `tracing` and the probe; it
    /// does not stop the release of the other services.
    ///
    /// It takes the service by value, so whatever it owns (a connection, a
    /// buffer behind a lock) can be given back or consumed without locking.
    /// After a failed `settle` it sees the failure the client was sent. A
    /// response cut off after its `settle` succeeded (the client left
    /// mid-body) is told [`Exit::Cancelled`]: a rollback there finds
    /// nothing left to undo.
    fn release(self, exit: Exit) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = exit;
        // Dropped when the release starts rather than when it is first
        // polled: the future is then zero-sized, and a scope erasing it
        // (boxing it) allocates nothing.
        drop(self);
        NothingLeft
    }
}

/// The future of the default `settle` and `release`: ready at once and
/// zero-sized, so that services without those steps cost no allocation per
/// request (a `Box` of a zero-sized value allocates nothing).
struct NothingLeft;

impl Future for NothingLeft {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(()))
    }
}

/// Implements [`Provide`] for an app value that is made before startup and
/// handed to [`RegistryBuilder::supply`](crate::RegistryBuilder::supply),
/// such as configuration parsed from the command line.
///
/// ```
/// struct Settings { port: u16 }
/// provision::supplied!(Settings);
///
/// # async fn run() -> Result<(), provision::Error> {
/// let registry = provision::Registry::builder()
///     .supply(Settings { port: 8080 })
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! supplied {
    ($ty:ty) => {
        impl $crate::Provide for $ty {
            type Lifetime = $crate::App;
            type Deps = ();

            async fn build(_: ()) -> ::core::result::Result<Self, $crate::Error> {
                ::core::result::Result::Err($crate::Error::new(::std::format!(
                    "`{}` is supplied at startup, but no value was supplied: call `RegistryBuilder::supply`",
                    $crate::short_type_name::<Self>()
                )))
            }
        }
    };
}
