//! The time bound of every request, and the cut at the end of the shutdown
//! grace period: both drop the request's future, so its services are
//! released (in the background, by `provision-axum`) while the client gets a
//! JSON error instead of a connection closed under it.
//!
//! A request cut by its time bound releases with `Exit::Cancelled`, one cut
//! at shutdown with `Exit::Shutdown`: either way an open transaction rolls
//! back. The bound covers the handler and the settle step (a commit), up to
//! the response's head; a streaming body after it is not bounded here.
//!
//! A tower service around the whole router (the server's outermost), not an
//! axum middleware: no clone of the router, no boxed service and no boxed
//! future per request. A request that answers in its first poll (health)
//! arms nothing; one that has to wait arms one timer entry and joins the
//! cut's wait list, both taken back when it answers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::response::Response;
use http::{Request, StatusCode, Uri};
use tokio::sync::Notify;
use tower_service::Service;

/// What a cut request's client is told.
pub const SHUTTING_DOWN: &str = "the server is shutting down; try again";

/// The bound on every request, and the switch it shares with [`Cut`]. Wrap
/// the router with [`bound`](Deadline::bound).
#[derive(Clone)]
pub struct Deadline {
    timeout: Duration,
    cut: Arc<CutOff>,
}

/// Whether requests are being cut, and who is waiting to be told.
#[derive(Default)]
struct CutOff {
    cut: AtomicBool,
    // In its own `Arc`: a waiting request's future holds its wait.
    waiting: Arc<Notify>,
}

/// Cuts every request still running when [`cut`](Cut::cut) is called.
pub struct Cut(Arc<CutOff>);

impl Cut {
    /// Cuts the requests in flight, and any that starts afterwards.
    pub fn cut(&self) {
        // The flag first: a request joining the wait list after the wake
        // below sees it (`Waiting::poll` checks it once registered).
        self.0.cut.store(true, Ordering::SeqCst);
        self.0.waiting.notify_waiters();
    }
}

impl Deadline {
    /// A bound of `timeout` per request, and the switch that cuts them all.
    pub fn new(timeout: Duration) -> (Deadline, Cut) {
        let cut = Arc::new(CutOff::default());
        (
            Deadline {
                timeout,
                cut: cut.clone(),
            },
            Cut(cut),
        )
    }

    /// `inner` with every request run within the bound: past it, the answer
    /// is a JSON `504`; once the server cuts requests at shutdown, a JSON
    /// `503`.
    pub fn bound<S>(&self, inner: S) -> Bounded<S> {
        Bounded {
            inner,
            deadline: self.clone(),
        }
    }
}

/// A service whose requests run within a [`Deadline`].
#[derive(Clone)]
pub struct Bounded<S> {
    inner: S,
    deadline: Deadline,
}

impl<S, B> Service<Request<B>> for Bounded<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoundedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> BoundedFuture<S::Future> {
        // Kept for the log line of a cut request (a shared-bytes clone).
        let uri = request.uri().clone();
        BoundedFuture {
            inner: self.inner.call(request),
            waiting: None,
            deadline: self.deadline.clone(),
            uri,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Bounded`].
    pub struct BoundedFuture<F> {
        #[pin]
        inner: F,
        // Armed on the first poll that has to wait.
        #[pin]
        waiting: Option<Waiting>,
        deadline: Deadline,
        uri: Uri,
    }
}

pin_project_lite::pin_project! {
    /// What a request that has to wait is woken by: its timer, or the cut.
    struct Waiting {
        #[pin]
        sleep: tokio::time::Sleep,
        #[pin]
        cut: tokio::sync::futures::OwnedNotified,
    }
}

impl<F, E> Future for BoundedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(response) = this.inner.poll(cx) {
            return Poll::Ready(response);
        }
        if this.waiting.is_none() {
            this.waiting.set(Some(Waiting {
                sleep: tokio::time::sleep(this.deadline.timeout),
                cut: this.deadline.cut.waiting.clone().notified_owned(),
            }));
        }
        let waiting = this.waiting.as_pin_mut().expect("set above").project();
        let cut = this.deadline.cut.cut.load(Ordering::SeqCst)
            || matches!(waiting.cut.poll(cx), Poll::Ready(()))
            || this.deadline.cut.cut.load(Ordering::SeqCst);
        if cut {
            tracing::warn!(uri = %this.uri, "request cut off at the end of the shutdown grace period");
            return Poll::Ready(Ok(crate::http::error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                SHUTTING_DOWN,
            )));
        }
        ready!(waiting.sleep.poll(cx));
        let timeout = this.deadline.timeout;
        tracing::warn!(uri = %this.uri, ?timeout, "request exceeded its time bound; cut off");
        Poll::Ready(Ok(crate::http::error_response(
            StatusCode::GATEWAY_TIMEOUT,
            &format!(
                "the request did not finish within {} ms, so it was stopped",
                timeout.as_millis()
            ),
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::Body;

    use super::*;

    /// Answers at once, as health does.
    #[derive(Clone)]
    struct AtOnce;

    impl Service<Request<Body>> for AtOnce {
        type Response = Response;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<Body>) -> Self::Future {
            std::future::ready(Ok(Response::new(Body::from("ok"))))
        }
    }

    #[test]
    fn a_request_answered_in_its_first_poll_arms_no_timer() {
        // No timer on this runtime: arming one would panic.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (deadline, _cut) = Deadline::new(Duration::from_secs(30));
        let mut service = deadline.bound(AtOnce);
        let response = runtime
            .block_on(service.call(Request::new(Body::empty())))
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
