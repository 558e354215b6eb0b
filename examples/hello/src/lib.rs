//! The router of the `hello` example: a handler that asks for no service,
//! so no service is built for it.

use axum::Router;
use axum::routing::get;
use provision::{Dep, Error, Registry, provide};
use provision_axum::ProvisionLayer;

/// Configuration made before startup: a supplied app value, built (that is,
/// handed over) once when the registry is built.
pub struct Settings {
    /// Who the server greets in its log line.
    pub name: &'static str,
}
provision::supplied!(Settings);

/// A request service that no route of this example asks for. It is
/// registered, so it shows in the graph and its dependencies are checked at
/// startup, but it is never built.
pub struct Expensive;

#[provide(Request)]
impl Expensive {
    async fn build(settings: Dep<Settings>) -> Result<Self, Error> {
        tracing::info!("building Expensive for {}", settings.name);
        Ok(Expensive)
    }
}

/// Asks for nothing, so nothing is built for it.
async fn hello() -> &'static str {
    "hello"
}

/// The router and its registry. Serve the router; call
/// [`Registry::shutdown`] once the server has stopped.
pub async fn app() -> Result<(Router, Registry), Error> {
    let registry = Registry::builder()
        .supply(Settings { name: "hello" })
        .register::<Expensive>()
        .build()
        .await?;
    // The graph is fixed once the registry is built.
    let graph = registry.graph().to_string();
    let router = Router::new()
        .route("/", get(hello))
        .route(
            "/graph",
            get(move || {
                let graph = graph.clone();
                async move { graph }
            }),
        )
        .layer(ProvisionLayer::new(registry.clone()));
    Ok((router, registry))
}
