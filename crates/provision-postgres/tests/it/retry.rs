//! A transient connect failure (a proxy that resets the first connection
//! during the startup handshake, as Hyperdrive sometimes does) is retried:
//! the request still succeeds, having connected twice.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use provision_postgres::{Mode, PgOptions};
use reqwest::StatusCode;
use tokio::net::{TcpListener, TcpStream};

use crate::support::Harness;

/// Resets the first `resets` connections (an RST at once), forwards the
/// rest to `upstream`; counts every connection in `seen`.
async fn proxy(upstream: SocketAddr, resets: u32, seen: Arc<AtomicU32>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let resets = AtomicU32::new(resets);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            if resets
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                // Zero linger sends an RST; the deprecation is about a
                // non-zero linger blocking the thread on drop.
                #[allow(deprecated)]
                let _ = client.set_linger(Some(Duration::ZERO));
                drop(client);
                continue;
            }
            tokio::spawn(async move {
                if let Ok(mut server) = TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    addr
}

async fn a_reset_first_connect_is_retried(mode: Mode) {
    let port = throwaway_postgres::shared().port();
    let upstream: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let seen = Arc::new(AtomicU32::new(0));
    let proxied = proxy(upstream, 1, seen.clone()).await;
    let h = Harness::start_with(
        mode,
        PgOptions::default().acquire_timeout(Duration::from_secs(3)),
        |url| url.replace(&format!("127.0.0.1:{port}"), &proxied.to_string()),
    )
    .await;
    let response = reqwest::Client::new()
        .post(h.url("/items/ada"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(h.rows("items").await, 1);
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_first_connect_is_retried_with_a_pool() {
    a_reset_first_connect_is_retried(Mode::Pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_first_connect_is_retried_per_request() {
    a_reset_first_connect_is_retried(Mode::PerRequest).await;
}
