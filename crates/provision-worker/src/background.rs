//! [`background`]: release steps handed to the fetch event's `wait_until`.

use provision_axum::Background;
use wasm_bindgen::{JsCast, JsValue};
use worker::Context;
use worker::worker_sys::Context as JsContext;

/// A [`Background`] that hands each task to this fetch event's
/// `wait_until`: the task runs in the request's own I/O context (so it may
/// close the request's sockets), and the runtime keeps the event alive
/// until it has finished, after the response has been sent.
///
/// [`serve`](crate::serve) puts one in every request's extensions, where
/// `provision-axum` finds it for the releases it cannot await (a request
/// or response body dropped before the end).
pub fn background(ctx: &Context) -> Background {
    // `worker::Context` is not `Clone`; the JS object behind it is.
    let js: &JsContext = ctx.as_ref();
    let js: &JsValue = js.as_ref();
    let ctx = Context::new(js.clone().unchecked_into());
    Background::new(move |task| ctx.wait_until(task))
}
