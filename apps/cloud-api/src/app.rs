//! Assembling the service: the registry of services and the router, the
//! one place production and tests both build it from.

use axum::Router;
use provision::{Registry, RegistryBuilder};

use crate::metrics::Metrics;
use crate::services::{Authenticated, Authorization, BearerToken, Conn, Db, Tx};
use crate::settings::Settings;

/// The services, registered but not built: tests add overrides (a counting
/// fake for the database) before building.
pub fn services(settings: Settings, metrics: Metrics) -> RegistryBuilder {
    let builder = Registry::builder().step_timeout(settings.step_timeout);
    // Natively tokio's clock bounds every settle and release step; on
    // Workers the host supplies its own timer.
    #[cfg(not(target_arch = "wasm32"))]
    let builder = builder.timer(provision_axum::TokioTimer);
    builder
        .supply(settings)
        .supply(metrics.clone())
        .observer(metrics.observer())
        // provision's own errors (a service that cannot be provided, a
        // panic, a refused commit) in the same body as every other error.
        .error_response(crate::http::error_response)
        .register::<Db>()
        .register::<Conn>()
        .register::<Tx>()
        .register::<Authorization>()
        .register::<BearerToken>()
        .register::<Authenticated>()
}

/// A running service's parts.
pub struct App {
    /// The HTTP router.
    pub router: Router,
    /// The services (shut it down after the server stops).
    pub registry: Registry,
    /// The metrics behind `/metrics`.
    pub metrics: Metrics,
}

impl App {
    /// Builds the service from its settings: connects (or opens SQLite),
    /// migrates, and assembles the router.
    pub async fn build(settings: Settings) -> Result<App, provision::Error> {
        App::from_services(services(settings.clone(), Metrics::new()), &settings).await
    }

    /// Builds the service from a registry builder made with [`services`]
    /// (and perhaps overridden).
    pub async fn from_services(
        services: RegistryBuilder,
        settings: &Settings,
    ) -> Result<App, provision::Error> {
        let registry = services.build().await?;
        let metrics = registry
            .app::<Metrics>()
            .map(|m| (*m).clone())
            .expect("services() supplies Metrics");
        let router = crate::http::router(registry.clone(), metrics.clone(), settings.body_limit);
        Ok(App {
            router,
            registry,
            metrics,
        })
    }
}
