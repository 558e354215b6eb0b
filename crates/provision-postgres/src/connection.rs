//! [`PgConnection`]: one connection held for one request, with its
//! transaction state and its statement deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, ToStatement};

use crate::{ErrorKind, PgError, Timer};

/// What bounds the statements on a connection; shared by every connection
/// of one [`Postgres`](crate::Postgres).
pub(crate) struct Limits {
    pub(crate) statement_timeout: Duration,
    pub(crate) timer: Option<Arc<dyn Timer>>,
    /// Where a native session's cancel request goes, when that is known.
    #[cfg(feature = "tokio")]
    pub(crate) cancel_at: Option<crate::cancel::CancelAddress>,
}

/// Completes once the task driving a direct connection's socket has ended.
/// In a mutex only so that the connection is `Sync` (it is awaited by value,
/// never shared).
type Ended = Mutex<Pin<Box<dyn Future<Output = ()> + Send>>>;

enum Handle {
    /// Leased from the pool; goes back to it when dropped, unless detached.
    #[cfg(feature = "tokio")]
    Leased(deadpool_postgres::Object),
    /// Opened for this request; closed when the client is dropped.
    Direct {
        client: Arc<Client>,
        ended: Option<Ended>,
        abort: Option<Mutex<crate::connect::Abort>>,
        cancel: Option<crate::connect::Cancel>,
    },
}

const IDLE: u8 = 0;
const OPEN: u8 = 1;
/// Open, but a statement in it failed: it can only roll back.
const FAILED: u8 = 2;

/// A leased pool connection or a per-request client.
///
/// Statements run through its methods ([`query`](Self::query),
/// [`execute`](Self::execute), [`guard`](Self::guard), ...) are raced
/// against the statement timeout: past it, the statement is cancelled on the
/// server, the connection is marked broken (closed when the request ends,
/// never returned to a pool), and the caller gets a [`ErrorKind::Timeout`]
/// error, a `503`. A failure inside a transaction marks it failed, so that
/// its commit reports an error instead of PostgreSQL's silent rollback.
///
/// Every method takes `&self`: a request shares one connection by reference.
pub struct PgConnection {
    handle: Option<Handle>,
    tx: AtomicU8,
    broken: AtomicBool,
    /// A statement's future was dropped before its answer came (the
    /// request was cut: its client left, its time ran out, the server shut
    /// down). The server may still be running it, and anything sent next
    /// would queue behind it on this connection.
    abandoned: AtomicBool,
    limits: Arc<Limits>,
}

/// Marks the connection's statement abandoned if dropped before
/// [`done`](InFlight::done).
struct InFlight<'a>(Option<&'a AtomicBool>);

impl InFlight<'_> {
    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(abandoned) = self.0 {
            abandoned.store(true, Ordering::Release);
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`PgConnection::deadline`], written out rather than as
    /// an `async fn`, which would hold `work` twice (its argument and the
    /// future it awaits are kept apart) and copy it again on its first poll.
    #[must_use = "futures do nothing unless polled"]
    struct Deadline<'c, F> {
        // Emptied when the deadline passes, so the statement is dropped
        // before its cancel request is sent, as it always was.
        #[pin]
        work: Option<crate::timer::Within<'c, F>>,
        // Made on the first poll: a deadline dropped before it ran
        // abandoned no statement.
        in_flight: Option<InFlight<'c>>,
        // Only once the deadline has passed: boxed, off the path of
        // statements that finish in time.
        cancelling: Option<Pin<Box<dyn Future<Output = ()> + Send + 'c>>>,
        conn: &'c PgConnection,
    }
}

