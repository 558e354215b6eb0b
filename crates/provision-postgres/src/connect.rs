//! [`Connect`]: the extension point for hosts that open connections their
//! own way (Cloudflare Workers over `worker::Socket`, a test's fake).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_postgres::Client;

use crate::PgError;

/// The future a [`Connect`] returns.
pub type Connecting<'a> = Pin<Box<dyn Future<Output = Result<Connected, PgError>> + Send + 'a>>;

/// Opens one connection for the request being served.
///
/// [`Postgres::with_connector`](crate::Postgres::with_connector) calls it
/// once per request that asks for a connection (a per-request mode the host
/// implements), retries its [transient](PgError::is_transient) failures
/// within the acquire budget, and closes what it returned when the request
/// ends. It must hold no connection itself: the `Postgres` that owns it
/// lives as long as the app.
///
/// ```
/// use provision_postgres::{Connect, Connecting, PgError};
///
/// /// Connects with tokio-postgres over a socket the host opened.
/// struct Refuses;
/// impl Connect for Refuses {
///     fn connect(&self) -> Connecting<'_> {
///         Box::pin(async { Err(PgError::transient("no socket today")) })
///     }
/// }
/// ```
pub trait Connect: Send + Sync + 'static {
    /// A new connection, or why there is none: [`PgError::transient`] for a
    /// failure another attempt may fix, [`PgError::from_connect`] to
    /// classify a tokio-postgres error.
    fn connect(&self) -> Connecting<'_>;
}

/// A connected client and, optionally, what completes once its connection
/// has shut down (so the request's release can wait for the socket to close).
pub struct Connected {
    pub(crate) client: Arc<Client>,
    pub(crate) ended: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    pub(crate) abort: Option<Abort>,
    pub(crate) cancel: Option<Cancel>,
}

/// Cuts a connection at once (natively: aborts the task driving it).
pub(crate) type Abort = Box<dyn FnOnce() + Send + Sync>;

/// Asks the server to cancel the statement running on a connection.
pub(crate) type Cancel = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

impl Connected {
    /// A client whose connection is driven elsewhere; `ended` completes once
    /// that connection has ended (it ends when the client is dropped).
    pub fn new(client: Client, ended: impl Future<Output = ()> + Send + 'static) -> Connected {
        Connected {
            client: Arc::new(client),
            ended: Some(Box::pin(ended)),
            abort: None,
            cancel: None,
        }
    }

    /// A client whose connection nobody needs to wait for.
    pub fn detached(client: Client) -> Connected {
        Connected::shared(Arc::new(client))
    }

    /// A client others hold too: closing only lets go of this handle (the
    /// connection ends when the last holder drops it). Never share one
    /// between requests on Workers; this exists for tests that reproduce
    /// that bug.
    pub fn shared(client: Arc<Client>) -> Connected {
        Connected {
            client,
            ended: None,
            abort: None,
            cancel: None,
        }
    }

    /// How to cut the connection at once when a statement on it timed out:
    /// natively, abort the task that drives it. Without it, a broken
    /// connection is dropped without waiting for its end, since its task
    /// may wait for the server to finish the statement (a cancel request
    /// does not always get through a pooler).
    pub fn on_abort(mut self, abort: impl FnOnce() + Send + Sync + 'static) -> Connected {
        self.abort = Some(Box::new(abort));
        self
    }

    /// How to ask the server to cancel the statement running on this
    /// connection when its deadline passes (a PostgreSQL cancel request
    /// over a new socket), for a host without tokio, where the library
    /// cannot open that socket itself: on Cloudflare Workers,
    /// `CancelToken::cancel_query_raw` over a new `worker::Socket`. Without
    /// it (and without tokio) a statement past its deadline is only
    /// abandoned: the server runs it to its end, or to the `SET LOCAL`
    /// timeout inside a transaction. The library waits for the returned
    /// future at most the statement timeout.
    pub fn on_cancel<F>(mut self, cancel: impl Fn() -> F + Send + Sync + 'static) -> Connected
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.cancel = Some(Box::new(move || Box::pin(cancel())));
        self
    }
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected")
            .field("waits_for_end", &self.ended.is_some())
            .finish_non_exhaustive()
    }
}
