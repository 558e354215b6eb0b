//! PostgreSQL with provision-postgres.
//!
//! ```text
//! DATABASE_URL=postgres://user:pass@127.0.0.1/db DB_MODE=per-request \
//!     cargo run -p example-postgres                    # PORT=3000 by default
//! curl -i -d 'buy milk' localhost:3000/notes            # 201, committed first
//! curl -i -d 'buy milk' localhost:3000/notes            # 409, nothing kept
//! curl -i -X POST localhost:3000/drafts/maybe           # 422, rolled back
//! curl localhost:3000/notes                             # {"notes":[{"id":1,"body":"buy milk"}]}
//! curl localhost:3000/health                            # ok, no connection opened
//! ```

use provision_postgres::{Mode, PgOptions, Postgres};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| "set DATABASE_URL=postgres://user:pass@host/db")?;
    let mode: Mode = match std::env::var("DB_MODE") {
        Ok(mode) => mode.parse()?,
        Err(_) => Mode::Pool,
    };
    let database = Postgres::new(&url, PgOptions::default().mode(mode))?;
    let (app, registry) = example_postgres::app(database).await?;

    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port.parse()?,
        Err(_) => 3000,
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!("listening on http://{} ({mode})", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    registry.shutdown().await;
    Ok(())
}
