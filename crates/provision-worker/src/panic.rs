//! The fetch export: the panic guard, and the client that goes away.
//!
//! **Panics.** The Worker build unwinds (`scripts/build-worker` builds with
//! `panic=unwind`): a panic in a handler is caught by
//! [`ProvisionLayer`](provision_axum::ProvisionLayer), which releases what
//! the request held with [`Exit::Panic`](provision::Exit::Panic) (a
//! transaction rolls back) and answers a JSON 500; one anywhere else in the
//! event (starting the app, converting the response) is caught here and
//! answers the same 500. Other requests in flight are not touched.
//!
//! A trap that is not a panic (`abort`, out of memory, a build with
//! `panic=abort`) kills the Wasm instance: no Rust code runs again until
//! the instance is reset on the next call, and every request in flight in
//! it is left waiting on futures that will never be polled again. For
//! those, the guard lives in JavaScript, where code still runs after the
//! trap: each event's promise is raced against a "trapped" promise that
//! the isolate's `error` and `unhandledrejection` events carrying a
//! `WebAssembly.RuntimeError` resolve (and, in a `panic=abort` build, a
//! Rust panic hook, just before the abort) with a JSON 500, built in each
//! request's own continuation so no I/O object crosses requests.
//!
//! **A client that goes away.** With the `enable_request_signal`
//! compatibility flag, the request's `signal` aborts when the client
//! disconnects. The event then drops its Rust future: the integration's
//! drop paths close the request's scope with
//! [`Exit::Cancelled`](provision::Exit::Cancelled) through the event's
//! `waitUntil` (see [`background`](crate::background)), so a transaction
//! rolls back and every release runs, bounded, inside the request's own
//! I/O context. Without the flag nothing tells the Worker, and the request
//! runs to its end as if the client were there.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Once;
use std::task::Poll;

use http::StatusCode;
use provision::integration::{CatchUnwind, panic_message};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use worker::worker_sys::web_sys;
use worker::{Context, Env, FromRequest, IntoResponse};

#[wasm_bindgen(inline_js = r#"
const waiting = new Set();
function answerAll() {
  const answers = [...waiting];
  waiting.clear();
  for (const answer of answers) answer();
}
function isTrap(error) {
  return error instanceof WebAssembly.RuntimeError;
}
addEventListener("error", (event) => { if (isTrap(event.error)) answerAll(); });
addEventListener("unhandledrejection", (event) => { if (isTrap(event.reason)) answerAll(); });

export function provision_worker_trapped() {
  answerAll();
}

// The watch on the request's signal is made only if the event is still
// running after its first poll: most answers (a health check, anything
// refused at extraction) are ready at once, and for them no listener, no
// promise and no Rust callback is made.
export function provision_worker_watch(request) {
  return { signal: request.signal, left: null, settle: null, onAbort: null };
}

export function provision_worker_left(watch) {
  if (watch.left === null) {
    watch.left = new Promise((resolve) => { watch.settle = resolve; });
    const signal = watch.signal;
    if (signal && signal.aborted) {
      watch.settle(true);
    } else if (signal) {
      watch.onAbort = () => watch.settle(true);
      signal.addEventListener("abort", watch.onAbort, { once: true });
    }
  }
  return watch.left;
}

// Settles the watch when the event ends either way, so nothing waits on
// its promise (and the Rust side's callbacks are freed) after the request.
function done(watch) {
  if (watch.onAbort !== null) watch.signal.removeEventListener("abort", watch.onAbort);
  if (watch.settle !== null) watch.settle(false);
}