impl<F: Future> Future for Deadline<'_, F> {
    type Output = Result<F::Output, PgError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.cancelling.is_none() {
            let Some(work) = this.work.as_mut().as_pin_mut() else {
                panic!("`PgConnection::deadline` polled after it completed");
            };
            if this.in_flight.is_none() {
                *this.in_flight = Some(InFlight(Some(&this.conn.abandoned)));
            }
            let outcome = std::task::ready!(work.poll(cx));
            if let Some(in_flight) = this.in_flight.take() {
                in_flight.done();
            }
            this.work.set(None);
            match outcome {
                Some(outcome) => return Poll::Ready(Ok(outcome)),
                // Cancelled here, and the connection marked broken.
                None => *this.cancelling = Some(Box::pin(this.conn.cancel_running_statement())),
            }
        }
        if let Some(cancelling) = this.cancelling.as_mut() {
            std::task::ready!(cancelling.as_mut().poll(cx));
            *this.cancelling = None;
        }
        let error = PgError::statement_timeout();
        this.conn.record_failure(&error);
        Poll::Ready(Err(error))
    }
}

pin_project_lite::pin_project! {
    /// The future of [`PgConnection::guard`]: the deadline's, with the
    /// statement's failure recorded on the connection.
    #[must_use = "futures do nothing unless polled"]
    struct Guard<'c, F> {
        #[pin]
        deadline: Deadline<'c, F>,
    }
}

impl<T, F> Future for Guard<'_, F>
where
    F: Future<Output = Result<T, tokio_postgres::Error>>,
{
    type Output = Result<T, PgError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let deadline = self.project().deadline;
        let conn = deadline.conn;
        let outcome = match std::task::ready!(deadline.poll(cx)) {
            Ok(outcome) => outcome.map_err(PgError::from_query),
            Err(timed_out) => Err(timed_out),
        };
        if let Err(error) = &outcome {
            conn.record_failure(error);
        }
        Poll::Ready(outcome)
    }
}

impl std::fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnection")
            .field("in_transaction", &self.in_transaction())
            .field("broken", &self.is_broken())
            .finish_non_exhaustive()
    }
}

impl PgConnection {
    #[cfg(feature = "tokio")]
    pub(crate) fn leased(object: deadpool_postgres::Object, limits: Arc<Limits>) -> Self {
        PgConnection::with_handle(Handle::Leased(object), limits)
    }

    /// Wraps a connection a host made (see [`Connect`](crate::Connect)),
    /// with the statement timeout and timer of `options`: for code that
    /// holds connections outside [`Postgres`](crate::Postgres).
    pub fn from_connected(connected: crate::Connected, options: &crate::PgOptions) -> Self {
        let limits = Arc::new(Limits {
            statement_timeout: options.statement_timeout,
            timer: options.timer.clone(),
            #[cfg(feature = "tokio")]
            cancel_at: None,
        });
        PgConnection::direct(connected, limits)
    }

    pub(crate) fn direct(connected: crate::Connected, limits: Arc<Limits>) -> Self {
        let handle = Handle::Direct {
            client: connected.client,
            ended: connected.ended.map(Mutex::new),
            abort: connected.abort.map(Mutex::new),
            cancel: connected.cancel,
        };
        PgConnection::with_handle(handle, limits)
    }

    fn with_handle(handle: Handle, limits: Arc<Limits>) -> Self {
        PgConnection {
            handle: Some(handle),
            tx: AtomicU8::new(IDLE),
            broken: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            limits,
        }
    }

    /// The tokio-postgres client, for what the methods here do not cover.
    ///
    /// Statements sent straight through it have no client-side deadline and
    /// their failures do not mark the transaction failed; wrap them in
    /// [`guard`](Self::guard) to get both.
    pub fn client(&self) -> &Client {
        match self
            .handle
            .as_ref()
            .expect("the handle is present until close")
        {
            #[cfg(feature = "tokio")]
            Handle::Leased(object) => object,
            Handle::Direct { client, .. } => client,
        }
    }

