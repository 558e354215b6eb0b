//! The HTTP API: routes, extractors, errors, the OpenAPI document.

mod error;
mod extract;
mod finish_outcomes;
mod health;
mod observe;
mod openapi;
mod openapi_rules;
mod organisations;
mod signed_in;
mod sources;
mod users;

pub use error::{ApiError, ErrorBody, error_response};
pub use finish_outcomes::{FINISH_ROUTES, finish_counted};
pub use openapi::ApiDoc;
pub use signed_in::SignedIn;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, patch, post};
use http::{Method, StatusCode, Uri};
use provision::{Budget, BudgetGroup, Registry};
use provision_axum::{Finish, ProvisionLayer};

use crate::metrics::Metrics;

/// The production router. Tests build it too, with services overridden in
/// the registry (a counting fake for the database): the same routes, the
/// same layers.
pub fn router(registry: Registry, metrics: Metrics, body_limit: usize) -> Router {
    // A finishing write runs on a task of its own, which the server's
    // shutdown cut cannot reach: it is cut at the same moment, the end of
    // the server's grace period.
    let finish = match registry.app::<crate::settings::Settings>() {
        Some(settings) => Finish::within(WRITE_DEADLINE).shutdown_grace(settings.shutdown_grace),
        None => Finish::within(WRITE_DEADLINE),
    };
    router_with_finish(registry, metrics, body_limit, finish)
}

/// [`router`] with the `finish` policy's instance given, so its outcomes
/// (`Finish::outcomes`) can be read (tests).
pub fn router_with_finish(
    registry: Registry,
    metrics: Metrics,
    body_limit: usize,
    finish: Finish,
) -> Router {
    // Each write's disconnect policy, and why, is in its OpenAPI description;
    // how its `finish` runs end after a client left is counted per route
    // (`FINISH_ROUTES` lists them, their series started at zero here).
    finish_outcomes::start_finish_series(&metrics);
    let finish = |route| finish_counted(route, &finish, &metrics);
    let lists = list_budget(&registry);
    let api = Router::new()
        .route("/api/health", get(health::health))
        .route("/api/ready", get(health::ready))
        .route("/api/openapi.json", get(openapi::document))
        .route(
            "/api/users",
            get(users::list)
                .layer(lists.clone())
                .merge(finish(post(users::create))),
        )
        .route("/api/users/{id}", get(users::get))
        .route(
            "/api/orgs",
            get(organisations::list_mine)
                .layer(lists.clone())
                .post(organisations::create),
        )
        .route("/api/orgs/{org_id}", get(organisations::get))
        .route(
            "/api/orgs/{org_id}/members",
            get(organisations::members)
                .layer(lists.clone())
                .merge(finish(post(organisations::add_member))),
        )
        .route(
            "/api/orgs/{org_id}/members/{user_id}",
            finish(patch(organisations::change_role).delete(organisations::remove_member)),
        )
        .route(
            "/api/scopes",
            get(sources::list_scopes).layer(lists.clone()),
        )
        .route(
            "/api/scopes/{scope_id}/sources",
            get(sources::list)
                .layer(lists)
                .merge(finish(post(sources::create))),
        )
        .route(
            "/api/scopes/{scope_id}/sources/{source_id}",
            get(sources::get).merge(finish(patch(sources::update).delete(sources::delete))),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit));
    // A private `/metrics` (`--metrics-token`) asks for a bearer token of
    // its own, not an API token: a scraper is not a user.
    let metrics_token = registry
        .app::<crate::settings::Settings>()
        .and_then(|settings| settings.metrics_token.clone());
    Router::new()
        .route("/metrics", get(observe::metrics))
        .with_state(observe::MetricsPage::new(metrics.clone(), metrics_token))
        .merge(api)
        // One stack, so axum wraps each route once for both. The request
        // log and metrics are outermost, so their latency includes building
        // services and settling them (a commit); inside them every handler
        // and middleware gets the request's scope. `/metrics` asks for no
        // service, so it opens no scope.
        .layer((
            axum::middleware::from_fn_with_state(metrics, observe::observe),
            ProvisionLayer::new(registry),
        ))
        // The handlers take no state, so until `with_state` axum keeps each
        // one as a boxed handler and turns it into a route, cloning and
        // re-layering it, on every request it serves (`axum::serve` does
        // this once; our server loops call the router directly).
        .with_state(())
}

/// The list routes' budget: they share the group `lists`, which holds at
/// most `--list-connections` connections at once (half the pool by
/// default), so that a burst of lists (the heaviest reads: a page and a
/// count, per request) leaves connections for single reads and writes. A
/// list may spend twice `--acquire-timeout` acquiring in all (a slot, then
/// the connection, whose own bound is `--acquire-timeout`, so an
/// unreachable database still answers with its own 503 first), and then
/// gets a 503 (`provision_budget_exceeded_total` counts it).
///
/// With a connection per request there is no shared pool to protect: in
/// per-request mode (unless `--list-connections` is given) and on Workers
/// (no provision timer either) the budget is empty and limits nothing.
pub fn list_budget(registry: &Registry) -> Budget {
    let settings = registry.app::<crate::settings::Settings>();
    match settings {
        Some(settings) if cfg!(not(target_arch = "wasm32")) => {
            let Some(cap) = settings.list_connections() else {
                return Budget::new();
            };
            let lists = BudgetGroup::new("lists").max_held::<crate::services::Conn>(cap);
            Budget::new()
                .group(&lists)
                .acquire_wait(settings.acquire_timeout * 2)
        }
        _ => Budget::new(),
    }
}

/// How long a `finish` write may run after its client went away (or at
/// all): longer than any write takes, short enough that shutdown (which
/// waits for it) is not held for long.
pub const WRITE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
