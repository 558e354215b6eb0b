//! Cloudflare Workers integration for [`provision`], on workers-rs
//! (`worker` 0.8): the same services and the same axum routes as on a
//! tokio server, with the Workers rules kept.
//!
//! ```ignore
//! use provision_worker::{Isolate, serve};
//! use worker::{Context, Env, HttpRequest};
//!
//! // App services live per isolate; built on the first request.
//! static APP: Isolate<axum::Router> = Isolate::new();
//!
//! async fn fetch(req: HttpRequest, env: Env, ctx: Context)
//!     -> worker::Result<http::Response<axum::body::Body>>
//! {
//!     let router = APP.get_or_try_init(|| build_router(&env)).await?;
//!     Ok(serve(router.clone(), req, &ctx).await)
//! }
//!
//! // Instead of `#[worker::event(fetch)]`: the same export, plus the
//! // panic guard (a handler panic answers a JSON 500).
//! provision_worker::export_fetch!(fetch);
//! ```
//!
//! What it guarantees, per fetch event:
//!
//! * **A scope per request.** [`serve`] runs the event through a router
//!   whose [`ProvisionLayer`](provision_axum::ProvisionLayer) opens one scope
//!   for it; request services are built on first use and never shared with
//!   another event. [`scoped`] does the same for a plain workers-rs handler.
//! * **Releases inside the request.** They complete before the response is
//!   finished: after the last byte of the body (axum), or before the
//!   response is returned ([`scoped`]). A release that cannot be awaited (the
//!   client went away and the body was dropped) is handed to the event's
//!   `wait_until` ([`background`]), so it still runs in the request's own I/O
//!   context and the runtime keeps the event alive until it is done.
//! * **No I/O in app services.** App services live as long as the isolate
//!   and are shared by every request, but an I/O object (a socket) belongs
//!   to the one request that created it: used from another request, Workers
//!   fails with "Cannot perform I/O on behalf of a different request". The
//!   compiler refuses an app service that depends on a request service; the
//!   registry refuses, at startup, an app service whose build creates a
//!   [`RequestBound`](provision::RequestBound) value. [`postgres::PgTarget::connect`]
//!   returns its connection as a `RequestBound`, so an app service that opens
//!   a database socket is refused with a message naming it.
//! * **A panic fails only its request.** Built with `panic=unwind` (as
//!   `scripts/build-worker` does), a panic answers its own request with a
//!   JSON 500 and releases what it held with `Exit::Panic`; the other
//!   requests of the isolate complete. A trap (abort, out of memory) answers
//!   every request in flight with the same 500 instead of leaving them
//!   hanging (see [`export_fetch!`] for exactly what is and is not covered).
//! * **A client that goes away cancels its request.** With the
//!   `enable_request_signal` compatibility flag, [`export_fetch!`] drops the
//!   request's future when the client disconnects: its scope closes with
//!   `Exit::Cancelled` (a transaction rolls back) through `wait_until`, each
//!   release bounded by [`RELEASE_BUDGET`].
//! * **A `finish` route runs on after its client left.** A route wrapped in
//!   `provision_axum::Finish::within(deadline)` runs through `wait_until`:
//!   if the client goes away it still completes, settles (a transaction
//!   commits) and releases with the answer's exit; past its deadline, at
//!   most [`FINISH_BUDGET`], it is cut, rolled back and counted.
//! * **No request waits on another.** [`Isolate`] lets racing first
//!   requests each build the app and keeps the first to finish.
//! * **Cron triggers and queue batches** get a request scope too, with the
//!   same settle and release rules: [`in_scope`].
//!
//! On targets other than `wasm32` only [`Isolate`] is compiled (the rest
//! needs the Workers runtime).
#![deny(missing_docs)]

mod isolate;

pub use isolate::Isolate;

#[cfg(target_arch = "wasm32")]
mod background;
#[cfg(target_arch = "wasm32")]
mod event;
#[cfg(target_arch = "wasm32")]
mod panic;
#[cfg(all(target_arch = "wasm32", feature = "postgres"))]
pub mod postgres;
#[cfg(target_arch = "wasm32")]
mod request;
#[cfg(target_arch = "wasm32")]
mod scoped;
#[cfg(target_arch = "wasm32")]
mod serve;

#[cfg(target_arch = "wasm32")]
pub use background::{FINISH_BUDGET, RELEASE_BUDGET, WaitUntil, abandoned_releases, background};
#[cfg(target_arch = "wasm32")]
pub use event::in_scope;
#[cfg(target_arch = "wasm32")]
pub use panic::install_panic_hook;
#[cfg(target_arch = "wasm32")]
pub use scoped::scoped;
#[cfg(target_arch = "wasm32")]
pub use serve::serve;

/// What [`export_fetch!`] expands to refers to these; not a public API.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __private {
    pub use crate::panic::guarded_fetch;
    pub use js_sys;
    pub use wasm_bindgen as wb;
    pub use wasm_bindgen::prelude::wasm_bindgen;
    pub use worker;
    pub use worker::worker_sys::web_sys;
}
