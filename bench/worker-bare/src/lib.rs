//! A bare workers-rs Worker, the floor the bench compares the reference
//! Worker (`apps/cloud-api-worker`) with: `GET /api/health` answers
//! `{"status":"ok"}` as cloud-api does, from a plain `#[event(fetch)]` on
//! workers-rs's own `Request` and `Response` (no `http` conversion, no axum,
//! no provision, no tracing, no metrics). Anything else is a 404.
//!
//! Built by `scripts/build-worker bench/worker-bare` (the same profile,
//! wasm-bindgen, wasm-opt and esbuild as the reference Worker) and served
//! by the bench runner in workerd with `workerd.capnp` beside this crate.
#![cfg(target_arch = "wasm32")]

use worker::{Context, Env, Request, Response, Result, event};

#[event(fetch)]
async fn fetch(request: Request, _env: Env, _ctx: Context) -> Result<Response> {
    if request.path() == "/api/health" {
        Response::from_json(&serde_json::json!({ "status": "ok" }))
    } else {
        Response::error("not found", 404)
    }
}
