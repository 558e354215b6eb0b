//! [`serve`]: one fetch event through an axum router.

use std::convert::Infallible;

use axum::body::Body;
use tower_service::Service;
use worker::{Context, HttpRequest};

/// Runs one fetch event through `router`, which should carry a
/// [`ProvisionLayer`](provision_axum::ProvisionLayer) (the same router a
/// native server uses).
///
/// The request carries a [`background`](crate::background) for this event,
/// so the releases the layer cannot await go to `wait_until`. The others
/// happen while the body is produced: the response's services are released
/// after its last byte and before the body reports its end, inside the
/// request.
pub async fn serve(
    mut router: axum::Router,
    mut request: HttpRequest,
    ctx: &Context,
) -> http::Response<Body> {
    request.extensions_mut().insert(crate::background(ctx));
    // An axum router is always ready and never fails.
    let response: Result<_, Infallible> = router.call(request).await;
    match response {
        Ok(response) => response,
    }
}
