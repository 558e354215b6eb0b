//! The time bound of every request, and the cut at the end of the shutdown
//! grace period: both drop the request's future, so its services are
//! released (in the background, by `provision-axum`) while the client gets a
//! JSON error instead of a connection closed under it.
//!
//! A request cut by its time bound releases with `Exit::Cancelled`, one cut
//! at shutdown with `Exit::Shutdown`: either way an open transaction rolls
//! back. The bound covers the handler and the settle step (a commit), up to
//! the response's head; a streaming body after it is not bounded here.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::StatusCode;
use tokio::sync::watch;

/// What a cut request's client is told.
pub const SHUTTING_DOWN: &str = "the server is shutting down; try again";

/// The state of the [`bound`] middleware.
#[derive(Clone)]
pub struct Deadline {
    timeout: Duration,
    cut: watch::Receiver<bool>,
}

/// Cuts every request still running when [`cut`](Cut::cut) is called.
pub struct Cut(watch::Sender<bool>);

impl Cut {
    /// Cuts the requests in flight, and any that starts afterwards.
    pub fn cut(&self) {
        self.0.send_replace(true);
    }
}

impl Deadline {
    /// A bound of `timeout` per request, and the switch that cuts them all.
    pub fn new(timeout: Duration) -> (Deadline, Cut) {
        let (cut, cut_off) = watch::channel(false);
        (
            Deadline {
                timeout,
                cut: cut_off,
            },
            Cut(cut),
        )
    }
}

/// Runs the request within its time bound: past it, the answer is a JSON
/// `504`; once the server cuts requests at shutdown, a JSON `503`.
pub async fn bound(State(deadline): State<Deadline>, request: Request, next: Next) -> Response {
    let mut cut = deadline.cut;
    let cut_off = async move {
        // The sender is gone only once the server has returned: never cut.
        if cut.wait_for(|cut| *cut).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let uri = request.uri().clone();
    tokio::select! {
        biased;
        response = next.run(request) => response,
        () = cut_off => {
            tracing::warn!(%uri, "request cut off at the end of the shutdown grace period");
            crate::http::error_response(StatusCode::SERVICE_UNAVAILABLE, SHUTTING_DOWN)
        }
        () = tokio::time::sleep(deadline.timeout) => {
            tracing::warn!(%uri, timeout = ?deadline.timeout, "request exceeded its time bound; cut off");
            crate::http::error_response(
                StatusCode::GATEWAY_TIMEOUT,
                &format!(
                    "the request did not finish within {} ms, so it was stopped",
                    deadline.timeout.as_millis()
                ),
            )
        }
    }
}
