//! One PostgreSQL connection held for one request: a
//! [`provision_postgres::PgConnection`] (its handle, transaction state,
//! statement deadline and release) with this service's queries on top.

use std::future::Future;
use std::sync::Arc;

use futures_util::FutureExt;
use provision_postgres::{Connected, PgOptions};
use tokio_postgres::Client;

use super::{map_error_ref, members, organisations, scopes, sources, tokens, users};
use crate::domain::{
    Caller, IssuedToken, Member, MyOrganisation, NewOrganisation, NewSource, NewUser, Organisation,
    Page, Role, Scope, Source, SourcePatch, User, UserList,
};
use crate::store::connection::Closing;
use crate::store::error::{StoreError, aborted_transaction};

/// A leased pool connection or a per-request client. Transactions are
/// explicit `BEGIN`/`COMMIT` statements (with `SET LOCAL statement_timeout`,
/// safe behind a transaction-mode pooler), opened lazily and finished by
/// whoever ends the request; every query runs under the statement deadline.
pub struct PgConnection {
    inner: provision_postgres::PgConnection,
}

/// A [`provision_postgres::PgError`] as this store's error: the driver's
/// error, when there is one, is judged by the store's own rules (which
/// name the table of a unique violation); otherwise by its kind.
pub(crate) fn from_pg(error: provision_postgres::PgError) -> StoreError {
    use provision_postgres::ErrorKind;
    let mapped = if let Some(driver) = std::error::Error::source(&error)
        .and_then(|source| source.downcast_ref::<tokio_postgres::Error>())
    {
        match map_error_ref(driver) {
            StoreError::Internal(_) if error.kind() == ErrorKind::Unavailable => {
                StoreError::Unavailable(error.message().into())
            }
            mapped => mapped,
        }
    } else {
        match error.kind() {
            ErrorKind::Unavailable | ErrorKind::Timeout => {
                StoreError::Unavailable(error.message().into())
            }
            ErrorKind::Conflict => StoreError::Conflict(error.message().to_owned()),
            ErrorKind::Invalid => StoreError::Invalid(error.message().to_owned()),
            ErrorKind::Misconfigured => StoreError::Misconfigured(error.message().to_owned()),
            _ if error.message().contains("rolled back") => aborted_transaction(),
            _ => StoreError::Internal(error.message().into()),
        }
    };
    // The driver's reason (a refused password, a missing database) goes to
    // the logs with it.
    mapped.caused_by(error)
}

impl PgConnection {
    /// Wraps a connection from provision-postgres.
    pub fn new(inner: provision_postgres::PgConnection) -> Self {
        PgConnection { inner }
    }

    /// Wraps a client whose connection future is driven by a tokio task
    /// (pass its handle so [`Connection::close`](crate::store::Connection::close)
    /// can wait for it), or by nothing it needs to wait for (`None`).
    #[cfg(feature = "postgres")]
    pub fn direct(client: Client, task: Option<tokio::task::JoinHandle<()>>) -> Self {
        let connected = match task {
            Some(task) => Connected::new(client, async move {
                let _ = task.await;
            }),
            None => Connected::detached(client),
        };
        Self::host_made(connected)
    }

    /// Wraps a client whose connection is driven elsewhere (on Cloudflare
    /// Workers, a task on the request's event loop); `ended` completes once
    /// that connection has closed, after the client is dropped, and
    /// [`Connection::close`](crate::store::Connection::close) waits for it.
    pub fn direct_until(client: Client, ended: impl Future<Output = ()> + Send + 'static) -> Self {
        Self::host_made(Connected::new(client, ended))
    }

    /// Wraps a client that others hold too; closing only lets go of it.
    /// (The negative control of the Workers end-to-end test uses it to
    /// reproduce the bug of one connection for every request.)
    pub fn shared(client: Arc<Client>) -> Self {
        Self::host_made(Connected::shared(client))
    }

