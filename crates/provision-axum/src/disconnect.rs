//! [`Finish`]: a route's disconnect policy. By default (`cancel`) a client
//! that goes away cancels its handler; a route wrapped in
//! `Finish::within(deadline)` runs to completion after the client left,
//! bounded by the deadline, its services settled and released as usual.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use provision::integration::{CatchUnwind, RegistryControl, ScopeControl, Scoped, panic_message};
use provision::{Exit, Registry, RequestScope};
use tower_layer::Layer;
use tower_service::Service;

use crate::Background;
use crate::finish_report::{FinishOutcome, FinishReport, Reporter, RouteName};

/// A route's disconnect policy `finish`: the handler runs to completion even
/// if the client goes away, within `deadline`.
///
/// Without it a route's policy is `cancel`: when the client disconnects,
/// the server drops the handler's future, and the request's services are
/// released with [`Exit::Cancelled`] (a transaction rolls back). That is
/// right for reads, and for a write a client will retry. For a write that
/// must not be abandoned halfway once begun (a payment, an import), wrap the
/// route in `Finish::within(deadline)`:
///
/// * the route (extractors, handler, and its response body, read to the end)
///   runs in a scope of its own, inline in the response future as any route
///   does; if the client leaves before it has answered (the response future
///   is dropped), the route, still running, is moved onto a tokio task and
///   finishes there;
/// * when it answers, its services are settled with the answer's exit (a
///   transaction commits on a 2xx) and released, before the answer is sent
///   (or, if the client left, dropped): the same steps as a request;
/// * past `deadline` it is cut: dropped, its services released with
///   [`Exit::Cancelled`] (a transaction rolls back), and the client, if
///   still there, gets a `503` in the application's error format;
/// * each outcome is logged and counted ([`Finish::outcomes`]); a route
///   whose client left is reported with its method, its route and how it
///   ended to the callback set with [`Finish::report`] (per-route metrics).
///
/// The response body is read in full inside the route's scope (a finishing route
/// answers when its work is done, so it should not stream). A route
/// outside [`ProvisionLayer`](crate::ProvisionLayer) is called as if the
/// layer were not there.
///
/// On a host without tokio the route runs on the request's [`Background`]
/// from its first poll (on Cloudflare Workers, `provision-worker` makes it
/// the fetch event's `wait_until`, which keeps alive only work handed over
/// while the request is live), its answer sent back; the deadline is kept with the background's clock
/// ([`Background::with_clock`]), capped at the longest the host lets such
/// work run (on Workers `provision_worker::FINISH_BUDGET`, 20 s).
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, routing::post};
/// use provision_axum::{Finish, ProvisionLayer};
///
/// async fn pay() -> &'static str { "paid" }
/// async fn search() -> &'static str { "found" }
///
/// # async fn run(registry: provision::Registry) {
/// let finish = Finish::within(Duration::from_secs(30));
/// let app: Router = Router::new()
///     .route("/payments", post(pay).layer(finish.clone())) // finish
///     .route("/search", post(search))                      // cancel (the default)
///     .layer(ProvisionLayer::new(registry));
/// // Later, for metrics: finish.outcomes().finished_after_disconnect
/// # }
/// ```
#[derive(Clone)]
pub struct Finish {
    deadline: Duration,
    shutdown_grace: Option<Duration>,
    /// One reference count per request: the counts and the reporter
    /// together.
    shared: Arc<Shared>,
}

struct Shared {
    /// Shared also by the copies [`Finish::report`] makes.
    counts: Arc<Counts>,
    reporter: Option<Reporter>,
}

#[derive(Default)]
struct Counts {
    answered: AtomicU64,
    disconnected: AtomicU64,
    finished_after_disconnect: AtomicU64,
    cut_by_deadline: AtomicU64,
    cut_by_shutdown: AtomicU64,
}

/// What the routes wrapped in one [`Finish`] (or its clones) did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FinishOutcomes {
    /// Routes that finished with their client still there to be answered.
    pub answered: u64,
    /// Clients that went away before their answer (counted when they do).
    pub disconnected: u64,
    /// Routes that ran to completion after their client went away.
    pub finished_after_disconnect: u64,
    /// Routes cut by their deadline (rolled back), client there or not.
    pub cut_by_deadline: u64,
    /// Routes cut at the end of the shutdown grace period
    /// ([`Finish::shutdown_grace`]), rolled back and released with
    /// [`Exit::Shutdown`].
    pub cut_by_shutdown: u64,
}

