//! provision-sqlx on SQLite: a transaction per writing request, committed
//! before the client hears `201`, rolled back otherwise.
//!
//! ```text
//! cargo run -p example-sqlx        # PORT=3000, DATABASE_URL=sqlite://sqlx-example.db?mode=rwc
//! curl -i -X POST localhost:3000/accounts/alice   # 201, committed
//! curl -i -X POST localhost:3000/accounts/alice   # 409, the name is taken
//! curl -i -X POST localhost:3000/fail/bob         # 400, rolled back
//! curl localhost:3000/accounts                    # alice
//! ```

use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "sqlite://sqlx-example.db?mode=rwc".to_owned());
    let pool = sqlx::SqlitePool::connect(&url).await?;
    let (app, registry) = example_sqlx::app(pool).await?;

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
    Ok(())
}