    /// The client, mutably (for APIs that need `&mut Client`, such as a
    /// migration runner); `None` when others hold it too
    /// ([`Connected::shared`](crate::Connected::shared)).
    pub fn client_mut(&mut self) -> Option<&mut Client> {
        match self
            .handle
            .as_mut()
            .expect("the handle is present until close")
        {
            #[cfg(feature = "tokio")]
            Handle::Leased(object) => Some(object),
            Handle::Direct { client, .. } => Arc::get_mut(client),
        }
    }

    /// Whether a transaction is open on this connection.
    pub fn in_transaction(&self) -> bool {
        self.tx.load(Ordering::Acquire) != IDLE
    }

    /// Whether the connection was lost or a statement on it timed out: it
    /// will be closed when the request ends, not reused.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Runs a statement's future under the statement deadline, and records
    /// its failure (transaction failed; connection broken if it was lost or
    /// timed out).
    ///
    /// ```no_run
    /// # async fn run(conn: &provision_postgres::PgConnection) -> Result<(), provision_postgres::PgError> {
    /// let statement = conn.guard(conn.client().prepare("SELECT $1::int")).await?;
    /// let row = conn.guard(conn.client().query_one(&statement, &[&1i32])).await?;
    /// # Ok(()) }
    /// ```
    pub fn guard<T>(
        &self,
        statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> impl Future<Output = Result<T, PgError>> {
        Guard {
            deadline: self.bounded(statement),
        }
    }

    /// Runs `work` (statements on this connection, with errors of the
    /// caller's own type) under the statement deadline. Past it, the
    /// statement is cancelled, the connection marked broken and the
    /// transaction failed, and the answer is a [`ErrorKind::Timeout`] error.
    /// Unlike [`guard`](Self::guard), a failure inside `work` is the
    /// caller's to record ([`fail_transaction`](Self::fail_transaction)).
    ///
    /// The future holds `work` once, next to its timer: no copy of it is
    /// made beyond the one any wrapper makes when it takes `work` in.
    pub fn deadline<F: Future>(&self, work: F) -> impl Future<Output = Result<F::Output, PgError>> {
        self.bounded(work)
    }

    fn bounded<F: Future>(&self, work: F) -> Deadline<'_, F> {
        Deadline {
            work: Some(crate::timer::within(
                self.limits.timer.as_deref(),
                self.limits.statement_timeout,
                work,
            )),
            in_flight: None,
            cancelling: None,
            conn: self,
        }
    }