    /// A connection made outside [`Database`](crate::store::Database): the
    /// library's default statement timeout (and, natively, its timer).
    fn host_made(connected: Connected) -> Self {
        PgConnection::new(provision_postgres::PgConnection::from_connected(
            connected,
            &PgOptions::default(),
        ))
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        self.inner.client()
    }

    pub(crate) fn in_transaction(&self) -> bool {
        self.inner.in_transaction()
    }

    pub(crate) async fn begin(&self) -> Result<(), StoreError> {
        self.inner.begin().await.map_err(from_pg)
    }

    pub(crate) async fn commit(&self) -> Result<(), StoreError> {
        self.inner.commit().await.map_err(from_pg)
    }

    pub(crate) async fn rollback(&self) -> Result<(), StoreError> {
        self.inner.rollback().await.map_err(from_pg)
    }

    /// Rolls back an open transaction, returns a leased connection to its
    /// pool, or closes a per-request (or broken) one and waits for it.
    pub(crate) fn close(self) -> Closing {
        Closing::Postgres(self.inner.close())
    }

    /// Runs one store operation under the statement deadline; a failure
    /// (or the deadline) marks an open transaction failed.
    ///
    /// A combinator rather than an `async fn`: an `async fn` keeps its
    /// argument apart from the future it awaits, so `operation` (a
    /// kilobyte or more with its statement) would be held twice and
    /// copied again on every call.
    fn run<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> impl Future<Output = Result<T, StoreError>> {
        self.inner.deadline(operation).map(move |outcome| {
            let result = outcome.unwrap_or_else(|timed_out| Err(from_pg(timed_out)));
            self.track(result)
        })
    }

