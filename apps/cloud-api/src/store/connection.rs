//! [`Connection`]: one database connection for one request, whichever
//! database it is.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::domain::{
    Caller, IssuedToken, Member, MyOrganisation, NewOrganisation, NewSource, NewUser, Organisation,
    Page, Role, Scope, Source, SourcePatch, User, UserList,
};

use super::StoreError;
#[cfg(any(feature = "postgres", feature = "postgres-wasm"))]
use super::postgres::PgConnection;
#[cfg(feature = "sqlite")]
use super::sqlite::SqliteConnection;

/// One connection, held for (at most) one request.
///
/// Every method takes `&self`, so a request scope can hand the same
/// connection to several extractors by reference.
///
/// # Transactions
///
/// Outside a transaction each operation commits on its own; operations made
/// of several statements (creating an organisation, adding, removing or
/// re-ranking a member) are still atomic. [`begin`](Self::begin) opens a
/// transaction that every following operation joins until
/// [`commit`](Self::commit) or [`rollback`](Self::rollback), so a request
/// can open one lazily on its first write and let its finaliser finish it.
///
/// If any operation inside a transaction returns an error, the transaction
/// can no longer commit: `commit` rolls it back and returns
/// `StoreError::Internal`. (Postgres aborts the transaction on a failed
/// statement anyway; SQLite would not, and the rule is the same for both.)
///
/// # Release
///
/// Call [`close`](Self::close) when the request ends: it rolls back an open
/// transaction, returns a pooled connection to its pool, and closes a
/// per-request Postgres connection and waits until its task has finished.
/// Dropping without `close` is safe but cannot wait: a pooled Postgres
/// connection with an open transaction is then discarded instead of
/// returned, and SQLite closes the connection (rolling back).
// One per request, created once and moved rarely: boxing the Postgres side
// would cost an allocation per request to save copying ~200 bytes.
#[allow(clippy::large_enum_variant)]
pub enum Connection {
    /// A PostgreSQL connection (pooled or per request).
    #[cfg(any(feature = "postgres", feature = "postgres-wasm"))]
    Postgres(PgConnection),
    /// A SQLite connection.
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteConnection),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self {
            #[cfg(any(feature = "postgres", feature = "postgres-wasm"))]
            Connection::Postgres(_) => "Postgres",
            #[cfg(feature = "sqlite")]
            Connection::Sqlite(_) => "Sqlite",
        };
        f.debug_struct("Connection")
            .field("backend", &backend)
            .field("in_transaction", &self.in_transaction())
            .finish()
    }
}

/// Forwards a call to whichever backend this connection is.
macro_rules! dispatch {
    ($self:ident, $conn:ident => $call:expr) => {
        match $self {
            #[cfg(any(feature = "postgres", feature = "postgres-wasm"))]
            Connection::Postgres($conn) => $call,
            #[cfg(feature = "sqlite")]
            Connection::Sqlite($conn) => $call,
        }
    };
}

/// What is left of closing a [`Connection`] once its synchronous part is
/// done: nothing, or a future (boxed: it is rare, or already a box).
#[must_use = "a per-request connection is only closed once this is awaited"]
pub enum Closing {
    /// Closed, or given back to its pool.
    Done,
    /// A rollback, or a connection task still ending.
    Waiting(Pin<Box<dyn Future<Output = ()> + Send>>),
    /// What provision-postgres has left to do (often nothing).
    #[cfg(any(feature = "postgres", feature = "postgres-wasm"))]
    Postgres(provision_postgres::Closing),
}

impl Closing {
    #[cfg(feature = "sqlite")]
    pub(crate) fn later(future: impl Future<Output = ()> + Send + 'static) -> Closing {
        Closing::Waiting(Box::pin(future))
    }
}

impl Future for Closing {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut *self {
            Closing::Done => Poll::Ready(()),
            Closing::Waiting(future) => future.as_mut().poll(cx),
            #[cfg(any(feature = "postgres", feature = "postgres-wasm"))]
            Closing::Postgres(closing) => Pin::new(closing).poll(cx),
        }
    }
}

