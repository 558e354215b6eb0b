//! (feature `axum`) A [`Budget`] as a tower layer: the routes it wraps run
//! under it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::Budget;

/// A route's budget: `Router::route_layer(budget)`, or a route's
/// `.layer(budget)`. Every request the route serves runs under it (and under
/// the registry's default, which it overrides limit by limit), whatever
/// asks for services: extractors, `Lazy::get`, middleware inside it.
///
/// Put it inside a `provision_axum::Finish` layer when a route has both
/// (`post(pay).layer(budget).layer(finish)`): a finishing route runs in a
/// scope of its own, which a budget outside it does not reach.
///
/// With axum: `Router::new().route(..).route(..).route_layer(budget)`
/// (the project README has it, compiled). Any tower service takes it:
///
/// ```
/// use std::{convert::Infallible, future::Ready, task::{Context, Poll}, time::Duration};
/// use provision::{Budget, BudgetGroup, Error, Provide, Request};
/// use tower_layer::Layer;
///
/// struct Conn;
/// impl Provide for Conn {
///     type Lifetime = Request;
///     type Deps = ();
///     async fn build(_: ()) -> Result<Self, Error> { Ok(Conn) }
/// }
///
/// #[derive(Clone)]
/// struct Report;
/// impl tower_service::Service<()> for Report {
///     type Response = &'static str;
///     type Error = Infallible;
///     type Future = Ready<Result<&'static str, Infallible>>;
///     fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
///         Poll::Ready(Ok(()))
///     }
///     fn call(&mut self, _: ()) -> Self::Future { std::future::ready(Ok("report")) }
/// }
///
/// let reports = BudgetGroup::new("reports").max_held::<Conn>(4);
/// let budget = Budget::new().group(&reports).acquire_wait(Duration::from_secs(2));
/// let daily = budget.layer(Report);   // each route of the group, one budget
/// let monthly = budget.layer(Report);
/// ```
impl<S> Layer<S> for Budget {
    type Service = BudgetService<S>;

    fn layer(&self, inner: S) -> BudgetService<S> {
        BudgetService {
            inner,
            budget: self.clone(),
        }
    }
}

/// The service made by a [`Budget`] layer.
#[derive(Clone, Debug)]
pub struct BudgetService<S> {
    inner: S,
    budget: Budget,
}

impl<S, R> Service<R> for BudgetService<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BudgetFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> BudgetFuture<S::Future> {
        BudgetFuture {
            inner: self.inner.call(request),
            budget: Some(self.budget.clone()),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`BudgetService`]: puts the request's scope
    /// under the budget when first polled (inside the request; `call` may
    /// run outside it), then runs the route.
    pub struct BudgetFuture<F> {
        #[pin]
        inner: F,
        budget: Option<Budget>,
    }
}

impl<F: Future> Future for BudgetFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if let Some(budget) = this.budget.take() {
            // Opens the request's scope (one allocation, given back on the
            // idle fast path if nothing is built): a budgeted route pays
            // for it, others do not.
            crate::ambient::with_current(|scope| {
                if let Some(scope) = scope {
                    scope.apply_budget(&budget);
                }
            });
        }
        this.inner.poll(cx)
    }
}