    fn track<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if result.is_err() {
            self.inner.fail_transaction();
        }
        result
    }

    /// For multi-statement operations: joins the caller's transaction or,
    /// outside one, opens its own. Returns whether it opened one.
    async fn begin_own(&self) -> Result<bool, StoreError> {
        if self.in_transaction() {
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
        self.run(async {
            self.client()
                .simple_query("SELECT 1")
                .await
                .map(drop)
                .map_err(super::map_error)
        })
        .await
    }

    pub(crate) async fn sleep(&self, seconds: f64) -> Result<(), StoreError> {
        self.run(async {
            self.client()
                .execute("SELECT pg_sleep($1)", &[&seconds])
                .await
                .map(drop)
                .map_err(super::map_error)
        })
        .await
    }

    pub(crate) async fn list_users(&self, page: Page) -> Result<UserList, StoreError> {
        self.run(users::list(self.client(), page)).await
    }

    pub(crate) async fn list_users_visible_to(
        &self,
        viewer: i64,
        page: Page,
    ) -> Result<UserList, StoreError> {
        self.run(users::list_visible(self.client(), viewer, page))
            .await
    }

    pub(crate) async fn get_user_visible_to(
        &self,
        viewer: i64,
        id: i64,
    ) -> Result<User, StoreError> {
        self.run(users::get_visible(self.client(), viewer, id))
            .await
    }

    pub(crate) async fn get_user(&self, id: i64) -> Result<User, StoreError> {
        self.run(users::get(self.client(), id)).await
    }

    pub(crate) async fn get_user_by_email(&self, email: &str) -> Result<User, StoreError> {
        self.run(users::get_by_email(self.client(), email)).await
    }

    pub(crate) async fn create_user_by(
        &self,
        creator: i64,
        new: &NewUser,
    ) -> Result<User, StoreError> {
        self.run(users::create_by(self.client(), creator, new))
            .await
    }

    pub(crate) async fn create_user(&self, new: &NewUser) -> Result<User, StoreError> {
        self.run(users::create(self.client(), new)).await
    }

    pub(crate) async fn find_or_create_user(
        &self,
        new: &NewUser,
    ) -> Result<(User, bool), StoreError> {
        self.run(users::find_or_create(self.client(), new)).await
    }

    pub(crate) async fn create_token(&self, user_id: i64) -> Result<IssuedToken, StoreError> {
        self.run(tokens::create(self.client(), user_id)).await
    }

    pub(crate) async fn resolve_token(&self, token: &str) -> Result<Option<User>, StoreError> {
        self.run(tokens::resolve(self.client(), token)).await
    }

    pub(crate) async fn delete_tokens_older_than(&self, days: i32) -> Result<u64, StoreError> {
        self.run(tokens::delete_older_than(self.client(), days))
            .await
    }

    pub(crate) async fn revoke_token(&self, user_id: i64, token_id: i64) -> Result<(), StoreError> {
        self.run(tokens::revoke(self.client(), user_id, token_id))
            .await
    }

    pub(crate) async fn create_organisation(
        &self,
        creator: i64,
        new: &NewOrganisation,
    ) -> Result<Organisation, StoreError> {
        self.run(organisations::create(self.client(), creator, new))
            .await
    }

    pub(crate) async fn get_organisation(&self, org_id: i64) -> Result<Organisation, StoreError> {
        self.run(organisations::get(self.client(), org_id)).await
    }

    pub(crate) async fn list_my_organisations(
        &self,
        user_id: i64,
    ) -> Result<Vec<MyOrganisation>, StoreError> {
        self.run(organisations::list_mine(self.client(), user_id))
            .await
    }

    pub(crate) async fn caller(&self, user_id: i64) -> Result<Caller, StoreError> {
        self.run(members::caller(self.client(), user_id)).await
    }

    pub(crate) async fn list_members(&self, org_id: i64) -> Result<Vec<Member>, StoreError> {
        self.run(members::list(self.client(), org_id)).await
    }

    pub(crate) async fn add_member(
        &self,
        org_id: i64,
        user_id: i64,
        role: Role,
    ) -> Result<Member, StoreError> {
        self.run(members::add(self.client(), org_id, user_id, role))
            .await
    }

    pub(crate) async fn remove_member(&self, org_id: i64, user_id: i64) -> Result<(), StoreError> {
        let own = self.begin_own().await?;
        let result = self
            .run(members::remove(self.client(), org_id, user_id))
            .await;
        self.end_own(own, result).await
    }

    pub(crate) async fn change_member_role(
        &self,
        org_id: i64,
        user_id: i64,
        role: Role,
    ) -> Result<Member, StoreError> {
        let own = self.begin_own().await?;
        let result = self
            .run(members::change_role(self.client(), org_id, user_id, role))
            .await;
        self.end_own(own, result).await
    }

    pub(crate) async fn scopes_of_user(&self, user_id: i64) -> Result<Vec<Scope>, StoreError> {
        self.run(scopes::of_user(self.client(), user_id)).await
    }

    pub(crate) async fn get_scope(&self, scope_id: i64) -> Result<Scope, StoreError> {
        self.run(scopes::get(self.client(), scope_id)).await
    }

    pub(crate) async fn list_sources(&self, scope_id: i64) -> Result<Vec<Source>, StoreError> {
        self.run(sources::list(self.client(), scope_id)).await
    }

    pub(crate) async fn get_source(&self, scope_id: i64, id: i64) -> Result<Source, StoreError> {
        self.run(sources::get(self.client(), scope_id, id)).await
    }

    pub(crate) async fn create_source(
        &self,
        scope_id: i64,
        new: &NewSource,
    ) -> Result<Source, StoreError> {
        self.run(sources::create(self.client(), scope_id, new))
            .await
    }

    pub(crate) async fn update_source(
        &self,
        scope_id: i64,
        id: i64,
        patch: &SourcePatch,
    ) -> Result<Source, StoreError> {
        self.run(sources::update(self.client(), scope_id, id, patch))
            .await
    }

    pub(crate) async fn delete_source(&self, scope_id: i64, id: i64) -> Result<(), StoreError> {
        self.run(sources::delete(self.client(), scope_id, id)).await
    }
}
