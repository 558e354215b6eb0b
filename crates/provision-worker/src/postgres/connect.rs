//! [`PgTarget`] as provision-postgres's [`Connect`]: a socket and a session
//! per request, with a cancel request for statements past their deadline.

use std::sync::Arc;

use provision_postgres::{
    Connect, Connected, Connecting, PgOptions, Postgres, cancel_and_wait_for_close,
};
use tokio_postgres::CancelToken;
use worker::SecureTransport;
use worker::postgres_tls::PassthroughTls;
use worker::send::SendFuture;

use super::{PgTarget, WorkersTimer};

impl PgTarget {
    /// A [`Postgres`] that connects each request that asks through this
    /// target, with `options`' acquire and statement timeouts and
    /// [`WorkersTimer`] as its clock (the options' own timer is replaced:
    /// tokio's cannot run here). Transient connect failures (refused, reset,
    /// closed before the session started) are retried within the acquire
    /// timeout; TLS settings Workers cannot honour fail at once with
    /// [`ErrorKind::Misconfigured`](provision_postgres::ErrorKind::Misconfigured).
    pub fn postgres(self, options: PgOptions) -> Postgres {
        Postgres::with_connector(self, options.timer(Arc::new(WorkersTimer)))
    }

    /// Sends PostgreSQL's cancel request for `token`'s session over a new
    /// socket, the way the session itself was opened. In plain text it then
    /// waits for the other end to close the socket, as libpq does (a
    /// PgBouncer before 1.19.1 exits when a cancelling client leaves first;
    /// see `provision_postgres::cancel_and_wait_for_close`). Over TLS the
    /// socket is closed once the request is written: `PassthroughTls`
    /// takes the socket by value. Failures are only logged: the connection
    /// is closed afterwards anyway.
    async fn cancel(&self, token: CancelToken, starttls: bool) {
        let sent = if starttls {
            match self.socket(SecureTransport::StartTls) {
                Ok(socket) => token
                    .cancel_query_raw(socket, PassthroughTls)
                    .await
                    .map_err(|e| e.to_string()),
                Err(_) => return,
            }
        } else {
            match self.socket(SecureTransport::Off) {
                Ok(socket) => cancel_and_wait_for_close(&token, socket)
                    .await
                    .map_err(|e| e.to_string()),
                Err(_) => return,
            }
        };
        if let Err(error) = sent {
            worker::console_warn!("cancelling a statement past its deadline failed: {error:?}");
        }
    }
}

impl Connect for PgTarget {
    /// Opens a socket and a session for the current request (see
    /// [`PgTarget::connect`]); the connection is closed, and its socket
    /// with it, when the request's `PgConnection` is.
    fn connect(&self) -> Connecting<'_> {
        Box::pin(SendFuture::new(async move {
            let session = self.open().await?;
            let starttls = session.starttls;
            let (client, ended) = session.into_parts();
            let token = client.cancel_token();
            let target = self.clone();
            Ok(Connected::new(client, ended).on_cancel(move || {
                let (target, token) = (target.clone(), token.clone());
                SendFuture::new(async move { target.cancel(token, starttls).await })
            }))
        }))
    }
}