impl Connection {
    /// Wraps a tokio-postgres client connected by someone else. `task` is
    /// the tokio task driving its connection, if any, so that
    /// [`close`](Self::close) can wait for it.
    #[cfg(feature = "postgres")]
    pub fn from_postgres_client(
        client: tokio_postgres::Client,
        task: Option<tokio::task::JoinHandle<()>>,
    ) -> Connection {
        Connection::Postgres(PgConnection::direct(client, task))
    }

    /// Wraps a tokio-postgres client whose connection is driven by someone
    /// else, e.g. over a Cloudflare Workers socket: `ended` completes once
    /// that connection has closed (after the client is dropped), and
    /// [`close`](Self::close) waits for it.
    #[cfg(any(feature = "postgres", feature = "postgres-wasm"))]
    pub fn from_postgres_client_until(
        client: tokio_postgres::Client,
        ended: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Connection {
        Connection::Postgres(PgConnection::direct_until(client, ended))
    }

    /// Wraps a tokio-postgres client that others hold too: closing the
    /// connection rolls back what it left open and lets go of the client.
    /// One client for every request is the bug the Workers end-to-end
    /// test's negative control reproduces; nothing else should need this.
    #[cfg(any(feature = "postgres", feature = "postgres-wasm"))]
    pub fn from_shared_postgres_client(
        client: std::sync::Arc<tokio_postgres::Client>,
    ) -> Connection {
        Connection::Postgres(PgConnection::shared(client))
    }

    /// The tokio-postgres client, if this is a Postgres connection: an
    /// escape hatch for diagnostics and tests.
    #[cfg(any(feature = "postgres", feature = "postgres-wasm"))]
    pub fn postgres_client(&self) -> Option<&tokio_postgres::Client> {
        match self {
            Connection::Postgres(conn) => Some(conn.client()),
            #[cfg(feature = "sqlite")]
            Connection::Sqlite(_) => None,
        }
    }

    /// Releases the connection (see the type's docs): what can be done at
    /// once is, and the returned future finishes the rest (a rollback, or
    /// waiting for a per-request connection's socket to close).
    pub fn close(self) -> Closing {
        dispatch!(self, c => c.close())
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, c => c.ping().await)
    }

    /// Keeps the database busy for `seconds` (`SELECT pg_sleep`), under the
    /// statement timeout like every operation: for tests of that timeout.
    /// `Invalid` on SQLite, which has no such function.
    pub async fn sleep(&self, seconds: f64) -> Result<(), StoreError> {
        match self {
            #[cfg(any(feature = "postgres", feature = "postgres-wasm"))]
            Connection::Postgres(c) => c.sleep(seconds).await,
            #[cfg(feature = "sqlite")]
            Connection::Sqlite(_) => Err(StoreError::Invalid(
                "sleeping in the database needs PostgreSQL".into(),
            )),
        }
    }

    /// Whether [`begin`](Self::begin) was called and the transaction is
    /// not finished yet.
    pub fn in_transaction(&self) -> bool {
        dispatch!(self, c => c.in_transaction())
    }

    /// Opens a transaction. An error if one is already open. On SQLite this
    /// takes the database's write lock (`BEGIN IMMEDIATE`) until the end.
    pub async fn begin(&self) -> Result<(), StoreError> {
        dispatch!(self, c => c.begin().await)
    }

    /// Commits the open transaction; a no-op without one. Fails (after
    /// rolling back) if an operation inside it failed.
    pub async fn commit(&self) -> Result<(), StoreError> {
        dispatch!(self, c => c.commit().await)
    }

    /// Rolls back the open transaction; a no-op without one.
    pub async fn rollback(&self) -> Result<(), StoreError> {
        dispatch!(self, c => c.rollback().await)
    }

    /// A page of the users `viewer` may see, ordered by id, and how many
    /// they may see in all: themself, the accounts they created through
    /// [`create_user_by`](Self::create_user_by) (they wrote those names and
    /// emails), and everyone who shares an organisation with them; never
    /// another tenant's users. What `GET /api/users` shows.
    pub async fn list_users_visible_to(
        &self,
        viewer: i64,
        page: Page,
    ) -> Result<UserList, StoreError> {
        dispatch!(self, c => c.list_users_visible_to(viewer, page).await)
    }