impl Finish {
    /// The `finish` policy: run to completion, within `deadline` from the
    /// moment the route is called.
    pub fn within(deadline: Duration) -> Finish {
        Finish {
            deadline,
            shutdown_grace: None,
            shared: Arc::new(Shared {
                counts: Arc::default(),
                reporter: None,
            }),
        }
    }

    /// Tells `report` of each route whose client went away before its
    /// answer, once it has ended: its method, its route (axum's matched
    /// path) and how it ended ([`FinishOutcome`]: completed, cut or
    /// panicked). For per-route metrics: a route whose client stays costs
    /// only a copy of its method and matched path, and reports nothing.
    ///
    /// Called on the task the route finished on; keep it cheap (update a
    /// counter). The returned `Finish` replaces any earlier callback and
    /// shares its [`outcomes`](Finish::outcomes) with `self`, so one
    /// policy can report different routes to different places.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::time::Duration;
    /// use axum::{Router, routing::post};
    /// use provision_axum::{Finish, FinishOutcome};
    ///
    /// async fn pay() -> &'static str { "paid" }
    ///
    /// let cut = Arc::new(AtomicU64::new(0));
    /// let counted = cut.clone();
    /// let finish = Finish::within(Duration::from_secs(30)).report(move |report| {
    ///     if report.outcome == FinishOutcome::Cut {
    ///         counted.fetch_add(1, Ordering::Relaxed);
    ///     }
    ///     tracing::info!(method = %report.method, route = report.route, outcome = report.outcome.label());
    /// });
    /// let app: Router = Router::new().route("/payments", post(pay).layer(finish));
    /// ```
    pub fn report(mut self, report: impl Fn(&FinishReport<'_>) + Send + Sync + 'static) -> Finish {
        self.shared = Arc::new(Shared {
            counts: self.shared.counts.clone(),
            reporter: Some(Arc::new(report)),
        });
        self
    }

    /// Cuts a route still running `grace` after the registry's shutdown
    /// began ([`Registry::shutdown`](provision::Registry::shutdown)): it is
    /// dropped, rolled back and released with [`Exit::Shutdown`], and a
    /// client still there gets a 503. A server that cuts its requests at
    /// shutdown cannot cut a finishing route (dropping it moves it onto a
    /// task, as a client leaving does); give it the server's own grace
    /// period, so that both end together. Without it, a route at shutdown
    /// runs to its deadline.
    pub fn shutdown_grace(mut self, grace: Duration) -> Finish {
        self.shutdown_grace = Some(grace);
        self
    }

    /// The deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The counts of outcomes so far, shared by this value and its clones.
    pub fn outcomes(&self) -> FinishOutcomes {
        let c = &self.shared.counts;
        FinishOutcomes {
            answered: c.answered.load(Ordering::Relaxed),
            disconnected: c.disconnected.load(Ordering::Relaxed),
            finished_after_disconnect: c.finished_after_disconnect.load(Ordering::Relaxed),
            cut_by_deadline: c.cut_by_deadline.load(Ordering::Relaxed),
            cut_by_shutdown: c.cut_by_shutdown.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for Finish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finish")
            .field("deadline", &self.deadline)
            .field("outcomes", &self.outcomes())
            .finish()
    }
}

impl<S> Layer<S> for Finish {
    type Service = FinishService<S>;

    fn layer(&self, inner: S) -> FinishService<S> {
        FinishService {
            inner,
            finish: self.clone(),
        }
    }
}

/// The service made by [`Finish`].
#[derive(Clone, Debug)]
pub struct FinishService<S> {
    inner: S,
    finish: Finish,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for FinishService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>, Error = Infallible>,
    S::Future: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = FinishFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> FinishFuture<S::Future> {
        // On a host without tokio (Workers), a route whose client left goes
        // where the host said (the fetch event's `wait_until`).
        let background = request.extensions().get::<Background>().cloned();
        // Named only for a reporter, which hears of it only if the client
        // leaves: the request is gone by then, so its name is kept now.
        let name = self
            .finish
            .shared
            .reporter
            .is_some()
            .then(|| RouteName::of(&request));
        FinishFuture {
            route: Some(self.inner.call(request)),
            run: None,
            detach: false,
            finish: self.finish.clone(),
            background,
            name,
        }
    }
}

/// What a route's run ended with.
struct Ran {
    response: Response<Body>,
    exit: Exit,
}

impl Ran {
    /// Cut by its deadline or by shutdown: counted as such when cut.
    fn was_cut(&self) -> bool {
        matches!(self.exit, Exit::Cancelled | Exit::Shutdown)
    }
}

type Running = Pin<Box<dyn Future<Output = Ran> + Send + 'static>>;

/// The response future of [`FinishService`].
///
/// The route runs inline, in this future, as any route does: no task, no
/// channel. Only if this future is dropped before the route has answered
/// (the client left, or a layer outside cut the request) is the route,
/// still running, moved onto a task (tokio, or the request's
/// [`Background`]) to finish there, its deadline and its shutdown cut
/// still armed.
pub struct FinishFuture<F> {
    /// The route, until the first poll.
    route: Option<F>,
    /// The route's run, from the first poll until it answers. Boxed, so it
    /// can be moved onto a task while it runs.
    run: Option<Running>,
    /// Whether `run` must finish if this future is dropped (it runs in a
    /// scope of its own), or is a plain route outside the layer.
    detach: bool,
    finish: Finish,
    background: Option<Background>,
    /// The route's method and path, kept for [`Finish::report`] (only when
    /// a reporter is set).
    name: Option<RouteName>,
}

// The route is never polled in place: it is moved into `run`'s box first.
impl<F> Unpin for FinishFuture<F> {}

impl<F, ResBody> Future for FinishFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, Infallible>> + Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(route) = this.route.take() {
            // Asked when first polled, inside the request (the layer's
            // future), not in `call`, which may run outside it; and without
            // opening the request's own scope, which this route does not use.
            this.run = Some(match provision::integration::current_registry() {
                Some(registry) => {
                    // The route in its own scope, boxed on its own and
                    // handed to `run` by pointer: the route's future is
                    // held once (an `async fn` keeps what it is given
                    // apart from what it awaits).
                    let request = Box::pin(registry.request(CatchUnwind::new(RouteToEnd::new(
                        route,
                        provision::integration::current_budgets(),
                        read_to_end,
                    ))));
                    // Carries the request's span onto the task it may move
                    // to, so its settle and release spans stay in the trace.
                    let running: Running = Box::pin(tracing::Instrument::instrument(
                        run(
                            registry,
                            request,
                            this.finish.clone(),
                            this.background.clone(),
                        ),
                        crate::span::for_task(),
                    ));
                    match this.background.as_ref() {
                        // A host without tokio (Cloudflare Workers) keeps
                        // work alive after its client left only if it was
                        // handed over (`waitUntil`) while the request was
                        // still live: a hand-over from `drop`, after the
                        // host has seen the disconnect, runs nothing. So
                        // there the route goes to the background at once
                        // and its answer comes back over a channel.
                        Some(background) if tokio::runtime::Handle::try_current().is_err() => {
                            on_background_now(background, running, &this.finish, this.name.take())
                        }
                        _ => {
                            this.detach = true;
                            running
                        }
                    }
                }
                // Outside the layer: the route as if `Finish` were not there.
                None => Box::pin(async move {
                    let response = match route.await {
                        Ok(response) => response.map(Body::new),
                        Err(never) => match never {},
                    };
                    let exit = Exit::from_status(response.status());
                    Ran { response, exit }
                }),
            });
        }
        let running = this
            .run
            .as_mut()
            .expect("FinishFuture polled after completion");
        let ran = std::task::ready!(running.as_mut().poll(cx));
        this.run = None;
        if this.detach && !ran.was_cut() {
            this.finish
                .shared
                .counts
                .answered
                .fetch_add(1, Ordering::Relaxed);
        }
        Poll::Ready(Ok(ran.response))
    }
}

