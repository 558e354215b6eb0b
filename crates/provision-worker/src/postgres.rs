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

use std::future::Future;
use std::time::Duration;

use futures_util::future::{Either, select};
use http::StatusCode;
use provision::{Error, RequestBound};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config, NoTls};
use worker::postgres_tls::PassthroughTls;
use worker::send::SendFuture;
use worker::{Env, Hyperdrive, SecureTransport, Socket};

/// How long [`PgSession::close`] waits for the connection to shut down.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the database is and how to log in. No I/O: safe to keep for the
/// life of the isolate (in an app service).
#[derive(Clone)]
pub struct PgTarget {
    config: Config,
    host: String,
    port: u16,
    tls: bool,
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
    /// From a URL (`postgres://user:password@host:port/db`). With
    /// `sslmode=require` the socket is upgraded with StartTLS; otherwise
    /// (the default, `prefer`, and `disable`) it stays plain text, which is
    /// right only for a database on a private network or loopback.
    pub fn from_url(url: &str) -> Result<PgTarget, Error> {
        // The parse error could echo part of the URL and its password.
        let mut config: Config = url
            .parse()
            .map_err(|_| Error::new("DATABASE_URL is not a valid PostgreSQL URL"))?;
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            _ => return Err(Error::new("DATABASE_URL must name a TCP host")),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let tls = !matches!(config.get_ssl_mode(), SslMode::Disable | SslMode::Prefer);
        if config.get_application_name().is_none() {
            config.application_name("cloud-api-worker");
        }
        Ok(PgTarget {
            config,
            host,
            port,
            tls,
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
            tls: true,
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

    /// Whether the socket is upgraded to TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls
    }

    /// Opens a socket and a session on it, bound to the current request.
    ///
    /// Call it from a request service's `build` and close the session in its
    /// `release`. Called while an app service is built, it makes the
    /// registry refuse that service.
    pub async fn connect(&self) -> Result<RequestBound<PgSession>, Error> {
        let session = SendFuture::new(self.open()).await?;
        Ok(RequestBound::new(session).named("PgSession"))
    }

    async fn open(&self) -> Result<PgSession, Error> {
        let builder = Socket::builder();
        let builder = if self.tls {
            builder.secure_transport(SecureTransport::StartTls)
        } else {
            builder
        };
        let socket = builder.connect(self.host.clone(), self.port).map_err(|e| {
            worker::console_error!("opening a socket to the database failed: {e}");
            unavailable("cannot reach the database")
        })?;
        let (done, ended) = futures_channel::oneshot::channel::<()>();
        let client = if self.tls {
            let (client, connection) = self
                .config
                .connect_raw(socket, PassthroughTls)
                .await
                .map_err(connect_error)?;
            drive(connection, done);
            client
        } else {
            let (client, connection) = self
                .config
                .connect_raw(socket, NoTls)
                .await
                .map_err(connect_error)?;
            drive(connection, done);
            client
        };
        Ok(PgSession { client, ended })
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

fn connect_error(error: tokio_postgres::Error) -> Error {
    worker::console_error!("connecting to the database failed: {error:?}");
    unavailable("cannot connect to the database")
}

fn unavailable(message: &'static str) -> Error {
    Error::new(message).with_status(StatusCode::SERVICE_UNAVAILABLE)
}

/// One request's PostgreSQL session: the client, and the end of the task
/// that drives its socket.
pub struct PgSession {
    client: Client,
    ended: futures_channel::oneshot::Receiver<()>,
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
