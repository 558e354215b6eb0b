//! PostgreSQL's cancel request, sent the way libpq sends it: over a new
//! socket, then waiting until the other end closes that socket, which is
//! the protocol's only acknowledgement that the request was handled.
//!
//! tokio-postgres's own `CancelToken::cancel_query` closes its side as soon
//! as the request is written. A PgBouncer before 1.19.1 (Debian 12 ships
//! 1.18) that is still forwarding the request when its client goes away
//! frees that client twice and exits ("bad client state: 0",
//! pgbouncer#801): every connection through it is lost at once. Waiting for
//! the close also means the cancel has reached the server before the
//! connection it was meant for is closed or handed on.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio_postgres::{CancelToken, NoTls};

/// Sends `token`'s cancel request over `stream` (already connected to the
/// server or pooler the session was opened through, in plain text) and
/// waits until the other end closes it. Bound it with a timeout: a server
/// that never closes the socket keeps this waiting.
///
/// For a host that opens its own sockets (Cloudflare Workers'
/// `worker::Socket`), in place of `CancelToken::cancel_query_raw`.
pub async fn cancel_and_wait_for_close<S>(token: &CancelToken, mut stream: S) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    token
        .cancel_query_raw(KeepWriting(&mut stream), NoTls)
        .await
        .map_err(io::Error::other)?;
    // Nothing is ever sent back: read until the close.
    let mut sink = [0u8; 64];
    while stream.read(&mut sink).await? != 0 {}
    Ok(())
}

/// Passes everything through except the shutdown tokio-postgres does after
/// writing the request: a half-closed socket already reads as a departed
/// client to the pooler.
struct KeepWriting<'a, S>(&'a mut S);

impl<S: AsyncRead + Unpin> AsyncRead for KeepWriting<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for KeepWriting<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Where a native session's cancel request goes: the configuration's one
/// host. With several hosts we cannot tell which one the session reached,
/// so tokio-postgres's own cancel (which knows) is used instead.
#[cfg(feature = "tokio")]
#[derive(Clone, Debug)]
pub(crate) enum CancelAddress {
    Tcp(String, u16),
    #[cfg(unix)]
    Unix(std::path::PathBuf),
}

#[cfg(feature = "tokio")]
impl CancelAddress {
    pub(crate) fn of(config: &tokio_postgres::Config) -> Option<CancelAddress> {
        use tokio_postgres::config::Host;
        let port = match config.get_ports() {
            [] => 5432,
            [port] => *port,
            _ => return None,
        };
        if let [address] = config.get_hostaddrs() {
            return Some(CancelAddress::Tcp(address.to_string(), port));
        }
        match config.get_hosts() {
            [Host::Tcp(host)] => Some(CancelAddress::Tcp(host.clone(), port)),
            #[cfg(unix)]
            [Host::Unix(dir)] => Some(CancelAddress::Unix(dir.join(format!(".s.PGSQL.{port}")))),
            _ => None,
        }
    }

    /// Connects and sends the request (see [`cancel_and_wait_for_close`]).
    pub(crate) async fn cancel(&self, token: &CancelToken) -> io::Result<()> {
        match self {
            CancelAddress::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                cancel_and_wait_for_close(token, stream).await
            }
            #[cfg(unix)]
            CancelAddress::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path).await?;
                cancel_and_wait_for_close(token, stream).await
            }
        }
    }
}
