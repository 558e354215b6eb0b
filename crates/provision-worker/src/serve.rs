//! [`serve`]: one fetch event through an axum router.

use std::convert::Infallible;

use axum::body::Body;
use tower_service::Service;
use worker::worker_sys::web_sys;
use worker::{Context, HttpRequest, IntoResponse as _};

/// Runs one fetch event through `router`, which should carry a
/// [`ProvisionLayer`](provision_axum::ProvisionLayer) (the same router a
/// native server uses).
///
/// The request carries a [`background`](crate::background) for this event,
/// so the releases the layer cannot await go to `wait_until`. The others
/// happen while the body is produced: the response's services are released
/// after its last byte and before the body reports its end, inside the
/// request.
///
/// Build the router once per isolate and finish it with
/// `.with_state(())`. Handlers that take their services through provision
/// usually take no axum state, and until `with_state` is called axum keeps
/// each one as a boxed handler that it clones and turns into a route on
/// every request it serves (`axum::serve` does this once natively; a Worker
/// calls the router directly).
///
/// ```ignore
/// let router = axum::Router::new()
///     .route("/api/health", axum::routing::get(health))
///     .layer(provision_axum::ProvisionLayer::new(registry))
///     .with_state(());
/// ```
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

/// Bodies at most this long, complete in memory, go to JavaScript as one
/// byte array (see [`into_js`]).
const BUFFER_LIMIT: u64 = 1 << 20;

/// Converts what the fetch handler returned into the JavaScript response.
///
/// workers-rs hands every `http` body to JavaScript as a `ReadableStream`
/// pulled from Rust: a JavaScript stream, promises and boundary crossings
/// for every response, which measured most of a Worker's CPU time for
/// `GET /api/health`. An axum body that is complete in memory (an exact
/// size hint of at most 1 MiB, as every JSON answer has) is read here
/// instead and handed over as one byte array. Reading it to the end also
/// runs the request's releases (`provision_axum`'s body closes the
/// scope after the last frame), so they complete before the response is
/// returned. Anything else (a stream, a body of unknown length, a response
/// with extensions such as a WebSocket) goes through workers-rs unchanged.
pub(crate) async fn into_js<Res: worker::IntoResponse + 'static>(
    response: Res,
) -> Result<web_sys::Response, Box<dyn std::error::Error>> {
    let mut slot = Some(response);
    let axum_response = (&mut slot as &mut dyn std::any::Any)
        .downcast_mut::<Option<http::Response<Body>>>()
        .and_then(Option::take);
    let Some(response) = axum_response else {
        let response = slot
            .take()
            .expect("not taken unless it is an axum response");
        return response.into_raw().map_err(Into::into);
    };
    let buffered = response.extensions().is_empty()
        && axum::body::HttpBody::size_hint(response.body())
            .exact()
            .is_some_and(|n| n <= BUFFER_LIMIT);
    if !buffered {
        return response.into_raw().map_err(Into::into);
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, BUFFER_LIMIT as usize).await?;
    let response = worker::ResponseBuilder::new()
        .with_status(parts.status.as_u16())
        .with_headers(worker::Headers::from(&parts.headers))
        .fixed(bytes.to_vec());
    response.into_raw().map_err(Into::into)
}
