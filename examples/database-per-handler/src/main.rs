//! Database per handler: a connection per request, only where it is asked for.
//!
//! `GET /health` opens no connection. `GET /items` and `POST /items` open
//! one each, shared by both handles of `POST /items` (the handler's and
//! the audit log's) and closed when the response has been sent; a `POST`
//! of an empty item is refused before its lazy handles build anything. The log
//! shows each open and close; the probe counts are printed at shutdown.
//!
//! ```text
//! cargo run -p example-database-per-handler      # PORT=3000 by default
//! curl localhost:3000/health
//! curl -d apples localhost:3000/items
//! curl localhost:3000/items
//! ```

use example_database_per_handler::{AuditLog, Connection, FakeDatabase};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let (app, registry) = example_database_per_handler::app().await?;

    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port.parse()?,
        Err(_) => 3000,
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;

    registry.shutdown().await;
    let probe = registry.probe();
    for report in [
        probe.report::<FakeDatabase>(),
        probe.report::<Connection>(),
        probe.report::<AuditLog>(),
    ] {
        tracing::info!(
            "{} ({}): acquired {}, released {}, held {}",
            report.name,
            report.lifetime,
            report.acquires,
            report.releases,
            report.held
        );
    }
    Ok(())
}
