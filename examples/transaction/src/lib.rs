//! The router of the `transaction` example: a request's writes are buffered
//! in a transaction, committed before the client hears of success, and
//! rolled back on any other outcome.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use provision::{Dep, Error, Exit, Registry, provide};
use provision_axum::ProvisionLayer;

/// An in-memory stand-in for a database with a unique constraint on
/// account names.
#[derive(Default)]
pub struct FakeDatabase {
    accounts: Mutex<Vec<String>>,
    transactions: AtomicU64,
}

impl FakeDatabase {
    /// The committed accounts, in commit order.
    pub fn accounts(&self) -> Vec<String> {
        self.accounts.lock().unwrap().clone()
    }

    /// Applies `writes` atomically: all of them, or none if one breaks the
    /// unique constraint.
    fn commit(&self, writes: &[String]) -> Result<(), Error> {
        let mut accounts = self.accounts.lock().unwrap();
        for (i, name) in writes.iter().enumerate() {
            if accounts.contains(name) || writes[..i].contains(name) {
                return Err(Error::new(format!("account {name:?} already exists"))
                    .with_status(StatusCode::CONFLICT));
            }
        }
        accounts.extend_from_slice(writes);
        Ok(())
    }
}

#[provide(App)]
impl FakeDatabase {
    async fn build() -> Result<Self, Error> {
        Ok(FakeDatabase::default())
    }
}

/// A request's transaction: writes are buffered until the request's
/// outcome is known.
pub struct Transaction {
    id: u64,
    db: Dep<FakeDatabase>,
    // Behind a lock because handlers write through the shared handle
    // (`Dep<Transaction>`), not because of `settle` or `release`.
    pending: Mutex<Vec<String>>,
}

impl Transaction {
    /// Buffers the creation of an account; nothing is visible to other
    /// requests until the commit.
    pub fn create_account(&self, name: &str) {
        self.pending.lock().unwrap().push(name.to_owned());
    }
}

#[provide(Request)]
impl Transaction {
    async fn build(db: Dep<FakeDatabase>) -> Result<Self, Error> {
        let id = db.transactions.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::info!("transaction {id}: begin");
        Ok(Transaction {
            id,
            db,
            pending: Mutex::default(),
        })
    }

    /// Runs once the handler has answered and before the answer is sent: a
    /// success commits, so the client only hears `201` for a write that is
    /// stored; a commit the database refuses answers `409` instead. Any
    /// other exit (the handler's error, or the error of a service settled
    /// before this one) leaves the writes to `release`.
    async fn settle(&self, exit: Exit) -> Result<(), Error> {
        if exit.is_success() {
            let writes = std::mem::take(&mut *self.pending.lock().unwrap());
            self.db.commit(&writes)?;
            tracing::info!(
                "transaction {}: committed {} write(s)",
                self.id,
                writes.len()
            );
        }
        Ok(())
    }

    /// Runs when the request has ended, however it ended (after a panic or
    /// a dropped connection `settle` never ran), with the transaction by
    /// value: what is still pending is dropped, that is, rolled back.
    async fn release(self, exit: Exit) -> Result<(), Error> {
        let dropped = self.pending.into_inner().unwrap().len();
        tracing::info!(
            "transaction {}: end ({}), rolled back {dropped} write(s)",
            self.id,
            exit.label()
        );
        Ok(())
    }
}

/// Creates an account: `201 Created` once it is committed, `409 Conflict`
/// if the commit finds the name taken.
async fn create(Dep(tx): Dep<Transaction>, Path(name): Path<String>) -> StatusCode {
    tx.create_account(&name);
    StatusCode::CREATED
}

/// Writes, then fails: the write is rolled back.
async fn fail(Dep(tx): Dep<Transaction>, Path(name): Path<String>) -> (StatusCode, &'static str) {
    tx.create_account(&name);
    (StatusCode::BAD_REQUEST, "this request fails after writing")
}

/// Writes, then panics: `settle` does not run, `release` rolls back.
async fn panics(Dep(tx): Dep<Transaction>, Path(name): Path<String>) -> StatusCode {
    tx.create_account(&name);
    panic!("the handler panicked after writing {name:?}");
}

/// Reads committed accounts straight from the app service: no transaction.
async fn list(Dep(db): Dep<FakeDatabase>) -> String {
    db.accounts().join("\n")
}

/// The router and its registry. Serve the router; call
/// [`Registry::shutdown`] once the server has stopped.
pub async fn app() -> Result<(Router, Registry), Error> {
    let registry = Registry::builder()
        .register::<Transaction>()
        .build()
        .await?;
    let router = Router::new()
        .route("/accounts", get(list))
        .route("/accounts/{name}", post(create))
        .route("/fail/{name}", post(fail))
        .route("/panic/{name}", post(panics))
        .layer(ProvisionLayer::new(registry.clone()));
    Ok((router, registry))
}
