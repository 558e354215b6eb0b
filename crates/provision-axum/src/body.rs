//! [`ScopedBody`]: a response body that keeps its request's services until
//! the last byte, then releases them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use provision::integration::ScopeControl;
use provision::{Exit, RequestScope};

use crate::Background;
use crate::background::close_in_background;

type Closing = Pin<Box<dyn Future<Output = ()> + Send>>;

pin_project! {
    /// A response body that owns its request's scope: the body is polled
    /// inside the scope, and the scope is closed once the body has produced
    /// its last frame and before that frame is handed on (so by the time the
    /// client has the whole response, the release has happened), or in the
    /// background if the body is dropped unfinished.
    pub struct ScopedBody<B>
    where
        B: Body,
    {
        // Dropped as soon as it has produced its end, before the release
        // runs: a streaming body owns handles to the request's services,
        // and a value can only be released once nothing else holds it.
        #[pin]
        inner: Option<B>,
        scope: Option<RequestScope>,
        exit: Exit,
        closing: Option<Closing>,
        // Where a release that cannot be awaited goes (`None`: tokio).
        background: Option<Background>,
        // What to return once the scope is closed: the end of the body, or
        // the error that ended it.
        last: Option<Option<Result<Frame<Bytes>, axum::Error>>>,
    }

    impl<B> PinnedDrop for ScopedBody<B>
    where
        B: Body,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(scope) = this.scope.take() {
                let exit = if this.inner.as_ref().as_pin_ref().is_none_or(|inner| inner.is_end_stream()) {
                    // Everything was produced; the server just did not poll
                    // for the end.
                    *this.exit
                } else {
                    crate::interrupted(scope.registry())
                };
                close_in_background(this.background.as_ref(), scope, exit);
            } else if let Some(closing) = this.closing.take() {
                // Dropped while the release steps were running: finish them.
                if !crate::background::spawn(this.background.as_ref(), closing) {
                    tracing::error!(
                        "no tokio runtime and no provision_axum::Background to finish release steps on"
                    );
                }
            }
        }
    }
}

impl<B: Body> ScopedBody<B> {
    pub(crate) fn new(
        inner: B,
        scope: RequestScope,
        exit: Exit,
        background: Option<Background>,
    ) -> Self {
        ScopedBody {
            inner: Some(inner),
            scope: Some(scope),
            exit,
            closing: None,
            background,
            last: None,
        }
    }
}

impl<B> Body for ScopedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut this = self.project();
        loop {
            if let Some(closing) = this.closing.as_mut() {
                ready!(closing.as_mut().poll(cx));
                *this.closing = None;
                return Poll::Ready(this.last.take().flatten());
            }
            let (Some(scope), Some(inner)) =
                (this.scope.as_ref(), this.inner.as_mut().as_pin_mut())
            else {
                return Poll::Ready(None);
            };
            let polled = scope.in_scope(|| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll_frame(cx)))
            });
            let exit = match polled {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(Some(Ok(frame)))) => {
                    let ended = this
                        .inner
                        .as_ref()
                        .as_pin_ref()
                        .is_some_and(|i| i.is_end_stream());
                    if !ended {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    // The last frame. A server writing a body of known
                    // length stops polling after it, so release now and
                    // hand the frame over once the release is done.
                    *this.last = Some(Some(Ok(frame)));
                    *this.exit
                }
                Ok(Poll::Ready(None)) => {
                    *this.last = Some(None);
                    *this.exit
                }
                Ok(Poll::Ready(Some(Err(error)))) => {
                    *this.last = Some(Some(Err(axum::Error::new(error))));
                    // The body broke off: the client did not get the whole
                    // response.
                    Exit::Cancelled
                }
                Err(panic) => {
                    tracing::error!(
                        panic = provision::integration::panic_message(&*panic),
                        "response body panicked"
                    );
                    *this.last = Some(Some(Err(axum::Error::new("response body panicked"))));
                    Exit::Panic
                }
            };
            this.inner.set(None);
            let scope = this.scope.take().expect("checked above");
            *this.closing = Some(Box::pin(async move { scope.close(exit).await }));
        }
    }

    fn is_end_stream(&self) -> bool {
        // Not the inner body's answer: the end must be polled for, so that
        // the release runs before the response counts as complete.
        self.scope.is_none() && self.closing.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(inner) => inner.size_hint(),
            None => {
                let pending = match &self.last {
                    Some(Some(Ok(frame))) => frame.data_ref().map_or(0, |d| d.len() as u64),
                    _ => 0,
                };
                SizeHint::with_exact(pending)
            }
        }
    }
}