impl<F> Drop for FinishFuture<F> {
    fn drop(&mut self) {
        // Dropped while the route runs: its client left. (Dropped before the
        // first poll, the route never started: it is dropped too, as a
        // `cancel` route's would be.)
        let Some(running) = self.run.take().filter(|_| self.detach) else {
            return;
        };
        let shared = self.finish.shared.clone();
        let name = self.name.take();
        shared.counts.disconnected.fetch_add(1, Ordering::Relaxed);
        tracing::info!("client went away; its `finish` route runs on");
        let task = async move {
            let ran = running.await;
            report(&shared, name.as_ref(), &ran);
            if ran.was_cut() {
                return; // counted as cut where it was cut
            }
            shared
                .counts
                .finished_after_disconnect
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                status = %ran.response.status(),
                exit = ran.exit.label(),
                "`finish` route completed after its client went away"
            );
        };
        if !crate::background::spawn(self.background.as_ref(), task) {
            tracing::error!(
                "no tokio runtime and no provision_axum::Background to finish a `finish` route \
                 on; it is dropped, its services released as cancelled"
            );
        }
    }
}

/// Runs `running` on `background` now, and returns what waits for its
/// answer. The task counts the outcome itself: answered if the answer
/// found its client, else a client that left and (unless cut, which `run`
/// counts) a route finished after it.
fn on_background_now(
    background: &Background,
    running: Running,
    finish: &Finish,
    name: Option<RouteName>,
) -> Running {
    let (answer, answered) = tokio::sync::oneshot::channel::<Ran>();
    let shared = finish.shared.clone();
    background.spawn(async move {
        let ran = running.await;
        let cut = ran.was_cut();
        let counts = &shared.counts;
        match answer.send(ran) {
            Ok(()) if !cut => {
                counts.answered.fetch_add(1, Ordering::Relaxed);
            }
            Ok(()) => {}
            Err(ran) => {
                counts.disconnected.fetch_add(1, Ordering::Relaxed);
                report(&shared, name.as_ref(), &ran);
                if !cut {
                    counts
                        .finished_after_disconnect
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        status = %ran.response.status(),
                        exit = ran.exit.label(),
                        "`finish` route completed after its client went away"
                    );
                }
            }
        }
    });
    Box::pin(async move {
        answered
            .await
            .expect("the finishing task always answers, even when it panics")
    })
}

