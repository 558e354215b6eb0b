//! Over real HTTP: the body of every error the integration writes itself (a
//! service that cannot be built for `Dep<T>` or `Lazy<T>::get`, a handler
//! without a scope, a handler that panicked, a settle step that failed).
//! The default is `{"error": message}` JSON; the application chooses
//! another with `RegistryBuilder::error_response`.

mod support;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use provision::{Dep, Error, Exit, Lazy, Provide, Registry, Request};
use provision_axum::ProvisionLayer;
use support::TestServer;

/// A request service whose database is down: a 503 written for clients.
struct Down;
impl Provide for Down {
    type Lifetime = Request;
    type Deps = ();
    async fn build(_: ()) -> Result<Self, Error> {
        Err(Error::new("the database is down").with_status(StatusCode::SERVICE_UNAVAILABLE))
    }
}

/// A request service whose commit is refused.
struct Refused;
impl Provide for Refused {
    type Lifetime = Request;
    type Deps = ();
    async fn build(_: ()) -> Result<Self, Error> {
        Ok(Refused)
    }
    async fn settle(&self, _: Exit) -> Result<(), Error> {
        Err(Error::new("the commit was refused").with_status(StatusCode::CONFLICT))
    }
}

async fn eager(_: Dep<Down>) -> &'static str {
    "unreachable"
}

async fn lazy(down: Lazy<Down>) -> Result<&'static str, Error> {
    down.get().await?;
    Ok("unreachable")
}

async fn refused(_: Dep<Refused>) -> &'static str {
    "not sent: the commit failed"
}

async fn panics(_: Dep<Refused>) -> &'static str {
    panic!("the handler panicked")
}

/// The routes, with the layer around every route but `/outside`.
fn router(registry: Registry) -> Router {
    Router::new()
        .route("/eager", get(eager))
        .route("/lazy", get(lazy))
        .route("/refused", get(refused))
        .route("/panics", get(panics))
        .layer(ProvisionLayer::new(registry))
        .route("/outside", get(eager))
}

async fn answers(registry: Registry) -> Vec<(StatusCode, String)> {
    let server = TestServer::start(router(registry)).await;
    let mut answers = Vec::new();
    for path in ["/eager", "/lazy", "/refused", "/panics", "/outside"] {
        answers.push(server.get(path).await);
    }
    server.stop().await;
    answers
}

#[tokio::test]
async fn by_default_every_error_is_json_with_an_error_field() {
    let registry = Registry::builder().build().await.unwrap();
    let answers = answers(registry).await;
    let json = |status: StatusCode, message: &str| {
        (status, serde_json::json!({ "error": message }).to_string())
    };
    assert_eq!(
        answers,
        vec![
            json(StatusCode::SERVICE_UNAVAILABLE, "the database is down"),
            json(StatusCode::SERVICE_UNAVAILABLE, "the database is down"),
            json(StatusCode::CONFLICT, "the commit was refused"),
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the handler panicked"
            ),
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: could not provide `request scope`"
            ),
        ]
    );
}

/// The application's own format: plain text with a prefix, so nothing of
/// the default JSON can pass for it.
fn problem(status: StatusCode, message: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    (status, format!("problem: {message}")).into_response()
}

#[tokio::test]
async fn the_application_chooses_the_format_of_every_error_inside_the_layer() {
    let registry = Registry::builder()
        .error_response(problem)
        .build()
        .await
        .unwrap();
    let answers = answers(registry).await;
    let problem = |status: StatusCode, message: &str| (status, format!("problem: {message}"));
    assert_eq!(
        answers,
        vec![
            problem(StatusCode::SERVICE_UNAVAILABLE, "the database is down"),
            problem(StatusCode::SERVICE_UNAVAILABLE, "the database is down"),
            problem(StatusCode::CONFLICT, "the commit was refused"),
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the handler panicked"
            ),
            // Outside the layer no registry is reachable: the default stays.
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({ "error": "internal error: could not provide `request scope`" })
                    .to_string()
            ),
        ]
    );
}

async fn panics_before_asking() -> &'static str {
    panic!("the handler panicked before asking for anything")
}

#[tokio::test]
async fn a_panic_in_a_request_that_opened_no_scope_is_in_the_application_format() {
    let registry = Registry::builder()
        .error_response(problem)
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route("/", get(panics_before_asking))
        .layer(ProvisionLayer::new(registry.clone()));
    let server = TestServer::start(app).await;
    assert_eq!(
        server.get("/").await,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "problem: internal error: the handler panicked".to_owned()
        )
    );
    assert_eq!(registry.probe().open_scopes(), 0, "no scope was opened");
    server.stop().await;
}
