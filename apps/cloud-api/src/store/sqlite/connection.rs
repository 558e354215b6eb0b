//! One SQLite connection held for one request.

use std::sync::{Arc, Mutex, PoisonError};

use super::{SqlitePool, atomic, members, organisations, scopes, sources, tokens, users};
use crate::domain::{
    Caller, IssuedToken, Member, MyOrganisation, NewOrganisation, NewSource, NewUser, Organisation,
    Page, Role, Scope, Source, SourcePatch, User, UserList,
};
use crate::store::connection::Closing;
use crate::store::error::{StoreError, aborted_transaction};
use crate::store::transaction::{TxState, TxStatus};

/// A connection from a [`SqlitePool`], returned to it when dropped outside a
/// transaction.
///
/// The connection sits behind `Arc<Mutex<..>>` so each call can move a
/// handle into `spawn_blocking`; if the awaiting request is cancelled, the
/// blocking call still finishes with the connection intact.
pub struct SqliteConnection {
    conn: Option<Arc<Mutex<rusqlite::Connection>>>,
    pool: SqlitePool,
    tx: TxState,
}

impl SqliteConnection {
    pub(crate) fn new(conn: rusqlite::Connection, pool: SqlitePool) -> Self {
        SqliteConnection {
            conn: Some(Arc::new(Mutex::new(conn))),
            pool,
            tx: TxState::default(),
        }
    }