/// Tells the reporter, if any, how a route whose client left ended.
fn report(shared: &Shared, name: Option<&RouteName>, ran: &Ran) {
    let (Some(reporter), Some(name)) = (&shared.reporter, name) else {
        return;
    };
    let outcome = match ran.exit {
        Exit::Panic => FinishOutcome::Panicked,
        _ if ran.was_cut() => FinishOutcome::Cut,
        _ => FinishOutcome::Completed,
    };
    name.report(reporter, outcome);
}

/// Why a finishing route was cut.
enum Cut {
    Deadline,
    Shutdown,
}

/// The route's run in its scope (`request`), to completion or its
/// deadline, settled and closed: what to answer, and how it ended.
async fn run<F>(
    registry: Registry,
    request: Pin<Box<Scoped<CatchUnwind<F>>>>,
    finish: Finish,
    background: Option<Background>,
) -> Ran
where
    F: Future<Output = Result<Response<Body>, axum::Error>>,
{
    let deadline = finish.deadline;
    // In an `Option` so that it can be dropped before the scope is settled.
    let mut request = Some(request);
    // The deadline needs tokio's clock; on a host without it (Workers) the
    // background's clock keeps it, capped by the host's own bound.
    let mut deadline = deadline;
    let polled = if tokio::runtime::Handle::try_current().is_ok() {
        let shutdown_cut = async {
            match finish.shutdown_grace {
                Some(grace) => {
                    registry.shutdown_begun().await;
                    tokio::time::sleep(grace).await;
                }
                None => std::future::pending().await,
            }
        };
        let route = request.as_mut().expect("set above").as_mut();
        let mut bounded = std::pin::pin!(tokio::time::timeout(deadline, route));
        let mut shutdown_cut = std::pin::pin!(shutdown_cut);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(outcome) = bounded.as_mut().poll(cx) {
                return Poll::Ready(outcome.map_err(|_| Cut::Deadline));
            }
            shutdown_cut.as_mut().poll(cx).map(|()| Err(Cut::Shutdown))
        })
        .await
    } else {
        let route = request.as_mut().expect("set above").as_mut();
        crate::background::within_host_deadline(background.as_ref(), deadline, route)
            .await
            .map_err(|kept| {
                deadline = kept;
                Cut::Deadline
            })
    };
    let scope = request
        .as_mut()
        .and_then(|request| request.as_mut().take_scope());
    // The route's own handles go before anything is released.
    drop(request);
    let (response, exit) = match polled {
        Err(Cut::Shutdown) => {
            finish
                .shared
                .counts
                .cut_by_shutdown
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "`finish` route cut at the end of the shutdown grace period; rolling back"
            );
            let response = registry.error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down; try again",
            );
            (response, Exit::Shutdown)
        }
        Err(Cut::Deadline) => {
            finish
                .shared
                .counts
                .cut_by_deadline
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                ?deadline,
                "`finish` route cut by its deadline; rolling back"
            );
            let response = registry.error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "the request did not finish within its deadline; nothing was saved",
            );
            (response, Exit::Cancelled)
        }
        Ok(Err(panic)) => {
            tracing::error!(panic = panic_message(&*panic), "handler panicked");
            let response = registry.error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the handler panicked",
            );
            (response, Exit::Panic)
        }
        Ok(Ok(Err(error))) => {
            tracing::error!(%error, "response body failed");
            let response = registry.error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the response could not be produced",
            );
            (response, Exit::Failure(StatusCode::INTERNAL_SERVER_ERROR))
        }
        Ok(Ok(Ok(response))) => {
            let exit = Exit::from_status(response.status());
            (response, exit)
        }
    };
    let (response, exit) = match &scope {
        Some(scope) if !matches!(exit, Exit::Cancelled | Exit::Panic | Exit::Shutdown) => {
            settle(scope, &registry, response, exit).await
        }
        _ => (response, exit),
    };
    if let Some(scope) = scope {
        scope.close(exit).await;
    }
    Ran { response, exit }
}

