//! Serving until SIGTERM or Ctrl-C, then shutting down in order: stop
//! accepting, let in-flight requests finish (up to the grace period), release
//! every request scope, then the app services (the pool last).

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::app::App;
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
    served
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve_on(
    listener: TcpListener,
    app: App,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (signalled, mut signal) = tokio::sync::oneshot::channel::<()>();
    let registry = app.registry.clone();
    let mut server = tokio::spawn(
        // TCP_NODELAY: a response's head and body are separate writes, and
        // with Nagle's algorithm the body waited for the client's delayed
        // ACK (40 ms per request in per-request mode, measured in bench/).
        axum::serve(
            axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            }),
            app.router,
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = signalled.send(());
        })
        .into_future(),
    );

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
            server.abort();
            let _ = server.await;
        }
    }

    // 3. Every scope releases (cut-off requests in the background), then
    //    the app services, the pool last.
    if tokio::time::timeout(grace, released).await.is_err() {
        tracing::error!("release did not finish within the grace period");
        return Err("shutdown: release did not finish within the grace period".into());
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

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