    /// Marks the open transaction failed (no effect outside one): its
    /// commit then rolls back and reports an error. For failures the
    /// library did not see, such as an app-level check inside a write.
    pub fn fail_transaction(&self) {
        let _ = self
            .tx
            .compare_exchange(OPEN, FAILED, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Runs a statement and returns its rows.
    pub async fn query<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, PgError>
    where
        T: ?Sized + ToStatement,
    {
        self.guard(self.client().query(statement, params)).await
    }

    /// Runs a statement that returns exactly one row.
    pub async fn query_one<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, PgError>
    where
        T: ?Sized + ToStatement,
    {
        self.guard(self.client().query_one(statement, params)).await
    }

    /// Runs a statement that returns at most one row.
    pub async fn query_opt<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, PgError>
    where
        T: ?Sized + ToStatement,
    {
        self.guard(self.client().query_opt(statement, params)).await
    }

    /// Runs a statement and returns how many rows it changed.
    pub async fn execute<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, PgError>
    where
        T: ?Sized + ToStatement,
    {
        self.guard(self.client().execute(statement, params)).await
    }

    /// Runs statements separated by `;`, without parameters.
    pub async fn batch_execute(&self, sql: &str) -> Result<(), PgError> {
        self.guard(self.client().batch_execute(sql)).await
    }

    /// Opens a transaction, with the statement timeout set for it alone
    /// (`SET LOCAL`): per-connection settings would leak to other clients
    /// behind a transaction-mode pooler, and a startup parameter is refused
    /// by one. One round trip.
    pub async fn begin(&self) -> Result<(), PgError> {
        if self
            .tx
            .compare_exchange(IDLE, OPEN, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(PgError::new(
                ErrorKind::Internal,
                "a transaction is already open",
            ));
        }
        let millis = self.limits.statement_timeout.as_millis().max(1);
        self.batch_execute(&format!("BEGIN; SET LOCAL statement_timeout = {millis}"))
            .await
    }

    /// Commits the open transaction (nothing to do outside one).
    ///
    /// If a statement in it failed, PostgreSQL would answer `COMMIT` with a
    /// silent rollback; this rolls back and says so with an error instead.
    /// The `SELECT 1` in the same round trip catches a failure the library
    /// did not see (a statement sent straight through [`client`](Self::client)):
    /// in an aborted transaction it fails, and `COMMIT` is never reached.
    pub async fn commit(&self) -> Result<(), PgError> {
        match self.tx.swap(IDLE, Ordering::AcqRel) {
            IDLE => Ok(()),
            OPEN => {
                let committed = self.batch_execute("SELECT 1; COMMIT").await;
                if committed.is_err() && !self.is_broken() {
                    // The SELECT failed, so the transaction is still open
                    // (aborted) on the server.
                    let _ = self.guard(self.client().batch_execute("ROLLBACK")).await;
                }
                committed
            }
            _ => {
                let _ = self.guard(self.client().batch_execute("ROLLBACK")).await;
                Err(PgError::new(
                    ErrorKind::Internal,
                    "a statement in the transaction failed, so it was rolled back: nothing was saved",
                ))
            }
        }
    }

    /// Rolls back the open transaction (nothing to do outside one).
    ///
    /// If a statement of this request was abandoned mid-flight (see
    /// [`was_abandoned`](Self::was_abandoned)), a `ROLLBACK` would queue
    /// behind it, for as long as it runs (a write blocked on a lock: up to
    /// the statement timeout). Instead the statement is cancelled on the
    /// server and the connection marked broken, so that it is closed, not
    /// reused: PostgreSQL rolls back the transaction of a closed session.
    pub async fn rollback(&self) -> Result<(), PgError> {
        match self.tx.swap(IDLE, Ordering::AcqRel) {
            IDLE => Ok(()),
            _ if self.was_abandoned() => {
                tracing::debug!(
                    "a statement was abandoned mid-flight: cancelling it and closing the connection instead of rolling back behind it"
                );
                self.cancel_running_statement().await;
                Ok(())
            }
            _ => self.batch_execute("ROLLBACK").await,
        }
    }

    /// Whether a statement's future was dropped before its answer came (the
    /// request was cut short while it ran). The server may still be running
    /// it; the connection is then cancelled and closed when the request
    /// ends, never rolled back behind it or returned to a pool.
    pub fn was_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    /// Ends this request's use of the connection: rolls back an open
    /// transaction, then returns a leased connection to its pool, or closes
    /// it (a per-request connection, or one that is broken or could not
    /// roll back) and waits until its socket is closed.
    ///
    /// Not an `async fn`: with no transaction open (most requests) the
    /// connection is given back at once, and the future holds only what is
    /// left to await (the end of the socket's task).
    pub fn close(self) -> Closing {
        if self.was_abandoned() && !self.is_broken() {
            return Closing(Some(Box::pin(async move {
                // Stop what still runs (a write waiting on a lock holds its
                // locks until it ends), then close: the server rolls back.
                self.cancel_running_statement().await;
                self.tx.store(IDLE, Ordering::Release);
                if let Some(ending) = self.finish().0 {
                    ending.await;
                }
            })));
        }
        if self.in_transaction() && !self.is_broken() {
            return Closing(Some(Box::pin(async move {
                if self.rollback().await.is_err() {
                    self.broken.store(true, Ordering::Release);
                }
                if let Some(ending) = self.finish().0 {
                    ending.await;
                }
            })));
        }
        self.finish()
    }

    fn finish(mut self) -> Closing {
        match self.handle.take() {
            #[cfg(feature = "tokio")]
            Some(Handle::Leased(object)) => {
                // A transaction still marked open here could not be rolled
                // back.
                if !self.is_broken() && !self.in_transaction() {
                    drop(object);
                } else {
                    // Detached from the pool, the client is dropped and the
                    // connection closes; the server rolls back what is left.
                    drop(deadpool_postgres::Object::take(object));
                }
                Closing(None)
            }
            Some(Handle::Direct {
                client,
                ended,
                abort,
                ..
            }) => {
                drop(client);
                if self.is_broken() {
                    // Its task may wait for the server to finish a statement
                    // that timed out: cut it, or at least do not wait.
                    let Some(abort) = abort else {
                        return Closing(None);
                    };
                    (abort
                        .into_inner()
                        .unwrap_or_else(std::sync::PoisonError::into_inner))();
                }
                Closing(ended.map(|ended| {
                    ended
                        .into_inner()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                }))
            }
            None => Closing(None),
        }
    }

    fn record_failure(&self, error: &PgError) {
        self.fail_transaction();
        if error.breaks_connection() {
            self.broken.store(true, Ordering::Release);
        }
    }

    /// Asks the server to stop the statement the deadline cut short, and
    /// waits (bounded) until the request went out: while this client is
    /// still connected, so that a pooler forwards it to this statement's
    /// server connection and not to whichever client has it next. The
    /// connection is closed anyway, but a backend busy in `pg_sleep` would
    /// not notice that until the statement ends.
    async fn cancel_running_statement(&self) {
        self.broken.store(true, Ordering::Release);
        let host_cancel = match &self.handle {
            Some(Handle::Direct {
                cancel: Some(cancel),
                ..
            }) => Some(cancel()),
            _ => None,
        };
        match host_cancel {
            // The host's own cancel request (Workers), bounded the same way.
            Some(sent) => match &self.limits.timer {
                Some(timer) => {
                    let bound = self.limits.statement_timeout;
                    if crate::timer::within(Some(&**timer), bound, sent)
                        .await
                        .is_none()
                    {
                        tracing::debug!("cancelling a timed-out statement timed out");
                    }
                }
                None => sent.await,
            },
            #[cfg(feature = "tokio")]
            None => {
                let token = self.client().cancel_token();
                let cancel = async {
                    match &self.limits.cancel_at {
                        Some(address) => address.cancel(&token).await.map_err(|e| e.to_string()),
                        None => {
                            let sent = token.cancel_query(tokio_postgres::NoTls).await;
                            sent.map_err(|e| e.to_string())
                        }
                    }
                };
                let bound = tokio::time::timeout(self.limits.statement_timeout, cancel);
                match bound.await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "could not cancel a timed-out statement")
                    }
                    Err(_) => tracing::debug!("cancelling a timed-out statement timed out"),
                }
            }
            #[cfg(not(feature = "tokio"))]
            None => {}
        }
    }
}

#[cfg(feature = "tokio")]
impl Drop for PgConnection {
    /// Dropped without [`close`](PgConnection::close) (a test, a leak): a
    /// leased connection with an open transaction or a broken one must not
    /// ride back into the pool, so it is detached and closed.
    fn drop(&mut self) {
        if (self.in_transaction() || self.is_broken() || self.was_abandoned())
            && let Some(Handle::Leased(object)) = self.handle.take()
        {
            drop(deadpool_postgres::Object::take(object));
        }
    }
}

/// The rest of [`PgConnection::close`]: a rollback, or a socket still
/// closing. Ready at once when there is nothing left.
#[must_use = "the connection is closed only once this future completes"]
pub struct Closing(Option<Pin<Box<dyn Future<Output = ()> + Send>>>);

impl Future for Closing {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.0 {
            None => Poll::Ready(()),
            Some(future) => future.as_mut().poll(cx),
        }
    }
}

impl std::fmt::Debug for Closing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Closing").field(&self.0.is_some()).finish()
    }
}