// The event's promise raced against a JSON 500 if the instance traps
// first. The answer to a trap only resolves `trapped`; the 500 is built in
// this event's own continuation, since a `Response` made while another
// request runs (the one that trapped) would belong to that request.
export function provision_worker_guard(main, watch) {
  let answer;
  const trapped = new Promise((resolve) => { answer = resolve; });
  waiting.add(answer);
  const panicked = trapped.then(() => new Response(
    JSON.stringify({ error: "internal error: the handler panicked" }),
    { status: 500, headers: { "content-type": "application/json" } }));
  return Promise.race([main, panicked]).finally(() => {
    waiting.delete(answer);
    done(watch);
  });
}
"#)]
extern "C" {
    fn provision_worker_trapped();
    fn provision_worker_watch(request: &JsValue) -> JsValue;
    fn provision_worker_left(watch: &JsValue) -> js_sys::Promise;
    fn provision_worker_guard(main: &js_sys::Promise, watch: &JsValue) -> js_sys::Promise;
}

static HOOK: Once = Once::new();

/// In a `panic=abort` build, chains the guard's panic hook after the
/// current one (workers-rs's, which logs the panic and marks the instance
/// for reset): the instance aborts right after the hook, so the hook
/// answers every request in flight from JavaScript. In a `panic=unwind`
/// build a panic is caught and answered by its own request, so this does
/// nothing. [`export_fetch!`] calls it on every event; it acts only once
/// per instance.
pub fn install_panic_hook() {
    if cfg!(panic = "unwind") {
        return;
    }
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            provision_worker_trapped();
        }));
    });
}

/// The body of the `fetch` export made by [`export_fetch!`]: runs the
/// handler like `#[worker::event(fetch)]` does, catching a panic, dropping
/// the handler's future if the client goes away, and raced against the
/// trap guard.
#[doc(hidden)]
pub fn guarded_fetch<Req, Res, F, Fut>(
    request: web_sys::Request,
    env: Env,
    ctx: worker::worker_sys::Context,
    handler: F,
) -> js_sys::Promise
where
    Req: FromRequest + 'static,
    Res: IntoResponse + 'static,
    F: FnOnce(Req, Env, Context) -> Fut + 'static,
    Fut: Future<Output = worker::Result<Res>> + 'static,
{
    install_panic_hook();
    let watch = provision_worker_watch(request.as_ref());
    let guarded = watch.clone();
    let main = wasm_bindgen_futures::future_to_promise(std::panic::AssertUnwindSafe(async move {
        let ctx = Context::new(ctx);
        // Boxed so that it can be dropped on the spot if the client leaves.
        let mut work: Pin<Box<_>> = Box::pin(CatchUnwind::new(respond(request, env, ctx, handler)));
        // Watched from the first time the work waits (see the JavaScript
        // above): an event answered in its first poll watches nothing.
        let mut left: Option<JsFuture> = None;
        let outcome = poll_fn(|cx| {
            if let Poll::Ready(outcome) = work.as_mut().poll(cx) {
                return Poll::Ready(Some(outcome));
            }
            let left = left.get_or_insert_with(|| JsFuture::from(provision_worker_left(&watch)));
            match Pin::new(left).poll(cx) {
                Poll::Ready(Ok(value)) if value.is_truthy() => Poll::Ready(None),
                _ => Poll::Pending,
            }
        })
        .await;
        let response = match outcome {
            Some(Ok(response)) => response,
            Some(Err(panic)) => {
                worker::console_error!("the fetch event panicked: {}", panic_message(&*panic));
                raw_json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error: the handler panicked",
                )
            }
            None => {
                // Dropping the request's future closes its scope with
                // `Exit::Cancelled`, through `waitUntil`.
                drop(work);
                // Nobody reads this answer.
                raw_json_error(
                    StatusCode::from_u16(499).expect("a valid status"),
                    "the client went away",
                )
            }
        };
        response.map(JsValue::from).map_err(JsValue::from)
    }));
    provision_worker_guard(&main, &guarded)
}

