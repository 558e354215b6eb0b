//! Hello: a handler that asks for no service builds none.
//!
//! `GET /` answers "hello" without building anything; `GET /graph` prints
//! the registered services and their dependencies. At shutdown the probe
//! shows that only the supplied `Settings` was ever acquired.
//!
//! ```text
//! cargo run -p example-hello          # PORT=3000 by default
//! curl localhost:3000/
//! curl localhost:3000/graph
//! ```

use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let (app, registry) = example_hello::app().await?;

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
    for report in registry.probe().snapshot() {
        tracing::info!(
            "{} ({}): acquired {}, released {}",
            report.name,
            report.lifetime,
            report.acquires,
            report.releases
        );
    }
    Ok(())
}