    /// Runs `f` with the connection on the blocking pool. Any error poisons
    /// an open transaction (see `TxState`).
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(
            self.conn
                .as_ref()
                .expect("connection is present until drop"),
        );
        let waits = self.pool.lock_waits_counter();
        let joined = tokio::task::spawn_blocking(move || {
            let _counting = super::busy::counting_into(waits);
            let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        })
        .await;
        let result = match joined {
            Ok(result) => result,
            // A bug in the closure: let it surface as the request's panic.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::Unavailable(
                "the runtime is shutting down".into(),
            )),
        };
        if result.is_err() {
            self.tx.poison();
        }
        result
    }

    pub(crate) fn in_transaction(&self) -> bool {
        self.tx.is_open()
    }

    pub(crate) async fn begin(&self) -> Result<(), StoreError> {
        if self.tx.is_open() {
            return Err(StoreError::Internal("a transaction is already open".into()));
        }
        // IMMEDIATE: take the write lock now. A deferred transaction that
        // reads and then writes can fail with SQLITE_BUSY at the write
        // without waiting, because upgrading would deadlock.
        self.run(|db| Ok(db.execute_batch("BEGIN IMMEDIATE")?))
            .await?;
        self.tx.open();
        Ok(())
    }

    pub(crate) async fn commit(&self) -> Result<(), StoreError> {
        match self.tx.take() {
            TxStatus::Idle => Ok(()),
            TxStatus::Open => {
                self.run(|db| {
                    db.execute_batch("COMMIT").map_err(|e| {
                        // A failed COMMIT can leave the transaction open.
                        if !db.is_autocommit() {
                            let _ = db.execute_batch("ROLLBACK");
                        }
                        StoreError::from(e)
                    })
                })
                .await
            }
            TxStatus::Failed => {
                self.run(rollback_if_open).await?;
                Err(aborted_transaction())
            }
        }
    }

    pub(crate) async fn rollback(&self) -> Result<(), StoreError> {
        match self.tx.take() {
            TxStatus::Idle => Ok(()),
            TxStatus::Open | TxStatus::Failed => self.run(rollback_if_open).await,
        }
    }

    /// Rolls back an open transaction; dropping then returns the connection
    /// to the pool.
    pub(crate) fn close(self) -> Closing {
        // As on PostgreSQL: only a rollback needs awaiting; otherwise
        // dropping gives the connection back now.
        if self.in_transaction() {
            Closing::later(async move {
                let _ = self.rollback().await;
            })
        } else {
            Closing::Done
        }
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        self.run(|db| Ok(db.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    pub(crate) async fn list_users(&self, page: Page) -> Result<UserList, StoreError> {
        self.run(move |db| users::list(db, page)).await
    }

    pub(crate) async fn list_users_visible_to(
        &self,
        viewer: i64,
        page: Page,
    ) -> Result<UserList, StoreError> {
        self.run(move |db| users::list_visible(db, viewer, page))
            .await
    }

    pub(crate) async fn get_user_visible_to(
        &self,
        viewer: i64,
        id: i64,
    ) -> Result<User, StoreError> {
        self.run(move |db| users::get_visible(db, viewer, id)).await
    }

    pub(crate) async fn get_user(&self, id: i64) -> Result<User, StoreError> {
        self.run(move |db| users::get(db, id)).await
    }

    pub(crate) async fn get_user_by_email(&self, email: &str) -> Result<User, StoreError> {
        let email = email.to_owned();
        self.run(move |db| users::get_by_email(db, &email)).await
    }

    pub(crate) async fn create_user_by(
        &self,
        creator: i64,
        new: &NewUser,
    ) -> Result<User, StoreError> {
        let new = new.clone();
        self.run(move |db| users::create_by(db, creator, &new))
            .await
    }

    pub(crate) async fn create_user(&self, new: &NewUser) -> Result<User, StoreError> {
        let new = new.clone();
        self.run(move |db| users::create(db, &new)).await
    }

    pub(crate) async fn find_or_create_user(
        &self,
        new: &NewUser,
    ) -> Result<(User, bool), StoreError> {
        let new = new.clone();
        self.run(move |db| users::find_or_create(db, &new)).await
    }

    pub(crate) async fn create_token(&self, user_id: i64) -> Result<IssuedToken, StoreError> {
        self.run(move |db| tokens::create(db, user_id)).await
    }

    pub(crate) async fn resolve_token(&self, token: &str) -> Result<Option<User>, StoreError> {
        let token = token.to_owned();
        self.run(move |db| tokens::resolve(db, &token)).await
    }

    pub(crate) async fn delete_tokens_older_than(&self, days: i32) -> Result<u64, StoreError> {
        self.run(move |db| tokens::delete_older_than(db, days))
            .await
    }

    pub(crate) async fn revoke_token(&self, user_id: i64, token_id: i64) -> Result<(), StoreError> {
        self.run(move |db| tokens::revoke(db, user_id, token_id))
            .await
    }

    pub(crate) async fn create_organisation(
        &self,
        creator: i64,
        new: &NewOrganisation,
    ) -> Result<Organisation, StoreError> {
        let new = new.clone();
        self.run(move |db| atomic(db, |db| organisations::create(db, creator, &new)))
            .await
    }

    pub(crate) async fn get_organisation(&self, org_id: i64) -> Result<Organisation, StoreError> {
        self.run(move |db| organisations::get(db, org_id)).await
    }

    pub(crate) async fn list_my_organisations(
        &self,
        user_id: i64,
    ) -> Result<Vec<MyOrganisation>, StoreError> {
        self.run(move |db| organisations::list_mine(db, user_id))
            .await
    }

    pub(crate) async fn caller(&self, user_id: i64) -> Result<Caller, StoreError> {
        self.run(move |db| members::caller(db, user_id)).await
    }

    pub(crate) async fn list_members(&self, org_id: i64) -> Result<Vec<Member>, StoreError> {
        self.run(move |db| members::list(db, org_id)).await
    }

    pub(crate) async fn add_member(
        &self,
        org_id: i64,
        user_id: i64,
        role: Role,
    ) -> Result<Member, StoreError> {
        self.run(move |db| atomic(db, |db| members::add(db, org_id, user_id, role)))
            .await
    }

    pub(crate) async fn remove_member(&self, org_id: i64, user_id: i64) -> Result<(), StoreError> {
        self.run(move |db| atomic(db, |db| members::remove(db, org_id, user_id)))
            .await
    }

    pub(crate) async fn change_member_role(
        &self,
        org_id: i64,
        user_id: i64,
        role: Role,
    ) -> Result<Member, StoreError> {
        self.run(move |db| atomic(db, |db| members::change_role(db, org_id, user_id, role)))
            .await
    }

    pub(crate) async fn scopes_of_user(&self, user_id: i64) -> Result<Vec<Scope>, StoreError> {
        self.run(move |db| scopes::of_user(db, user_id)).await
    }

    pub(crate) async fn get_scope(&self, scope_id: i64) -> Result<Scope, StoreError> {
        self.run(move |db| scopes::get(db, scope_id)).await
    }

    pub(crate) async fn list_sources(&self, scope_id: i64) -> Result<Vec<Source>, StoreError> {
        self.run(move |db| sources::list(db, scope_id)).await
    }

    pub(crate) async fn get_source(&self, scope_id: i64, id: i64) -> Result<Source, StoreError> {
        self.run(move |db| sources::get(db, scope_id, id)).await
    }

    pub(crate) async fn create_source(
        &self,
        scope_id: i64,
        new: &NewSource,
    ) -> Result<Source, StoreError> {
        let new = new.clone();
        self.run(move |db| sources::create(db, scope_id, &new))
            .await
    }

    pub(crate) async fn update_source(
        &self,
        scope_id: i64,
        id: i64,
        patch: &SourcePatch,
    ) -> Result<Source, StoreError> {
        let patch = patch.clone();
        self.run(move |db| sources::update(db, scope_id, id, &patch))
            .await
    }

    pub(crate) async fn delete_source(&self, scope_id: i64, id: i64) -> Result<(), StoreError> {
        self.run(move |db| sources::delete(db, scope_id, id)).await
    }
}

fn rollback_if_open(db: &mut rusqlite::Connection) -> Result<(), StoreError> {
    // SQLite ends a transaction by itself after some errors (e.g. a full
    // disk); ROLLBACK would then fail with "no transaction is active".
    if !db.is_autocommit() {
        db.execute_batch("ROLLBACK")?;
    }
    Ok(())
}

impl Drop for SqliteConnection {
    /// Back to the pool only when nothing else holds it (no blocking call
    /// still running), no panic poisoned it and no transaction is open;
    /// otherwise it is closed, which rolls back whatever was open.
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if self.tx.is_open() {
            return;
        }
        if let Ok(mutex) = Arc::try_unwrap(conn)
            && let Ok(conn) = mutex.into_inner()
        {
            self.pool.give_back(conn);
        }
    }
}
