//! One PostgreSQL connection held for one request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

#[cfg(feature = "postgres")]
use deadpool_postgres::Object;
#[cfg(feature = "postgres")]
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use super::{map_error, members, organisations, scopes, sources, tokens, users};
use crate::domain::{
    Caller, IssuedToken, Member, MyOrganisation, NewOrganisation, NewSource, NewUser, Organisation,
    Page, Role, Scope, Source, SourcePatch, User, UserList,
};
use crate::store::connection::Closing;
use crate::store::error::{StoreError, aborted_transaction};
use crate::store::transaction::{TxState, TxStatus};

/// Completes once the task driving a direct connection's socket has ended.
/// In a mutex only so that the connection stays `Sync` (it is awaited by
/// value, never shared).
type Ended = std::sync::Mutex<Pin<Box<dyn Future<Output = ()> + Send>>>;

enum Handle {
    /// Leased from the pool; goes back to it when dropped.
    #[cfg(feature = "postgres")]
    Leased(Object),
    /// Opened for this request; the connection task ends once the client is
    /// dropped (by its last holder, when it is shared).
    Direct {
        client: Arc<Client>,
        ended: Option<Ended>,
    },
}

/// A leased pool connection or a per-request client, with explicit
/// transaction state (`BEGIN`/`COMMIT` statements rather than a
/// `tokio_postgres::Transaction`, which would borrow the client and could
/// not be opened lazily and finished by someone else).
pub struct PgConnection {
    handle: Option<Handle>,
    tx: TxState,
}

impl PgConnection {
    /// Wraps a connection leased from a deadpool pool.
    #[cfg(feature = "postgres")]
    pub fn leased(object: Object) -> Self {
        PgConnection {
            handle: Some(Handle::Leased(object)),
            tx: TxState::default(),
        }
    }

    /// Wraps a client whose connection future is driven by a tokio task
    /// (pass its handle so [`Connection::close`](crate::store::Connection::close)
    /// can wait for it), or by nothing it needs to wait for (`None`). For a
    /// connection driven by another runtime, see [`direct_until`](Self::direct_until).
    #[cfg(feature = "postgres")]
    pub fn direct(client: Client, task: Option<JoinHandle<()>>) -> Self {
        let ended: Option<Ended> = task.map(|task| -> Ended {
            std::sync::Mutex::new(Box::pin(async move {
                let _ = task.await;
            }))
        });
        PgConnection {
            handle: Some(Handle::Direct {
                client: Arc::new(client),
                ended,
            }),
            tx: TxState::default(),
        }
    }

    /// Wraps a client whose connection is driven elsewhere (on Cloudflare
    /// Workers, a task on the request's event loop); `ended` completes once
    /// that connection has closed, after the client is dropped, and
    /// [`Connection::close`](crate::store::Connection::close) waits for it.
    pub fn direct_until(client: Client, ended: impl Future<Output = ()> + Send + 'static) -> Self {
        PgConnection {
            handle: Some(Handle::Direct {
                client: Arc::new(client),
                ended: Some(std::sync::Mutex::new(Box::pin(ended))),
            }),
            tx: TxState::default(),
        }
    }

    /// Wraps a client that others hold too; closing only lets go of it.
    /// (The negative control of the Workers end-to-end test uses it to
    /// reproduce the bug of one connection for every request.)
    pub fn shared(client: Arc<Client>) -> Self {
        PgConnection {
            handle: Some(Handle::Direct {
                client,
                ended: None,
            }),
            tx: TxState::default(),
        }
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        match self.handle.as_ref().expect("handle is present until close") {
            #[cfg(feature = "postgres")]
            Handle::Leased(object) => object,
            Handle::Direct { client, .. } => client,
        }
    }

    /// The client, mutably; `None` for a shared one.
    #[cfg(feature = "postgres")]
    pub(crate) fn client_mut(&mut self) -> Option<&mut Client> {
        match self.handle.as_mut().expect("handle is present until close") {
            Handle::Leased(object) => Some(object),
            Handle::Direct { client, .. } => Arc::get_mut(client),
        }
    }

    pub(crate) fn in_transaction(&self) -> bool {
        self.tx.is_open()
    }

    pub(crate) async fn begin(&self) -> Result<(), StoreError> {
        if self.tx.is_open() {
            return Err(StoreError::Internal("a transaction is already open".into()));
        }
        self.client()
            .batch_execute("BEGIN")
            .await
            .map_err(map_error)?;
        self.tx.open();
        Ok(())
    }

