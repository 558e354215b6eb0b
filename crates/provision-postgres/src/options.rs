//! [`PgOptions`]: everything about the database except where it is.

use std::sync::Arc;
use std::time::Duration;

use crate::{Mode, Timer};

/// How [`Postgres`](crate::Postgres) connects and bounds its work.
///
/// ```
/// use std::time::Duration;
/// use provision_postgres::{Mode, PgOptions};
///
/// let options = PgOptions::default()
///     .mode(Mode::PerRequest)
///     .acquire_timeout(Duration::from_secs(2))
///     .statement_timeout(Duration::from_secs(5))
///     .application_name("billing");
/// assert_eq!(options.get_mode(), Mode::PerRequest);
/// ```
#[derive(Clone)]
pub struct PgOptions {
    pub(crate) mode: Mode,
    pub(crate) pool_size: usize,
    pub(crate) acquire_timeout: Duration,
    pub(crate) statement_timeout: Duration,
    pub(crate) application_name: Option<String>,
    pub(crate) startup_statement_timeout: bool,
    pub(crate) timer: Option<Arc<dyn Timer>>,
}

impl Default for PgOptions {
    /// Pool mode, 16 connections, 5 s to acquire, 30 s per statement, the
    /// tokio timer when the `tokio` feature is on.
    fn default() -> Self {
        PgOptions {
            mode: Mode::Pool,
            pool_size: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            application_name: None,
            startup_statement_timeout: false,
            #[cfg(feature = "tokio")]
            timer: Some(Arc::new(crate::TokioTimer)),
            #[cfg(not(feature = "tokio"))]
            timer: None,
        }
    }
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("mode", &self.mode)
            .field("pool_size", &self.pool_size)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("application_name", &self.application_name)
            .field("startup_statement_timeout", &self.startup_statement_timeout)
            .field("timer", &self.timer.is_some())
            .finish()
    }
}

impl PgOptions {
    /// A pool, or a connection per request.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The most connections the pool keeps open (pool mode only; at least 1).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long getting a connection may take in all: waiting for a free
    /// pooled one, connecting (TCP and the startup handshake), and retrying
    /// transient failures. Past it, a `503`. Counted from the first moment
    /// the lease has to wait: one that completes at once (an idle pooled
    /// connection) starts no timer.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// How long one statement may run. Enforced twice, both ways safe
    /// behind a transaction-mode pooler: by the server, through
    /// `SET LOCAL statement_timeout` sent with every `BEGIN` of
    /// [`PgTx`](crate::PgTx); and by the client, a deadline raced against
    /// every statement run through [`PgConnection`](crate::PgConnection),
    /// which then cancels the statement (waiting at most this long again for
    /// the cancel request to go out) and closes the connection.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// The `application_name` the server shows in `pg_stat_activity`
    /// (unless the URL names one).
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = Some(name.into());
        self
    }

    /// Also send the statement timeout as a startup parameter
    /// (`options=-c statement_timeout=...`), so that it covers statements
    /// outside transactions on the server too. Off by default: PgBouncer
    /// refuses the parameter ("unsupported startup parameter: options"),
    /// so turn it on only for direct connections.
    pub fn startup_statement_timeout(mut self, on: bool) -> Self {
        self.startup_statement_timeout = on;
        self
    }

    /// The timer for the acquire budget, connect retries and statement
    /// deadlines; the tokio timer by default natively, none otherwise.
    pub fn timer(mut self, timer: Arc<dyn Timer>) -> Self {
        self.timer = Some(timer);
        self
    }

    /// The mode these options select.
    pub fn get_mode(&self) -> Mode {
        self.mode
    }

    /// The statement timeout.
    pub fn get_statement_timeout(&self) -> Duration {
        self.statement_timeout
    }

    /// The acquire timeout.
    pub fn get_acquire_timeout(&self) -> Duration {
        self.acquire_timeout
    }
}
