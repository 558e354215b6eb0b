//! [`FinishReport`]: how one `finish` route ended after its client went
//! away, told to the callback set with [`Finish::report`].

use std::sync::Arc;

use axum::extract::MatchedPath;
use http::Method;

#[cfg(doc)]
use crate::Finish;

/// How a `finish` route ended after its client went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinishOutcome {
    /// The route answered (any status; its body read to the end). Its
    /// services were then settled and released as for any answer.
    Completed,
    /// Its deadline, or the end of the shutdown grace period, dropped it:
    /// its services were released as cancelled (a transaction rolled back).
    Cut,
    /// The route panicked (handler or response body): its services were
    /// released with [`Exit::Panic`](provision::Exit::Panic).
    Panicked,
}

impl FinishOutcome {
    /// Every outcome, to start a metric's series at zero.
    pub const ALL: [FinishOutcome; 3] = [
        FinishOutcome::Completed,
        FinishOutcome::Cut,
        FinishOutcome::Panicked,
    ];

    /// A label for metrics and logs: `completed`, `cut` or `panicked`.
    pub fn label(self) -> &'static str {
        match self {
            FinishOutcome::Completed => "completed",
            FinishOutcome::Cut => "cut",
            FinishOutcome::Panicked => "panicked",
        }
    }
}

/// One `finish` route whose client went away before its answer, and how
/// it ended: given to the callback set with [`Finish::report`], once per
/// such run, on the task it finished on. A run whose client stayed is not
/// reported (its client sees the outcome).
#[derive(Debug)]
#[non_exhaustive]
pub struct FinishReport<'a> {
    /// The request's method.
    pub method: &'a Method,
    /// The route's path as declared in the router (axum's
    /// [`MatchedPath`], such as `/users/{id}`), or `None` outside a router.
    pub route: Option<&'a str>,
    /// How it ended.
    pub outcome: FinishOutcome,
}

/// The callback of [`Finish::report`].
pub(crate) type Reporter = Arc<dyn Fn(&FinishReport<'_>) + Send + Sync + 'static>;

/// The route a run reports if its client leaves: taken from the request
/// when the route is called, only when a reporter is set. Cheap to keep: a
/// standard method is a copied tag, a matched path a reference-counted
/// string.
#[derive(Debug)]
pub(crate) struct RouteName {
    pub(crate) method: Method,
    pub(crate) route: Option<MatchedPath>,
}

impl RouteName {
    pub(crate) fn of<B>(request: &http::Request<B>) -> RouteName {
        RouteName {
            method: request.method().clone(),
            route: request.extensions().get::<MatchedPath>().cloned(),
        }
    }

    pub(crate) fn report(&self, reporter: &Reporter, outcome: FinishOutcome) {
        reporter(&FinishReport {
            method: &self.method,
            route: self.route.as_ref().map(MatchedPath::as_str),
            outcome,
        });
    }
}