    pub(crate) async fn commit(&self) -> Result<(), StoreError> {
        match self.tx.take() {
            TxStatus::Idle => Ok(()),
            TxStatus::Open => self
                .client()
                .batch_execute("COMMIT")
                .await
                .map_err(map_error),
            TxStatus::Failed => {
                // Postgres would answer COMMIT of an aborted transaction
                // with a silent ROLLBACK; say so instead.
                let _ = self.client().batch_execute("ROLLBACK").await;
                Err(aborted_transaction())
            }
        }
    }

    pub(crate) async fn rollback(&self) -> Result<(), StoreError> {
        match self.tx.take() {
            TxStatus::Idle => Ok(()),
            TxStatus::Open | TxStatus::Failed => self
                .client()
                .batch_execute("ROLLBACK")
                .await
                .map_err(map_error),
        }
    }

    /// Rolls back an open transaction, returns a leased connection to its
    /// pool, or closes a per-request connection and waits for its task.
    ///
    /// With no transaction open (most requests) the connection goes back or
    /// its client is dropped right away, and what is left to await is at
    /// most the end of the socket's task: a small future, where an `async`
    /// body would hold the whole connection and the rollback query in its
    /// state (over a kilobyte, allocated for every request's release).
    pub(crate) fn close(self) -> Closing {
        if self.tx.is_open() {
            return Closing::later(async move {
                let rolled_back = self.rollback().await.is_ok();
                self.finish(rolled_back).await;
            });
        }
        self.finish(true)
    }

    /// Gives the connection back (`rolled_back`: nothing is left open on
    /// it) or detaches and closes it.
    fn finish(mut self, rolled_back: bool) -> Closing {
        match self.handle.take() {
            #[cfg(feature = "postgres")]
            Some(Handle::Leased(object)) if !rolled_back => drop(Object::take(object)),
            #[cfg(feature = "postgres")]
            Some(Handle::Leased(object)) => drop(object),
            Some(Handle::Direct { client, ended }) => {
                // Closed whether or not the rollback worked: the server
                // rolls back what is left when the connection ends.
                let _ = rolled_back;
                drop(client);
                if let Some(ended) = ended {
                    return Closing::Waiting(
                        ended
                            .into_inner()
                            .unwrap_or_else(std::sync::PoisonError::into_inner),
                    );
                }
            }
            None => {}
        }
        Closing::Done
    }

