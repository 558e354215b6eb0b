//! The request head reaches a service that depends on it on the first
//! request that asks, whether or not the service was registered, through
//! `Dep<T>` and through `Lazy<T>`.

mod support;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use provision::integration::RegistryControl;
use provision::{Dep, Error, Lazy, Provide, Request, RequestHead};
use provision_axum::ProvisionLayer;
use support::{Knobs, TestServer, registry};

/// Depends on the request head; registered by nobody.
struct Path(String);

impl Provide for Path {
    type Lifetime = Request;
    type Deps = (RequestHead,);
    async fn build((head,): (Dep<RequestHead>,)) -> Result<Self, Error> {
        Ok(Path(head.uri.path().to_owned()))
    }
}

async fn eager_path(Dep(path): Dep<Path>) -> String {
    path.0.clone()
}

async fn lazy_path(path: Lazy<Path>) -> Result<String, Error> {
    Ok(path.get().await?.0.0.clone())
}

/// Serves `router` on a registry where nothing registered uses the head,
/// and asks twice.
async fn first_and_second(router: Router) -> [(StatusCode, String); 2] {
    let registry = registry(Knobs::default()).await;
    assert!(!registry.uses_request_head(), "nothing registered uses it");
    let server = TestServer::start(router.layer(ProvisionLayer::new(registry))).await;
    let first = server.get("/path").await;
    let second = server.get("/path").await;
    server.stop().await;
    [first, second]
}

#[tokio::test]
async fn an_unregistered_service_on_the_request_head_works_on_the_first_request() {
    let ok = (StatusCode::OK, "/path".to_owned());
    let answers = first_and_second(Router::new().route("/path", get(eager_path))).await;
    assert_eq!(
        answers,
        [ok.clone(), ok.clone()],
        "Dep<Path>: first and second request"
    );
    let answers = first_and_second(Router::new().route("/path", get(lazy_path))).await;
    assert_eq!(
        answers,
        [ok.clone(), ok],
        "Lazy<Path>: first and second request"
    );
}
