//! PostgreSQL over a Workers TCP socket, one connection per request.
//!
//! [`PgTarget`] says where the database is (a `DATABASE_URL`, or a
//! Hyperdrive binding) and holds no I/O, so an app service may keep it.
//! [`PgTarget::connect`] opens a socket and a tokio-postgres session on it
//! *for the current request*, and returns it as a
//! [`RequestBound`]: a request service holds it and
//! closes it in its release. An app service that calls it is refused when
//! the registry starts (its build created a request-bound value), which is
//! the Workers rule ("Cannot perform I/O on behalf of a different request")
//! enforced before any request runs.
//!
//! [`PgTarget`] is also provision-postgres's [`Connect`](provision_postgres::Connect)
//! on Workers: [`PgTarget::postgres`] makes a
//! [`Postgres`](provision_postgres::Postgres) that connects each request
//! through it, with [`WorkersTimer`] for the acquire timeout, the retry of
//! transient connect failures and the statement deadline (whose cancel
//! request goes out over a new socket).
//!
//! ```no_run
//! use std::time::Duration;
//! use provision_postgres::PgOptions;
//! use provision_worker::postgres::PgTarget;
//!
//! # fn run(env: &worker::Env) -> Result<(), provision::Error> {
//! let database = PgTarget::from_env(env, "HYPERDRIVE", "DATABASE_URL")?.postgres(
//!     PgOptions::default()
//!         .acquire_timeout(Duration::from_secs(5))
//!         .statement_timeout(Duration::from_secs(10)),
//! );
//! // Supply `database` to the registry; handlers ask for `PgConn` or `PgTx`.
//! # let _ = database; Ok(()) }
//! ```

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{Either, select};
use http::StatusCode;
use provision::{Error, RequestBound};
use provision_postgres::{ErrorKind, PgError};
use tokio_postgres::config::Host;
use tokio_postgres::tls::TlsConnect;
use tokio_postgres::{Client, Config, NoTls};
use worker::postgres_tls::PassthroughTls;
use worker::send::SendFuture;
use worker::{Env, Hyperdrive, SecureTransport, Socket};

mod connect;
mod timer;
mod tls;

pub use timer::WorkersTimer;
pub use tls::SslMode;

/// How long [`PgSession::close`] waits for the connection to shut down.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the database is and how to log in. No I/O: safe to keep for the
/// life of the isolate (in an app service).
#[derive(Clone)]
pub struct PgTarget {
    config: Config,
    host: String,
    port: u16,
    tls: SslMode,
    /// Set when the connection string asks for something Workers cannot
    /// do: every request that needs the database answers `503` with it.
    unsupported: Option<String>,
    /// A Hyperdrive binding: StartTLS, negotiated with the sslmode of the
    /// connection string Hyperdrive gives, as workers-rs documents.
    hyperdrive: bool,
}

impl std::fmt::Debug for PgTarget {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl PgTarget {
    /// From a URL (`postgres://user:password@host:port/db`), `sslmode` and
    /// `channel_binding` as libpq spells them (see [`SslMode`]): with
    /// `prefer` (the default) TLS is used when the server offers it, with
    /// `require`, `verify-ca` and `verify-full` always, the certificate
    /// verified by workerd. A setting Workers cannot honour
    /// (`channel_binding=require`, `sslmode=allow`) is not an error here:
    /// each request that connects answers `503` saying what to use instead.
    pub fn from_url(url: &str) -> Result<PgTarget, Error> {
        let settings = tls::TlsSettings::read(url);
        // The parse error could echo part of the URL and its password.
        let mut config: Config = settings
            .url
            .parse()
            .map_err(|_| Error::new("DATABASE_URL is not a valid PostgreSQL URL"))?;
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            _ => return Err(Error::new("DATABASE_URL must name a TCP host")),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        if config.get_application_name().is_none() {
            config.application_name("cloud-api-worker");
        }
        Ok(PgTarget {
            config,
            host,
            port,
            tls: settings.mode,
            unsupported: settings.unsupported,
            hyperdrive: false,
        })
    }

    /// From a Hyperdrive binding: its generated credentials, reached over
    /// the binding's host and port with StartTLS, as workers-rs documents.
    pub fn from_hyperdrive(hyperdrive: &Hyperdrive) -> Result<PgTarget, Error> {
        let config: Config = hyperdrive
            .connection_string()
            .parse()
            .map_err(|_| Error::new("the Hyperdrive connection string is not valid"))?;
        Ok(PgTarget {
            config,
            host: hyperdrive.host(),
            port: hyperdrive.port(),
            tls: SslMode::Require,
            unsupported: None,
            hyperdrive: true,
        })
    }

    /// The Hyperdrive binding named `hyperdrive` if the Worker has one, else
    /// the secret or variable named `url`.
    pub fn from_env(env: &Env, hyperdrive: &str, url: &str) -> Result<PgTarget, Error> {
        if let Ok(binding) = env.hyperdrive(hyperdrive) {
            return PgTarget::from_hyperdrive(&binding);
        }
        let value = env
            .secret(url)
            .map(|s| s.to_string())
            .or_else(|_| env.var(url).map(|v| v.to_string()))
            .map_err(|_| {
                Error::new(format!(
                    "no database configured: bind a Hyperdrive as `{hyperdrive}`, or set `{url}`"
                ))
            })?;
        PgTarget::from_url(&value)
    }

