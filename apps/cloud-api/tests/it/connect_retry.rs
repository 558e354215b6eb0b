//! Transient connect failures are retried with backoff before a request
//! fails: a proxy in front of PostgreSQL resets the first connections in
//! the startup handshake, or refuses them until it starts listening. The
//! request still succeeds; only connecting was repeated, never a query.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::support::TestApp;
use cloud_api::settings::{DbMode, Settings};
use tokio::net::{TcpListener, TcpStream};
use tracing_subscriber::layer::SubscriberExt;

/// A proxy to PostgreSQL that resets connections (an RST during the
/// startup handshake) while `resets` is above zero, counting down, and
/// forwards the rest. Counts every connection in `seen`.
async fn proxy(
    listener: TcpListener,
    upstream: SocketAddr,
    resets: Arc<AtomicU32>,
    seen: Arc<AtomicU32>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        seen.fetch_add(1, Ordering::SeqCst);
        if resets
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            // Zero linger sends an RST at once; the deprecation is about
            // a non-zero linger blocking the thread on drop.
            #[allow(deprecated)]
            let _ = client.set_linger(Some(Duration::ZERO));
            drop(client);
            continue;
        }
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            let mut client = client;
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
    }
}

struct Proxied {
    app: TestApp,
    resets: Arc<AtomicU32>,
    seen: Arc<AtomicU32>,
    token: String,
}

/// The service on a fresh database, reaching it through the proxy, with
/// `resets` connections reset from the very start (startup included).
async fn through_proxy(mode: DbMode, resets: u32) -> Proxied {
    let cluster = throwaway_postgres::shared();
    let db = cluster.create_database().unwrap();
    let upstream: SocketAddr = format!("127.0.0.1:{}", cluster.port()).parse().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    let (resets, seen) = (
        Arc::new(AtomicU32::new(resets)),
        Arc::new(AtomicU32::new(0)),
    );
    tokio::spawn(proxy(listener, upstream, resets.clone(), seen.clone()));
    let url = cluster.url(&db).replace(
        &format!("127.0.0.1:{}", cluster.port()),
        &proxy_addr.to_string(),
    );
    let mut settings = Settings::for_database(Some(url), "unused".into());
    settings.db_mode = mode;
    settings.acquire_timeout = Duration::from_secs(3);
    let app = TestApp::start_with(settings, Box::new(()), |s| s).await;
    let (_, token) = app.user("Ada", "ada@example.com").await;
    Proxied {
        app,
        resets,
        seen,
        token,
    }
}

#[tokio::test]
async fn a_request_whose_connects_are_reset_still_succeeds() {
    let p = through_proxy(DbMode::PerRequest, 0).await;
    let before = p.seen.load(Ordering::SeqCst);
    p.resets.store(2, Ordering::SeqCst);

    p.app
        .get("/api/users", &[], Some(&p.token))
        .await
        .expect(200);

    assert_eq!(p.resets.load(Ordering::SeqCst), 0, "both resets were hit");
    assert_eq!(
        p.seen.load(Ordering::SeqCst) - before,
        3,
        "two resets, then the connection that worked"
    );
    p.app.stop().await;
}

#[tokio::test]
async fn startup_and_the_pool_ride_out_resets() {
    let p = through_proxy(DbMode::Pool, 3).await;

    p.app
        .get("/api/users", &[], Some(&p.token))
        .await
        .expect(200);

    assert_eq!(p.resets.load(Ordering::SeqCst), 0);
    assert!(p.seen.load(Ordering::SeqCst) >= 4);
    p.app.stop().await;
}

#[tokio::test]
async fn bad_credentials_are_not_retried() {
    let cluster = throwaway_postgres::shared();
    let db = cluster.create_database().unwrap();
    let url = cluster
        .url(&db)
        .replace("postgres://postgres@", "postgres://nobody_here@");
    let database = cloud_api::store::Database::connect_postgres(
        &url,
        cloud_api::store::PostgresMode::PerRequest,
        1,
        Duration::from_secs(3),
        Duration::from_secs(3),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let error = database.acquire().await.map(|_| ()).unwrap_err();
    assert!(
        matches!(error, cloud_api::store::StoreError::Unavailable(_)),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "retried a final error: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_refused_connect_is_retried_until_the_database_listens() {
    let cluster = throwaway_postgres::shared();
    let db = cluster.create_database().unwrap();
    let upstream: SocketAddr = format!("127.0.0.1:{}", cluster.port()).parse().unwrap();
    // Reserve a port and leave it closed: connects to it are refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    // The port opens once startup has seen a refusal and is retrying (the
    // retry's log event), not after a guessed delay that a slow start
    // could outlast, leaving nothing refused and nothing retried.
    let retrying = Arc::new(tokio::sync::Notify::new());
    let _events = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(OnRetry(retrying.clone())),
    );
    let seen = Arc::new(AtomicU32::new(0));
    let opener = {
        let seen = seen.clone();
        tokio::spawn(async move {
            retrying.notified().await;
            let listener = TcpListener::bind(port).await.unwrap();
            proxy(listener, upstream, Arc::new(AtomicU32::new(0)), seen).await;
        })
    };
    let url = cluster
        .url(&db)
        .replace(&format!("127.0.0.1:{}", cluster.port()), &port.to_string());
    let mut settings = Settings::for_database(Some(url), "unused".into());
    settings.db_mode = DbMode::PerRequest;
    settings.acquire_timeout = Duration::from_secs(3);

    // Startup's first connects are refused; it retries until the proxy
    // listens, then migrates through it.
    let app = TestApp::start_with(settings, Box::new(()), |s| s).await;
    let (_, token) = app.user("Ada", "ada@example.com").await;
    app.get("/api/users", &[], Some(&token)).await.expect(200);
    assert!(seen.load(Ordering::SeqCst) >= 2);
    app.stop().await;
    opener.abort();
}

/// Wakes the test when provision-postgres logs a retry of a refused
/// connect.
struct OnRetry(Arc<tokio::sync::Notify>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for OnRetry {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        if message.0 == "transient connect failure; retrying" {
            // A permit is kept if the opener is not waiting yet.
            self.0.notify_one();
        }
    }
}
