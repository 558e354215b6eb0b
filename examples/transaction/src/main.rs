//! Transaction: commit before the client hears `201`, roll back otherwise.
//!
//! Each request that writes gets a `Transaction` that buffers its writes.
//! Its `settle` step runs after the handler answered and before the answer
//! is sent: it commits on a success status (a commit that fails turns the
//! `201` into a `409`) and rolls back on an error status. Its `release`
//! step rolls back anything left after a panic or a dropped connection.
//!
//! ```text
//! cargo run -p example-transaction     # PORT=3000 by default
//! curl -i -X POST localhost:3000/accounts/alice   # 201, committed
//! curl -i -X POST localhost:3000/accounts/alice   # 409, commit refused
//! curl -i -X POST localhost:3000/fail/bob         # 400, rolled back
//! curl -i -X POST localhost:3000/panic/carol      # 500, rolled back in release
//! curl localhost:3000/accounts                    # alice
//! ```

use example_transaction::Transaction;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let (app, registry) = example_transaction::app().await?;

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
    let report = registry.probe().report::<Transaction>();
    tracing::info!(
        "transactions: begun {}, ended {}",
        report.acquires,
        report.releases
    );
    Ok(())
}