    /// Whether the connection must be encrypted (`sslmode=require` or
    /// stricter, and Hyperdrive).
    pub fn uses_tls(&self) -> bool {
        !matches!(self.tls, SslMode::Disable | SslMode::Prefer)
    }

    /// The `sslmode` this target connects with.
    pub fn ssl_mode(&self) -> SslMode {
        self.tls
    }

    /// Opens a socket and a session on it, bound to the current request.
    ///
    /// Call it from a request service's `build` and close the session in its
    /// `release`. Called while an app service is built, it makes the
    /// registry refuse that service.
    pub async fn connect(&self) -> Result<RequestBound<PgSession>, Error> {
        let session = SendFuture::new(self.open()).await.map_err(|error| {
            if error.kind() == ErrorKind::Misconfigured {
                setting_error(error.message().to_owned())
            } else {
                Error::new(error.message().to_owned()).with_status(StatusCode::SERVICE_UNAVAILABLE)
            }
        })?;
        Ok(RequestBound::new(session).named("PgSession"))
    }

    /// Opens a socket and a session, once; a failure says whether another
    /// attempt may help ([`PgError::is_transient`]).
    async fn open(&self) -> Result<PgSession, PgError> {
        if let Some(reason) = &self.unsupported {
            return Err(PgError::misconfigured(reason.clone()));
        }
        match self.tls {
            SslMode::Disable => self.open_plain().await,
            SslMode::Prefer => match self.open_tls(tokio_postgres::config::SslMode::Prefer).await {
                Ok(session) => Ok(session),
                // libpq's `prefer` retries without TLS when the handshake
                // fails; workerd verifies every certificate, so a
                // self-signed one lands here instead of being accepted.
                Err(TlsFailure::Handshake(error)) => {
                    worker::console_warn!(
                        "TLS to the database failed ({error}); sslmode=prefer: connecting without TLS"
                    );
                    self.open_plain().await
                }
                Err(TlsFailure::NotOffered(error)) => Err(connect_error(error)),
                Err(TlsFailure::Other(error)) => Err(error),
            },
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                match self
                    .open_tls(tokio_postgres::config::SslMode::Require)
                    .await
                {
                    Ok(session) => Ok(session),
                    Err(TlsFailure::NotOffered(error)) => {
                        worker::console_error!("connecting to the database failed: {error:?}");
                        Err(PgError::misconfigured(format!(
                            "the database server does not offer TLS, which sslmode={} requires: \
                             turn on ssl in the server, or use sslmode=disable only for a \
                             database on a private network",
                            self.tls
                        )))
                    }
                    Err(TlsFailure::Handshake(error)) => {
                        worker::console_error!(
                            "TLS to the database at {} failed: {error:?}",
                            self.host
                        );
                        Err(PgError::misconfigured(format!(
                            "the TLS handshake with the database failed (sslmode={}): on \
                             Cloudflare Workers the server's certificate must chain to a CA \
                             workerd trusts and name the host of the database URL (workerd \
                             always verifies both, as verify-full); use such a certificate, or \
                             the host name it was issued for",
                            self.tls
                        )))
                    }
                    Err(TlsFailure::Other(error)) => Err(error),
                }
            }
        }
    }

    fn socket(&self, secure: SecureTransport) -> Result<Socket, PgError> {
        Socket::builder()
            .secure_transport(secure)
            .connect(self.host.clone(), self.port)
            .map_err(|e| {
                worker::console_error!("opening a socket to the database failed: {e}");
                PgError::transient("cannot reach the database")
            })
    }

    async fn open_plain(&self) -> Result<PgSession, PgError> {
        let socket = self.socket(SecureTransport::Off)?;
        let mut config = self.config.clone();
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        let (done, ended) = futures_channel::oneshot::channel::<()>();
        let (client, connection) = config
            .connect_raw(socket, NoTls)
            .await
            .map_err(connect_error)?;
        drive(connection, done);
        Ok(PgSession {
            client,
            ended,
            starttls: false,
        })
    }

    /// Connects with StartTLS available; tokio-postgres asks the server
    /// (SSLRequest) and upgrades when it says yes.
    async fn open_tls(
        &self,
        mode: tokio_postgres::config::SslMode,
    ) -> Result<PgSession, TlsFailure> {
        let socket = self
            .socket(SecureTransport::StartTls)
            .map_err(TlsFailure::Other)?;
        let upgraded = Rc::new(Cell::new(false));
        let tls = StartTls {
            upgraded: upgraded.clone(),
        };
        let mut config = self.config.clone();
        if !self.hyperdrive {
            config.ssl_mode(mode);
        }
        let (done, ended) = futures_channel::oneshot::channel::<()>();
        match config.connect_raw(socket, tls).await {
            Ok((client, connection)) => {
                drive(connection, done);
                Ok(PgSession {
                    client,
                    ended,
                    starttls: true,
                })
            }
            // The server answered (a wrong password, a missing database):
            // whatever TLS did, it worked.
            Err(error) if error.as_db_error().is_some() => {
                Err(TlsFailure::Other(connect_error(error)))
            }
            Err(error) if upgraded.get() => Err(TlsFailure::Handshake(error)),
            // The server answered SSLRequest with 'N' (only `Require` fails on
            // that; tokio-postgres says so in the error's cause).
            Err(error)
                if std::error::Error::source(&error)
                    .is_some_and(|cause| cause.to_string() == "server does not support TLS") =>
            {
                Err(TlsFailure::NotOffered(error))
            }
            Err(error) => Err(TlsFailure::Other(connect_error(error))),
        }
    }
}

