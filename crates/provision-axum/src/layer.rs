//! [`ProvisionLayer`] and the [`Provision`] service it wraps routes in.

use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use provision::Registry;
use provision::integration::RegistryControl;
use tower_layer::Layer;
use tower_service::Service;

use crate::Background;
use crate::future::ResponseFuture;

/// A tower layer that gives every request its own
/// [`RequestScope`](provision::RequestScope).
///
/// Add it last (outermost) so that every middleware and handler inside it
/// can use services:
///
/// ```
/// # use axum::{Router, routing::get};
/// # async fn run(registry: provision::Registry) {
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hi" }))
///     .layer(provision_axum::ProvisionLayer::new(registry));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ProvisionLayer {
    registry: Registry,
}

impl ProvisionLayer {
    /// A layer opening scopes from `registry`.
    pub fn new(registry: Registry) -> Self {
        ProvisionLayer { registry }
    }
}

impl<S> Layer<S> for ProvisionLayer {
    type Service = Provision<S>;

    fn layer(&self, inner: S) -> Provision<S> {
        Provision {
            inner,
            registry: self.registry.clone(),
        }
    }
}

/// The service made by [`ProvisionLayer`]: opens a scope per request and
/// closes it when the response is done with.
#[derive(Clone, Debug)]
pub struct Provision<S> {
    inner: S,
    registry: Registry,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Provision<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // No scope is opened here: the request future runs "inside a request"
        // and its scope opens when something first asks for a service.
        let background = request.extensions().get::<Background>().cloned();
        ResponseFuture::new(self.registry.request(self.inner.call(request)), background)
    }
}
