//! A bare workers-rs Worker, the floor the bench compares the reference
//! Worker (`apps/cloud-api-worker`) with: `GET /api/health` answers
//! `{"status":"ok"}` as cloud-api does, from a plain `#[event(fetch)]` on
//! workers-rs's own `Request` and `Response` (no `http` conversion, no axum,
//! no provision, no tracing, no metrics). Anything else is a 404.
//!
//! Built by `scripts/build-worker bench/worker-bare` (the same profile,
//! wasm-bindgen, wasm-opt and esbuild as the reference Worker) and served
//! by the bench runner in workerd with `workerd.capnp` beside this crate.
//!
//! With the `ladder-*` features it is instead one rung of the ladder from
//! this Worker up to the reference one (`ladder` below), built by hand to
//! split the reference Worker's extra CPU per request.
#![cfg(target_arch = "wasm32")]

#[cfg(not(any(feature = "ladder-guard", feature = "ladder-axum")))]
use worker::{Context, Env, Request, Response, Result, event};

#[cfg(not(any(feature = "ladder-guard", feature = "ladder-axum")))]
#[event(fetch)]
async fn fetch(request: Request, _env: Env, _ctx: Context) -> Result<Response> {
    if request.path() == "/api/health" {
        Response::from_json(&serde_json::json!({ "status": "ok" }))
    } else {
        Response::error("not found", 404)
    }
}

#[cfg(feature = "ladder-axum")]
mod ladder {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use provision_worker::Isolate;
    use worker::{Context, Env, HttpRequest};

    /// The router, made once per isolate as the reference Worker makes its
    /// app.
    static ROUTER: Isolate<Router> = Isolate::new();

    async fn health() -> axum::Json<serde_json::Value> {
        axum::Json(serde_json::json!({ "status": "ok" }))
    }

    async fn router() -> Result<Router, std::convert::Infallible> {
        let router = Router::new().route("/api/health", get(health));
        #[cfg(feature = "ladder-provision")]
        let router = {
            let registry = provision::Registry::builder()
                .build()
                .await
                .expect("an empty registry builds");
            router.layer(provision_axum::ProvisionLayer::new(registry))
        };
        Ok(router.with_state(()))
    }

    async fn fetch(
        request: HttpRequest,
        _env: Env,
        ctx: Context,
    ) -> worker::Result<http::Response<Body>> {
        let router = ROUTER.get_or_try_init(router).await.expect("infallible");
        Ok(provision_worker::serve(router.clone(), request, &ctx).await)
    }

    provision_worker::export_fetch!(fetch);
}

#[cfg(all(feature = "ladder-guard", not(feature = "ladder-axum")))]
mod ladder_guard {
    use axum::body::Body;
    use worker::{Context, Env, HttpRequest};

    async fn fetch(
        request: HttpRequest,
        _env: Env,
        _ctx: Context,
    ) -> worker::Result<http::Response<Body>> {
        let response = if request.uri().path() == "/api/health" {
            http::Response::builder()
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"status":"ok"}"#))
        } else {
            http::Response::builder()
                .status(http::StatusCode::NOT_FOUND)
                .body(Body::from("not found"))
        };
        Ok(response.expect("a valid response"))
    }

    provision_worker::export_fetch!(fetch);
}