    /// The user `id` if `viewer` may see them (see
    /// [`list_users_visible_to`](Self::list_users_visible_to)); `NotFound`
    /// otherwise, exactly as for an id no user has. What
    /// `GET /api/users/{id}` shows.
    pub async fn get_user_visible_to(&self, viewer: i64, id: i64) -> Result<User, StoreError> {
        dispatch!(self, c => c.get_user_visible_to(viewer, id).await)
    }

    /// A page of every user ordered by id, and how many there are in all:
    /// the operator's view, never an API caller's (they get
    /// [`list_users_visible_to`](Self::list_users_visible_to)).
    pub async fn list_users(&self, page: Page) -> Result<UserList, StoreError> {
        dispatch!(self, c => c.list_users(page).await)
    }

    /// Any user by id; `NotFound` if none. For the service's own use (an
    /// API caller gets [`get_user_visible_to`](Self::get_user_visible_to)).
    pub async fn get_user(&self, id: i64) -> Result<User, StoreError> {
        dispatch!(self, c => c.get_user(id).await)
    }

    /// A user by exact email; `NotFound` if none.
    pub async fn get_user_by_email(&self, email: &str) -> Result<User, StoreError> {
        dispatch!(self, c => c.get_user_by_email(email).await)
    }

    /// Validates and inserts a user; `Conflict` if the email is taken,
    /// `Invalid` naming the field if the input is bad.
    pub async fn create_user(&self, new: &NewUser) -> Result<User, StoreError> {
        dispatch!(self, c => c.create_user(new).await)
    }

    /// Validates and inserts a user on behalf of the user `creator`, who
    /// may see it from then on (see
    /// [`list_users_visible_to`](Self::list_users_visible_to)); `Conflict`
    /// if the email is taken. What `POST /api/users` does.
    pub async fn create_user_by(&self, creator: i64, new: &NewUser) -> Result<User, StoreError> {
        dispatch!(self, c => c.create_user_by(creator, new).await)
    }

    /// The user with `new.email`, created from `new` if there is none;
    /// `true` when it was created. Never a `Conflict`, even racing another
    /// creator (and so safe inside a transaction).
    pub async fn find_or_create_user(&self, new: &NewUser) -> Result<(User, bool), StoreError> {
        dispatch!(self, c => c.find_or_create_user(new).await)
    }

    /// Issues a token for the user; the plaintext is in the result and
    /// nowhere else. `NotFound` if the user does not exist.
    pub async fn create_token(&self, user_id: i64) -> Result<IssuedToken, StoreError> {
        dispatch!(self, c => c.create_token(user_id).await)
    }

    /// The user a token belongs to; `None` for a malformed, unknown or
    /// wrong token (the three are indistinguishable on purpose).
    pub async fn resolve_token(&self, token: &str) -> Result<Option<User>, StoreError> {
        dispatch!(self, c => c.resolve_token(token).await)
    }

    /// Deletes every token created more than `days` days ago (the
    /// token-expiry job); returns how many.
    pub async fn delete_tokens_older_than(&self, days: i32) -> Result<u64, StoreError> {
        dispatch!(self, c => c.delete_tokens_older_than(days).await)
    }

    /// Deletes one of the user's tokens; `NotFound` if the user has no such
    /// token.
    pub async fn revoke_token(&self, user_id: i64, token_id: i64) -> Result<(), StoreError> {
        dispatch!(self, c => c.revoke_token(user_id, token_id).await)
    }

    /// Creates an organisation with `creator` as its admin, its org scope
    /// and the creator's user scope, atomically. `NotFound` if the creator
    /// does not exist.
    pub async fn create_organisation(
        &self,
        creator: i64,
        new: &NewOrganisation,
    ) -> Result<Organisation, StoreError> {
        dispatch!(self, c => c.create_organisation(creator, new).await)
    }

    /// An organisation by id, without any access check.
    pub async fn get_organisation(&self, org_id: i64) -> Result<Organisation, StoreError> {
        dispatch!(self, c => c.get_organisation(org_id).await)
    }

    /// The organisations the user belongs to, with their role, by id.
    pub async fn list_my_organisations(
        &self,
        user_id: i64,
    ) -> Result<Vec<MyOrganisation>, StoreError> {
        dispatch!(self, c => c.list_my_organisations(user_id).await)
    }