/// The event itself: the request converted, the handler run, its response
/// converted; every failure a JSON error.
async fn respond<Req, Res, F, Fut>(
    request: web_sys::Request,
    env: Env,
    ctx: Context,
    handler: F,
) -> worker::Result<web_sys::Response>
where
    Req: FromRequest + 'static,
    Res: IntoResponse + 'static,
    F: FnOnce(Req, Env, Context) -> Fut + 'static,
    Fut: Future<Output = worker::Result<Res>> + 'static,
{
    // Not `Req::from_raw`: for `HttpRequest` that throws a JavaScript
    // exception per request in local workerd (see `request.rs`).
    match crate::request::convert::<Req>(request) {
        Ok(request) => match handler(request, env, ctx).await {
            Ok(response) => match crate::serve::into_js(response).await {
                Ok(response) => Ok(response),
                Err(error) => {
                    worker::console_error!("converting the response failed: {error}");
                    raw_json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
                }
            },
            Err(error) => {
                worker::console_error!("the fetch handler failed: {error}");
                raw_json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        },
        Err(error) => {
            worker::console_error!("converting the request failed: {error}");
            raw_json_error(StatusCode::BAD_REQUEST, "the request could not be read")
        }
    }
}

fn raw_json_error(status: StatusCode, message: &str) -> worker::Result<web_sys::Response> {
    crate::scoped::json_error(status, message).map(web_sys::Response::from)
}
/// Exports `handler` as the Worker's `fetch` entry point, like
/// `#[worker::event(fetch)]` does, with the panic guard around it.
///
/// `handler` is an `async fn(Req, worker::Env, worker::Context) ->
/// worker::Result<Res>`, where `Req` is `worker::HttpRequest` (for axum) or
/// `worker::Request`, and `Res` is anything workers-rs can turn into a
/// response. Do not also use `#[worker::event(fetch)]`.
///
/// ```ignore
/// async fn fetch(req: worker::HttpRequest, env: worker::Env, ctx: worker::Context)
///     -> worker::Result<http::Response<axum::body::Body>> { /* ... */ }
///
/// provision_worker::export_fetch!(fetch);
/// ```
///
/// # What a panic does
///
/// In the `panic=unwind` build (`scripts/build-worker`'s default): a panic
/// in a handler, extractor, service build or settle fails only its own
/// request, with `500 {"error": "internal error: the handler panicked"}`;
/// [`ProvisionLayer`](provision_axum::ProvisionLayer) releases what it held
/// with `Exit::Panic` (a transaction rolls back) and every other request
/// in flight in the isolate completes normally. A panic elsewhere in the
/// event (starting the app, converting the response) is answered the same
/// way here. A panic in a release step is caught by the scope and counted
/// as a failed release.
///
/// A trap that is not a panic (`abort`, out of memory), or any panic in a
/// `panic=abort` build, kills the Wasm instance; then:
///
/// * every request in flight in the isolate answers the same JSON 500 at
///   once instead of hanging (their Wasm state is gone), and workerd resets
///   the instance for the next request (app services are built again);
/// * release steps of the dead requests do not run: a transaction left
///   open is rolled back by PostgreSQL when the runtime closes its socket
///   with the request, and nothing else is undone;
/// * a response whose body is already streaming has sent its status; it is
///   cut off instead of becoming a 500;
/// * Wasm state built before the trap (caches, metrics) is lost.
///
/// # A client that goes away
///
/// With the `enable_request_signal` compatibility flag (in `wrangler.toml`
/// and `workerd.capnp`), a disconnect aborts the request's `signal`; the
/// handler's future is then dropped, so its scope is closed with
/// `Exit::Cancelled` through the event's `waitUntil` (bounded by
/// [`RELEASE_BUDGET`](crate::RELEASE_BUDGET)).
#[macro_export]
macro_rules! export_fetch {
    ($handler:path) => {
        #[doc(hidden)]
        #[$crate::__private::wasm_bindgen(js_name = fetch, wasm_bindgen = $crate::__private::wb)]
        pub fn __provision_worker_fetch(
            request: $crate::__private::web_sys::Request,
            env: $crate::__private::worker::Env,
            ctx: $crate::__private::worker::worker_sys::Context,
        ) -> $crate::__private::js_sys::Promise {
            $crate::__private::guarded_fetch(request, env, ctx, $handler)
        }
    };
}