/// How a connection over a StartTLS socket failed.
enum TlsFailure {
    /// `sslmode=require` and the server said no to TLS.
    NotOffered(tokio_postgres::Error),
    /// The socket was upgraded and then failed before the server answered:
    /// the handshake (workerd refused the certificate, most often).
    Handshake(tokio_postgres::Error),
    /// Anything else (the server refused the login, the socket closed),
    /// already logged and classified.
    Other(PgError),
}

/// workers-rs' [`PassthroughTls`] (the socket's `startTls()`), noting that
/// the upgrade happened, so a failure after it can be told apart.
struct StartTls {
    upgraded: Rc<Cell<bool>>,
}

impl TlsConnect<Socket> for StartTls {
    type Stream = <PassthroughTls as TlsConnect<Socket>>::Stream;
    type Error = <PassthroughTls as TlsConnect<Socket>>::Error;
    type Future = <PassthroughTls as TlsConnect<Socket>>::Future;

    fn connect(self, socket: Socket) -> Self::Future {
        self.upgraded.set(true);
        PassthroughTls.connect(socket)
    }
}

/// Runs the connection's I/O on the request's event loop until the client
/// is dropped (it then sends Terminate and closes the socket).
fn drive<F>(connection: F, done: futures_channel::oneshot::Sender<()>)
where
    F: Future<Output = Result<(), tokio_postgres::Error>> + 'static,
{
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(error) = connection.await {
            worker::console_warn!("database connection ended with an error: {error:?}");
        }
        let _ = done.send(());
    });
}

/// Logs a failed connect and classifies it: a refused login or a missing
/// database is final, anything else (refused, reset, closed) transient.
fn connect_error(error: tokio_postgres::Error) -> PgError {
    worker::console_error!("connecting to the database failed: {error:?}");
    PgError::from_connect(error)
}

/// A `503` caused by the connection string's TLS settings, marked so with
/// [`TlsSettingError`].
fn setting_error(message: String) -> Error {
    Error::with_source(message, TlsSettingError).with_status(StatusCode::SERVICE_UNAVAILABLE)
}

/// The cause of a [`PgTarget::connect`] error that comes from the
/// connection string's TLS settings rather than from the database being
/// down: retrying cannot help. Its message says what to change, and names
/// settings, never their values, so it may be shown to a client.
///
/// ```no_run
/// # async fn f(target: provision_worker::postgres::PgTarget) {
/// use provision_worker::postgres::TlsSettingError;
/// if let Err(error) = target.connect().await {
///     let show_the_client = TlsSettingError::is_cause_of(&error);
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct TlsSettingError;

impl TlsSettingError {
    /// Whether `error` was caused by the TLS settings.
    pub fn is_cause_of(error: &Error) -> bool {
        std::error::Error::source(error).is_some_and(|source| source.is::<TlsSettingError>())
    }
}

impl std::fmt::Display for TlsSettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the database URL's TLS settings cannot work on Cloudflare Workers")
    }
}

impl std::error::Error for TlsSettingError {}

/// One request's PostgreSQL session: the client, and the end of the task
/// that drives its socket.
pub struct PgSession {
    client: Client,
    ended: futures_channel::oneshot::Receiver<()>,
    /// Whether the socket was opened for StartTLS: a cancel request for
    /// this session is sent the same way.
    starttls: bool,
}

impl PgSession {
    /// The tokio-postgres client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The client and a future that completes once the socket is closed
    /// (after the client is dropped), for code that keeps the client in
    /// its own type and waits for the close in its release.
    pub fn into_parts(self) -> (Client, impl Future<Output = ()> + Send + 'static) {
        let ended = self.ended;
        (
            self.client,
            SendFuture::new(async move { wait_closed(ended).await }),
        )
    }

    /// Closes the session: drops the client, which makes the connection
    /// send Terminate and close the socket, and waits (at most five
    /// seconds) for that.
    pub async fn close(self) {
        let (client, closed) = self.into_parts();
        drop(client);
        closed.await;
    }
}

async fn wait_closed(ended: futures_channel::oneshot::Receiver<()>) {
    let timeout = worker::Delay::from(CLOSE_TIMEOUT);
    if let Either::Right(_) = select(ended, timeout).await {
        worker::console_warn!("the database connection did not close within {CLOSE_TIMEOUT:?}");
    }
}