    /// The user's memberships, for the checks in [`crate::domain::access`].
    /// A user that does not exist simply has none.
    pub async fn caller(&self, user_id: i64) -> Result<Caller, StoreError> {
        dispatch!(self, c => c.caller(user_id).await)
    }

    /// The organisation's members by user id (empty for an unknown
    /// organisation).
    pub async fn list_members(&self, org_id: i64) -> Result<Vec<Member>, StoreError> {
        dispatch!(self, c => c.list_members(org_id).await)
    }

    /// Adds a member and creates their user scope, atomically. `NotFound`
    /// if the organisation or the user does not exist, `Conflict` if
    /// already a member.
    pub async fn add_member(
        &self,
        org_id: i64,
        user_id: i64,
        role: Role,
    ) -> Result<Member, StoreError> {
        dispatch!(self, c => c.add_member(org_id, user_id, role).await)
    }

    /// Removes a member, and with them their user scope and its sources.
    /// `NotFound` if not a member, `Conflict` if they are the last admin.
    pub async fn remove_member(&self, org_id: i64, user_id: i64) -> Result<(), StoreError> {
        dispatch!(self, c => c.remove_member(org_id, user_id).await)
    }

    /// Changes a member's role. `NotFound` if not a member, `Conflict` if
    /// it would demote the last admin.
    pub async fn change_member_role(
        &self,
        org_id: i64,
        user_id: i64,
        role: Role,
    ) -> Result<Member, StoreError> {
        dispatch!(self, c => c.change_member_role(org_id, user_id, role).await)
    }

    /// The scopes the user may use: each of their organisations' org scope
    /// and their own user scope there, ordered by organisation, org scope
    /// first.
    pub async fn scopes_of_user(&self, user_id: i64) -> Result<Vec<Scope>, StoreError> {
        dispatch!(self, c => c.scopes_of_user(user_id).await)
    }

    /// A scope by id, without any access check (feed it to
    /// [`crate::domain::access::check_scope`]).
    pub async fn get_scope(&self, scope_id: i64) -> Result<Scope, StoreError> {
        dispatch!(self, c => c.get_scope(scope_id).await)
    }

    /// The scope's sources by id.
    pub async fn list_sources(&self, scope_id: i64) -> Result<Vec<Source>, StoreError> {
        dispatch!(self, c => c.list_sources(scope_id).await)
    }

    /// A source of the scope; `NotFound` if it does not exist or belongs to
    /// another scope.
    pub async fn get_source(&self, scope_id: i64, id: i64) -> Result<Source, StoreError> {
        dispatch!(self, c => c.get_source(scope_id, id).await)
    }

    /// Validates and creates a source; `Conflict` if the name is taken in
    /// the scope, `NotFound` if the scope does not exist.
    pub async fn create_source(
        &self,
        scope_id: i64,
        new: &NewSource,
    ) -> Result<Source, StoreError> {
        dispatch!(self, c => c.create_source(scope_id, new).await)
    }

    /// Applies the present fields of `patch` and bumps `updated_at` (an
    /// empty patch changes nothing); `NotFound` outside the scope,
    /// `Conflict` on a taken name.
    pub async fn update_source(
        &self,
        scope_id: i64,
        id: i64,
        patch: &SourcePatch,
    ) -> Result<Source, StoreError> {
        dispatch!(self, c => c.update_source(scope_id, id, patch).await)
    }

    /// Deletes a source of the scope; `NotFound` if there is no such source
    /// in it.
    pub async fn delete_source(&self, scope_id: i64, id: i64) -> Result<(), StoreError> {
        dispatch!(self, c => c.delete_source(scope_id, id).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Database;

    /// Servers need `Send` futures (axum handlers run on any worker
    /// thread). Never called: it only has to compile.
    #[allow(dead_code)]
    async fn futures_are_send(db: Database, conn: Connection) {
        fn send<T: Send>(_: T) {}
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Connection>();
        shareable::<Database>();
        send(db.acquire());
        send(db.migrate());
        send(conn.begin());
        send(conn.commit());
        send(conn.get_user(1));
        send(conn.create_user(&NewUser {
            name: String::new(),
            email: String::new(),
        }));
        send(conn.remove_member(1, 2));
        send(conn.update_source(1, 2, &SourcePatch::default()));
        send(conn.close());
    }
}
