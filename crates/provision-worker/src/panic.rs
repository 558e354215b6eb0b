//! The panic guard: a handler panic answers a JSON 500 instead of a request
//! that never completes.
//!
//! On `wasm32-unknown-unknown` a panic aborts: the Wasm instance traps
//! (`RuntimeError: unreachable`) and no Rust code runs again until
//! worker-build's shim resets the instance on the next call. The request
//! whose handler panicked, and every other request in flight in the
//! isolate, are left waiting on futures that will never be polled again.
//!
//! The guard lives in JavaScript, where code still runs after the trap.
//! Each fetch event's promise is raced against a "trapped" promise. Two
//! things resolve every pending "trapped" promise: a Rust panic hook
//! (chained after workers-rs's own, which marks the instance for reset),
//! called just before the abort, and, for traps that are not Rust panics
//! (out of memory, say), the isolate's `error` and `unhandledrejection`
//! events carrying a `WebAssembly.RuntimeError`. The 500 is built in each
//! request's own continuation, so no I/O object crosses requests.

use std::future::Future;
use std::sync::Once;

use http::StatusCode;
use wasm_bindgen::prelude::*;
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

export function provision_worker_guard(main) {
  let answer;
  const trapped = new Promise((resolve) => { answer = resolve; });
  waiting.add(answer);
  const panicked = trapped.then(() => new Response(
    JSON.stringify({ error: "internal error: the handler panicked" }),
    { status: 500, headers: { "content-type": "application/json" } }));
  return Promise.race([main, panicked]).finally(() => waiting.delete(answer));
}
"#)]
extern "C" {
    fn provision_worker_trapped();
    fn provision_worker_guard(main: &js_sys::Promise) -> js_sys::Promise;
}

static HOOK: Once = Once::new();

/// Chains the guard's panic hook after the current one (workers-rs's, which
/// logs the panic and marks the instance for reset). [`export_fetch!`]
/// calls it on every event; it does something only once per instance.
pub fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            // The instance aborts right after this hook returns: answer the
            // pending requests from JavaScript now.
            provision_worker_trapped();
        }));
    });
}

/// The body of the `fetch` export made by [`export_fetch!`]: runs the
/// handler like `#[worker::event(fetch)]` does, raced against the panic
/// guard.
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
    let main = wasm_bindgen_futures::future_to_promise(std::panic::AssertUnwindSafe(async move {
        let ctx = Context::new(ctx);
        let response = match Req::from_raw(request) {
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
                let error: Box<dyn std::error::Error> = error.into();
                worker::console_error!("converting the request failed: {error}");
                raw_json_error(StatusCode::BAD_REQUEST, "the request could not be read")
            }
        };
        response.map(JsValue::from).map_err(JsValue::from)
    }));
    provision_worker_guard(&main)
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
/// Covered: the request whose handler (or extractor, service build,
/// release, response body) panicked answers `500 {"error": "internal
/// error: the handler panicked"}` instead of hanging, and so does every
/// other request in flight in the same isolate at that moment; workerd
/// resets the Wasm instance and the next request is served normally (app
/// services are built again). Sockets the dead requests held are closed by
/// the runtime when their requests end.
///
/// Not covered:
///
/// * The other in-flight requests of the isolate are not saved: their Wasm
///   state is gone with the instance, so they fail with the same 500, even
///   though they did nothing wrong. Only unwinding (nightly Rust with
///   `-Z build-std` and worker-build's `--panic-unwind`) could keep them.
/// * Release steps of the dead requests do not run (no Rust code runs after
///   the trap): a transaction left open is rolled back by PostgreSQL when
///   its connection closes, and nothing else is undone.
/// * A response whose body is already streaming when the panic happens has
///   sent its status; it is cut off instead of becoming a 500.
/// * Wasm state built before the panic (caches, metrics) is reset with the
///   instance.
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
