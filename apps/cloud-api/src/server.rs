//! Serving until SIGTERM or Ctrl-C, then shutting down in order: stop
//! accepting, let in-flight requests finish (up to the grace period), release
//! every request scope, then the app services (the pool last).

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::app::App;
use crate::deadline::{Bounded, Deadline};
use crate::settings::Settings;

/// Runs the service until `shutdown` resolves; returns once everything has
/// been released.
pub async fn serve(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let app = App::build(settings.clone()).await?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    let jobs = crate::jobs::start(&app.registry, &settings);
    let served = serve_on(listener, app, settings.shutdown_grace, shutdown).await;
    // Every path of `serve_on` shuts the registry down, which ends the
    // jobs' loop (a run in progress was cut and released with it).
    let _ = jobs.await;
    // Last, after the jobs: "shut down cleanly" is the final line of a
    // clean run's log, which the access-log test checks.
    if served.is_ok() {
        tracing::info!("shut down cleanly");
    }
    served
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
///
/// Every request runs within `--request-timeout` (from the [`Settings`] in
/// the app's registry). At shutdown, requests get `grace` to finish; those
/// still running then are cut (their clients get a JSON 503, their services
/// are released with `Exit::Shutdown`), and the releases get `grace` again.
pub async fn serve_on(
    listener: TcpListener,
    app: App,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (signalled, mut signal) = tokio::sync::oneshot::channel::<()>();
    let registry = app.registry.clone();
    // Copied out, not held: a handle kept here would outlive the app
    // services' release at shutdown (an escape).
    let (request_timeout, header_read_timeout) = match registry.app::<Settings>() {
        Some(settings) => (settings.request_timeout, settings.header_read_timeout),
        None => (DEFAULT_REQUEST_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT),
    };
    let (deadline, cut) = Deadline::new(request_timeout);
    // Outermost, around the whole router (not `Router::layer`, which would
    // wrap, clone and box each route per request): a request cut here drops
    // everything inside it, the request's scope included, which then
    // releases in the background.
    let service = deadline.bound(app.router);
    let mut server = tokio::spawn(accept(listener, service, header_read_timeout, async move {
        shutdown.await;
        let _ = signalled.send(());
    }));

    // 1. Serve until the signal (or until the server fails on its own).
    //    Biased: the signal is sent before axum starts draining, so when
    //    both are ready the server finished *because* of it, and that is a
    //    shutdown to drain, not a failure.
    tokio::select! {
        biased;
        _ = &mut signal => {}
        served = &mut server => {
            registry.shutdown().await;
            return match served {
                Ok(result) => Ok(result?),
                Err(e) => Err(e.into()),
            };
        }
    }

    // 2. Drain. The listener is closed; in-flight requests finish. The
    //    registry begins shutting down now, so a request cut off below
    //    releases with `Exit::Shutdown`, and app services wait for every
    //    request scope.
    tracing::info!(?grace, "shutting down: finishing in-flight requests");
    let released = tokio::spawn({
        let registry = registry.clone();
        async move { registry.shutdown().await }
    });
    match tokio::time::timeout(grace, &mut server).await {
        Ok(Ok(result)) => result?,
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => {
            tracing::warn!(
                ?grace,
                "requests outlived the grace period; cutting them off"
            );
            // Cut requests answer at once and their connections close; a
            // response body still streaming is not cut by the deadline
            // layer, so the server gets a short while more, then is
            // dropped (and with it those bodies, whose scopes then close).
            cut.cut();
            if tokio::time::timeout(CUT_ANSWERED, &mut server)
                .await
                .is_err()
            {
                server.abort();
                let _ = server.await;
            }
        }
    }

    // 3. Every scope releases (cut-off requests in the background), then
    //    the app services, the pool last.
    if tokio::time::timeout(grace, released).await.is_err() {
        tracing::error!("release did not finish within the grace period");
        return Err("shutdown: release did not finish within the grace period".into());
    }
    Ok(())
}

/// The request time bound when the registry has no [`Settings`] (the
/// `--request-timeout` default).
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The header read timeout when the registry has no [`Settings`] (the
/// `--header-read-timeout` default).
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections and serves each on its own task until `stop`
/// resolves, then waits for the open ones to finish (idle ones close at
/// once, busy ones after their response).
///
/// hyper directly rather than `axum::serve`, for one setting: a client must
/// send a request head within `header_read_timeout` (a connection that
/// sends nothing, or trickles its head a byte at a time, is closed), so
/// idle and slowloris clients cannot pile up until the server runs out of
/// file descriptors.
async fn accept(
    listener: TcpListener,
    service: Bounded<axum::Router>,
    header_read_timeout: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // TCP_NODELAY: a response's head and body are separate writes, and
        // with Nagle's algorithm the body waited for the client's delayed
        // ACK (40 ms per request in per-request mode, measured in bench/).
        let _ = tcp.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(service.clone());
        let connection =
            connections.watch(http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
    Ok(())
}

/// A failed accept: a connection reset before it was accepted is nothing;
/// anything else (out of file descriptors) is logged, and the loop pauses
/// so that it does not spin while connections close.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// How long cut requests get to answer and close their connections.
const CUT_ANSWERED: Duration = Duration::from_secs(1);

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is
/// called, not when the future is first polled, so a signal that arrives
/// once the server says it is listening is never missed. Call it inside
/// the runtime.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let terminate = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (terminate, interrupt) {
                (Ok(mut terminate), Ok(mut interrupt)) => tokio::select! {
                    _ = terminate.recv() => tracing::info!("SIGTERM received"),
                    _ = interrupt.recv() => tracing::info!("Ctrl-C received"),
                },
                _ => {
                    tracing::warn!("cannot install signal handlers; stop the process with SIGKILL");
                    std::future::pending::<()>().await
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C received");
    }
}