pin_project_lite::pin_project! {
    /// What runs in a `finish` route's scope: the request's budgets put on
    /// the scope, the route, then its body read to the end by `read` (the
    /// body too may still use the request's services). Written out rather
    /// than an `async` block, which would hold the route's future twice:
    /// as what it captured and as what it awaits.
    struct RouteToEnd<F, ResBody, M, R> {
        budgets: Vec<provision::Budget>,
        read: Option<M>,
        #[pin]
        step: Step<F, R>,
        // The route's body type, which `read` is given.
        _body: std::marker::PhantomData<fn() -> ResBody>,
    }
}

pin_project_lite::pin_project! {
    #[project = StepProj]
    enum Step<F, R> {
        Route { #[pin] route: F },
        Body { parts: Option<http::response::Parts>, #[pin] reading: R },
    }
}

impl<F, ResBody, M, R> RouteToEnd<F, ResBody, M, R>
where
    M: FnOnce(Body) -> R,
{
    fn new(route: F, budgets: Vec<provision::Budget>, read: M) -> Self {
        RouteToEnd {
            budgets,
            read: Some(read),
            step: Step::Route { route },
            _body: std::marker::PhantomData,
        }
    }
}

impl<F, ResBody, M, R> Future for RouteToEnd<F, ResBody, M, R>
where
    F: Future<Output = Result<Response<ResBody>, Infallible>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
    M: FnOnce(Body) -> R,
    R: Future<Output = Result<Body, axum::Error>>,
{
    type Output = Result<Response<Body>, axum::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // The route's own scope is under the request's budgets (a budget
        // layer outside this one): put on it at the first poll, inside it.
        if !this.budgets.is_empty()
            && let Some(scope) = RequestScope::current()
        {
            for budget in std::mem::take(this.budgets) {
                scope.apply_budget(&budget);
            }
        }
        loop {
            match this.step.as_mut().project() {
                StepProj::Route { route } => {
                    let response = match std::task::ready!(route.poll(cx)) {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    let (parts, body) = response.into_parts();
                    let read = this.read.take().expect("the route answers once");
                    this.step.set(Step::Body {
                        parts: Some(parts),
                        reading: read(Body::new(body)),
                    });
                }
                StepProj::Body { parts, reading } => {
                    let body = std::task::ready!(reading.poll(cx))?;
                    let parts = parts.take().expect("polled after completion");
                    return Poll::Ready(Ok(Response::from_parts(parts, body)));
                }
            }
        }
    }
}

/// The whole of `body`, read now, as a body in memory. Most answers are one
/// frame (axum's JSON, text, an empty body): that frame is kept as it is,
/// without collecting; a longer body is collected after it. Trailers are
/// not kept (nor were they by `axum::body::to_bytes`).
async fn read_to_end(mut body: Body) -> Result<Body, axum::Error> {
    use http_body::Body as _;
    if body.is_end_stream() {
        return Ok(Body::empty());
    }
    let first = match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        None => return Ok(Body::empty()),
        Some(frame) => frame?.into_data().unwrap_or_default(),
    };
    if body.is_end_stream() {
        return Ok(Body::from(first));
    }
    let rest = axum::body::to_bytes(body, usize::MAX).await?;
    if first.is_empty() {
        return Ok(Body::from(rest));
    }
    let mut whole = bytes::BytesMut::with_capacity(first.len() + rest.len());
    whole.extend_from_slice(&first);
    whole.extend_from_slice(&rest);
    Ok(Body::from(whole.freeze()))
}

/// Settles the scope with the answer's exit; a failure replaces the answer,
/// as for any request.
async fn settle(
    scope: &RequestScope,
    registry: &Registry,
    response: Response<Body>,
    exit: Exit,
) -> (Response<Body>, Exit) {
    let failure = match CatchUnwind::new(scope.settle(exit)).await {
        Ok(Ok(())) => return (response, exit),
        Ok(Err(error)) => match error.status() {
            Some(status) => (status, error.message().to_owned()),
            None => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the request's work could not be completed".to_owned(),
            ),
        },
        Err(panic) => {
            tracing::error!(panic = panic_message(&*panic), "settle panicked");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the request's work could not be completed".to_owned(),
            )
        }
    };
    let (status, message) = failure;
    (
        registry.error_response(status, &message),
        Exit::Failure(status),
    )
}
