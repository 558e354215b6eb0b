//! The router of the `database-per-handler` example: one connection per
//! request, opened only for the handlers that ask for one, shared by
//! everything in the request that asks, and closed when the request ends.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use provision::{Dep, Error, Exit, Lazy, Registry, provide};
use provision_axum::ProvisionLayer;

/// An in-memory stand-in for a database server (or a pool): built once at
/// startup and shared by every request.
#[derive(Default)]
pub struct FakeDatabase {
    items: Mutex<Vec<String>>,
    audit: Mutex<Vec<String>>,
    connections_opened: AtomicU64,
}

impl FakeDatabase {
    /// How many connections have been opened since startup.
    pub fn connections_opened(&self) -> u64 {
        self.connections_opened.load(Ordering::SeqCst)
    }

    /// The audit trail: one line per write, naming the connection.
    pub fn audit_trail(&self) -> Vec<String> {
        self.audit.lock().unwrap().clone()
    }
}

#[provide(App)]
impl FakeDatabase {
    async fn build() -> Result<Self, Error> {
        tracing::info!("database ready");
        Ok(FakeDatabase::default())
    }

    async fn release(self, exit: Exit) -> Result<(), Error> {
        tracing::info!(
            "database closed ({}) after {} connections",
            exit.label(),
            self.connections_opened()
        );
        Ok(())
    }
}

/// A connection: one per request that asks, closed when the request ends.
pub struct Connection {
    /// The connection's number, counted from 1 since startup.
    pub id: u64,
    db: Dep<FakeDatabase>,
}

impl Connection {
    /// Every item, in insertion order.
    pub fn list(&self) -> Vec<String> {
        self.db.items.lock().unwrap().clone()
    }

    /// Adds an item.
    pub fn insert(&self, item: String) {
        self.db.items.lock().unwrap().push(item);
    }
}

#[provide(Request)]
impl Connection {
    async fn build(db: Dep<FakeDatabase>) -> Result<Self, Error> {
        let id = db.connections_opened.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::info!("connection {id} opened");
        Ok(Connection { id, db })
    }

    async fn release(self, exit: Exit) -> Result<(), Error> {
        tracing::info!("connection {} closed ({})", self.id, exit.label());
        Ok(())
    }
}

/// Writes an audit line for each change, through the request's connection:
/// a second service asking for `Connection` gets the same one.
pub struct AuditLog {
    conn: Dep<Connection>,
}

impl AuditLog {
    /// Records `what`, naming the connection that did it.
    pub fn record(&self, what: &str) {
        let line = format!("connection {}: {what}", self.conn.id);
        self.conn.db.audit.lock().unwrap().push(line);
    }
}

#[provide(Request)]
impl AuditLog {
    async fn build(conn: Dep<Connection>) -> Result<Self, Error> {
        Ok(AuditLog { conn })
    }
}

/// Asks for nothing: no connection is opened.
async fn health() -> &'static str {
    "ok"
}

/// One connection for this request.
async fn list_items(Dep(conn): Dep<Connection>) -> String {
    conn.list().join("\n")
}

/// Two handles ask for the connection (one through `AuditLog`): it is
/// opened once and shared. They are `Lazy`, so an empty item is refused
/// before either is built: a refused write opens no connection.
async fn create_item(
    conn: Lazy<Connection>,
    audit: Lazy<AuditLog>,
    item: String,
) -> Result<(StatusCode, String), Error> {
    if item.is_empty() {
        return Ok((StatusCode::BAD_REQUEST, "empty item".to_owned()));
    }
    let (conn, audit) = (conn.get().await?, audit.get().await?);
    audit.record(&format!("added {item:?}"));
    conn.insert(item);
    Ok((StatusCode::CREATED, format!("connection {}", conn.id)))
}

/// The router and its registry. Serve the router; call
/// [`Registry::shutdown`] once the server has stopped.
pub async fn app() -> Result<(Router, Registry), Error> {
    let registry = Registry::builder()
        .register::<Connection>()
        .register::<AuditLog>()
        .build()
        .await?;
    let router = Router::new()
        .route("/health", get(health))
        .route("/items", get(list_items).post(create_item))
        .layer(ProvisionLayer::new(registry.clone()));
    Ok((router, registry))
}
