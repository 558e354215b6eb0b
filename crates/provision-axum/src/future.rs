//! [`ResponseFuture`]: runs the request inside its scope, catches panics,
//! settles, and hands the scope to the body (or closes it).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use bytes::Bytes;
use http::{Response, StatusCode};
use pin_project_lite::pin_project;
use provision::integration::{CatchUnwind, RegistryControl, ScopeControl, Scoped, panic_message};
use provision::{Exit, RequestScope};

use crate::Background;
use crate::background::close_in_background;
use crate::body::ScopedBody;

type Finish<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

pin_project! {
    /// The response future of [`Provision`](crate::Provision).
    pub struct ResponseFuture<F, E> {
        #[pin]
        state: State<F, E>,
        // Where releases that cannot be awaited go (`None`: tokio).
        background: Option<Background>,
    }

    impl<F, E> PinnedDrop for ResponseFuture<F, E> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before the response was ready: the client went away
            // mid-handler, or the server is shutting down.
            let this = this.project();
            if let StateProj::Running { inner } = this.state.project()
                && let Some(scope) = inner.take_scope()
            {
                let exit = crate::interrupted(scope.registry());
                close_in_background(this.background.as_ref(), scope, exit);
            }
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        Running { #[pin] inner: Scoped<F> },
        // Only requests that acquired something (or panicked) get here, so
        // only they pay for this allocation.
        Finishing { finish: Finish<E> },
        Done,
    }
}

impl<F, E> ResponseFuture<F, E> {
    pub(crate) fn new(inner: Scoped<F>, background: Option<Background>) -> Self {
        ResponseFuture {
            state: State::Running { inner },
            background,
        }
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
    E: Send + 'static,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Running { mut inner } => {
                    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        inner.as_mut().poll(cx)
                    }));
                    let outcome = match polled {
                        Ok(Poll::Pending) => return Poll::Pending,
                        Ok(Poll::Ready(outcome)) => Ok(outcome),
                        Err(panic) => Err(panic),
                    };
                    // A panic is answered in the application's format,
                    // found on its registry (cloned on this path only).
                    let registry = match &outcome {
                        Err(_) => inner.registry().cloned(),
                        Ok(_) => None,
                    };
                    // `None`: the request never asked for a service, so
                    // there is nothing to settle or release.
                    let scope = inner.take_scope();
                    let finish: Finish<E> = match (outcome, scope) {
                        (Ok(Ok(response)), None) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(response.map(Body::new)));
                        }
                        (Ok(Ok(response)), Some(scope)) => {
                            let exit = Exit::from_status(response.status());
                            if scope.close_if_idle() {
                                // Opened, but nothing was acquired.
                                this.state.set(State::Done);
                                return Poll::Ready(Ok(response.map(Body::new)));
                            }
                            Box::pin(settle_then_hand_over(
                                scope,
                                response,
                                exit,
                                this.background.clone(),
                            ))
                        }
                        (Ok(Err(error)), scope) => Box::pin(async move {
                            if let Some(scope) = scope {
                                scope
                                    .close(Exit::Failure(StatusCode::INTERNAL_SERVER_ERROR))
                                    .await;
                            }
                            Err(error)
                        }),
                        (Err(panic), scope) => {
                            tracing::error!(
                                request = scope.as_ref().map(RequestScope::id),
                                panic = panic_message(&*panic),
                                "handler panicked"
                            );
                            let answer = registry
                                .expect("a running request future carries its registry")
                                .error_response(
                                    StatusCode::INTERNAL_SERVER_ERROR,
                                    "internal error: the handler panicked",
                                );
                            Box::pin(async move {
                                if let Some(scope) = scope {
                                    scope.close(Exit::Panic).await;
                                }
                                Ok(answer)
                            })
                        }
                    };
                    this.state.set(State::Finishing { finish });
                }
                StateProj::Finishing { finish } => {
                    let output = ready!(finish.as_mut().poll(cx));
                    this.state.set(State::Done);
                    return Poll::Ready(output);
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            }
        }
    }
}

/// Settles the acquired services (a transaction commits here, before the
/// client hears of success) and gives the scope to the response body, which
/// closes it after the last byte.
async fn settle_then_hand_over<B, E>(
    scope: RequestScope,
    response: Response<B>,
    exit: Exit,
    background: Option<Background>,
) -> Result<Response<Body>, E>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    // If this future is dropped mid-settle (the client left), the guard
    // still closes the scope.
    let guard = CloseOnDrop(Some(scope), background);
    let scope = guard.0.as_ref().expect("set above");
    let settled = CatchUnwind::new(scope.settle(exit)).await;
    let failure = match settled {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error.status().map_or_else(
            || {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error: the request's work could not be completed".to_owned(),
                )
            },
            |status| (status, error.message().to_owned()),
        )),
        Err(panic) => {
            tracing::error!(panic = panic_message(&*panic), "settle panicked");
            Some((
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the request's work could not be completed".to_owned(),
            ))
        }
    };
    let (scope, background) = guard.disarm();
    Ok(match failure {
        None => {
            let (parts, body) = response.into_parts();
            Response::from_parts(
                parts,
                Body::new(ScopedBody::new(body, scope, exit, background)),
            )
        }
        Some((status, message)) => {
            // The handler's answer must not reach the client: its work was
            // not kept. Its body is dropped unread.
            drop(response);
            let failed = scope.registry().error_response(status, &message);
            let (parts, body) = failed.into_parts();
            Response::from_parts(
                parts,
                Body::new(ScopedBody::new(
                    body,
                    scope,
                    Exit::Failure(status),
                    background,
                )),
            )
        }
    })
}

struct CloseOnDrop(Option<RequestScope>, Option<Background>);

impl CloseOnDrop {
    fn disarm(mut self) -> (RequestScope, Option<Background>) {
        (self.0.take().expect("disarmed once"), self.1.take())
    }
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(scope) = self.0.take() {
            let exit = crate::interrupted(scope.registry());
            close_in_background(self.1.as_ref(), scope, exit);
        }
    }
}