    fn track<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if result.is_err() {
            self.tx.poison();
        }
        result
    }

    /// For multi-statement operations: joins the caller's transaction or,
    /// outside one, opens its own. Returns whether it opened one.
    async fn begin_own(&self) -> Result<bool, StoreError> {
        if self.tx.is_open() {
            return Ok(false);
        }
        self.begin().await?;
        Ok(true)
    }

    async fn end_own<T>(&self, own: bool, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if !own {
            return self.track(result);
        }
        match result {
            Ok(value) => self.commit().await.map(|()| value),
            Err(e) => {
                let _ = self.rollback().await;
                Err(e)
            }
        }
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        let result = self.client().simple_query("SELECT 1").await;
        self.track(result.map(drop).map_err(map_error))
    }

    pub(crate) async fn list_users(&self, page: Page) -> Result<UserList, StoreError> {
        self.track(users::list(self.client(), page).await)
    }

    pub(crate) async fn list_users_visible_to(
        &self,
        viewer: i64,
        page: Page,
    ) -> Result<UserList, StoreError> {
        self.track(users::list_visible(self.client(), viewer, page).await)
    }

    pub(crate) async fn get_user_visible_to(
        &self,
        viewer: i64,
        id: i64,
    ) -> Result<User, StoreError> {
        self.track(users::get_visible(self.client(), viewer, id).await)
    }

    pub(crate) async fn get_user(&self, id: i64) -> Result<User, StoreError> {
        self.track(users::get(self.client(), id).await)
    }

    pub(crate) async fn get_user_by_email(&self, email: &str) -> Result<User, StoreError> {
        self.track(users::get_by_email(self.client(), email).await)
    }

    pub(crate) async fn create_user_by(
        &self,
        creator: i64,
        new: &NewUser,
    ) -> Result<User, StoreError> {
        self.track(users::create_by(self.client(), creator, new).await)
    }

    pub(crate) async fn create_user(&self, new: &NewUser) -> Result<User, StoreError> {
        self.track(users::create(self.client(), new).await)
    }

    pub(crate) async fn find_or_create_user(
        &self,
        new: &NewUser,
    ) -> Result<(User, bool), StoreError> {
        self.track(users::find_or_create(self.client(), new).await)
    }

    pub(crate) async fn create_token(&self, user_id: i64) -> Result<IssuedToken, StoreError> {
        self.track(tokens::create(self.client(), user_id).await)
    }

    pub(crate) async fn resolve_token(&self, token: &str) -> Result<Option<User>, StoreError> {
        self.track(tokens::resolve(self.client(), token).await)
    }

    pub(crate) async fn revoke_token(&self, user_id: i64, token_id: i64) -> Result<(), StoreError> {
        self.track(tokens::revoke(self.client(), user_id, token_id).await)
    }

    pub(crate) async fn create_organisation(
        &self,
        creator: i64,
        new: &NewOrganisation,
    ) -> Result<Organisation, StoreError> {
        self.track(organisations::create(self.client(), creator, new).await)
    }

    pub(crate) async fn get_organisation(&self, org_id: i64) -> Result<Organisation, StoreError> {
        self.track(organisations::get(self.client(), org_id).await)
    }

    pub(crate) async fn list_my_organisations(
        &self,
        user_id: i64,
    ) -> Result<Vec<MyOrganisation>, StoreError> {
        self.track(organisations::list_mine(self.client(), user_id).await)
    }

    pub(crate) async fn caller(&self, user_id: i64) -> Result<Caller, StoreError> {
        self.track(members::caller(self.client(), user_id).await)
    }

    pub(crate) async fn list_members(&self, org_id: i64) -> Result<Vec<Member>, StoreError> {
        self.track(members::list(self.client(), org_id).await)
    }

    pub(crate) async fn add_member(
        &self,
        org_id: i64,
        user_id: i64,
        role: Role,
    ) -> Result<Member, StoreError> {
        self.track(members::add(self.client(), org_id, user_id, role).await)
    }

    pub(crate) async fn remove_member(&self, org_id: i64, user_id: i64) -> Result<(), StoreError> {
        let own = self.begin_own().await?;
        let result = members::remove(self.client(), org_id, user_id).await;
        self.end_own(own, result).await
    }

    pub(crate) async fn change_member_role(
        &self,
        org_id: i64,
        user_id: i64,
        role: Role,
    ) -> Result<Member, StoreError> {
        let own = self.begin_own().await?;
        let result = members::change_role(self.client(), org_id, user_id, role).await;
        self.end_own(own, result).await
    }

    pub(crate) async fn scopes_of_user(&self, user_id: i64) -> Result<Vec<Scope>, StoreError> {
        self.track(scopes::of_user(self.client(), user_id).await)
    }

    pub(crate) async fn get_scope(&self, scope_id: i64) -> Result<Scope, StoreError> {
        self.track(scopes::get(self.client(), scope_id).await)
    }

    pub(crate) async fn list_sources(&self, scope_id: i64) -> Result<Vec<Source>, StoreError> {
        self.track(sources::list(self.client(), scope_id).await)
    }

    pub(crate) async fn get_source(&self, scope_id: i64, id: i64) -> Result<Source, StoreError> {
        self.track(sources::get(self.client(), scope_id, id).await)
    }

    pub(crate) async fn create_source(
        &self,
        scope_id: i64,
        new: &NewSource,
    ) -> Result<Source, StoreError> {
        self.track(sources::create(self.client(), scope_id, new).await)
    }

    pub(crate) async fn update_source(
        &self,
        scope_id: i64,
        id: i64,
        patch: &SourcePatch,
    ) -> Result<Source, StoreError> {
        self.track(sources::update(self.client(), scope_id, id, patch).await)
    }

    pub(crate) async fn delete_source(&self, scope_id: i64, id: i64) -> Result<(), StoreError> {
        self.track(sources::delete(self.client(), scope_id, id).await)
    }
}

#[cfg(feature = "postgres")]
impl Drop for PgConnection {
    /// Dropped without `close` while a transaction is open (a panic, a
    /// cancelled request): the transaction must not ride back into the pool
    /// to be committed by the next borrower. Rolling back needs an await,
    /// which `Drop` cannot do, so the connection is detached from the pool
    /// and closed instead; the server then rolls back.
    fn drop(&mut self) {
        if self.tx.is_open()
            && let Some(Handle::Leased(object)) = self.handle.take()
        {
            drop(Object::take(object));
        }
    }
}
