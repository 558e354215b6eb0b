//! The router of the `transaction` example: a request's writes are buffered
//! in a transaction, committed before the client hears of success, and
//! rolled back on any other outcome.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use provision::{App, Dep, Error, Exit, Provide, Registry, Request};
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

impl Provide for FakeDatabase {
    type Lifetime = App;
    type Deps = ();

    async fn build(_: ()) -> Result<Self, Error> {
        Ok(FakeDatabase::default())
    }
}

/// A request's transaction: writes are buffered until the request's
/// outcome is known.
pub struct Transaction {
    id: u64,
    db: Dep<FakeDatabase>,
    pending: Mutex<Vec<String>>,
    committed: AtomicBool,
}

impl Transaction {
    /// Buffers the creation of an account; nothing is visible to other
    /// requests until the commit.
    pub fn create_account(&self, name: &str) {
        self.pending.lock().unwrap().push(name.to_owned());
    }

    fn roll_back(&self, why: &str) {
        let dropped = std::mem::take(&mut *self.pending.lock().unwrap());
        if !dropped.is_empty() {
            tracing::info!(
                "transaction {}: rolled back {} write(s) ({why})",
                self.id,
                dropped.len()
            );
        }
    }
}

impl Provide for Transaction {
    type Lifetime = Request;
    type Deps = (FakeDatabase,);

    async fn build((db,): (Dep<FakeDatabase>,)) -> Result<Self, Error> {
        let id = db.transactions.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::info!("transaction {id}: begin");
        Ok(Transaction {
            id,
            db,
            pending: Mutex::new(Vec::new()),
            committed: AtomicBool::new(false),
        })
    }

    /// Runs once the handler has answered and before the answer is sent: a
    /// success status commits, so the client only hears `201` for a write
    /// that is stored; a failed commit turns the answer into a `409`.
    async fn settle(&self, exit: Exit) -> Result<(), Error> {
        if !exit.is_success() {
            self.roll_back(exit.label());
            return Ok(());
        }
        let writes = std::mem::take(&mut *self.pending.lock().unwrap());
        match self.db.commit(&writes) {
            Ok(()) => {
                self.committed.store(true, Ordering::SeqCst);
                tracing::info!(
                    "transaction {}: committed {} write(s)",
                    self.id,
                    writes.len()
                );
                Ok(())
            }
            Err(error) => {
                tracing::info!("transaction {}: commit failed: {error}", self.id);
                Err(error)
            }
        }
    }

    /// Runs when the request has ended, however it ended. After a panic or a
    /// cancelled request `settle` never ran, so whatever is still pending is
    /// rolled back here.
    async fn release(self, exit: Exit) -> Result<(), Error> {
        self.roll_back(exit.label());
        tracing::info!(
            "transaction {}: end ({}, {})",
            self.id,
            exit.label(),
            if self.committed.load(Ordering::SeqCst) {
                "committed"
            } else {
                "not committed"
            }
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
