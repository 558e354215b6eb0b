//! The cancel request waits for the other end to close the socket, the way
//! libpq's does: a pooler that is still forwarding it must not see its
//! client leave first (PgBouncer 1.18 exits then; see `pooler.rs`).

use futures_util::FutureExt;
use provision_postgres::cancel_and_wait_for_close;
use tokio::io::AsyncReadExt;

/// PostgreSQL's code for a cancel request (the protocol's `CancelRequest`).
const CANCEL_REQUEST_CODE: i32 = 80877102;

#[tokio::test(flavor = "current_thread")]
async fn a_cancel_request_names_the_session_and_waits_for_the_close() {
    let cluster = throwaway_postgres::shared();
    let url = cluster.url("postgres");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("a session");
    tokio::spawn(connection);
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("the backend's pid")
        .get(0);

    // One end is the "server"; the other goes to the cancel request.
    let (ours, mut server) = tokio::io::duplex(64);
    let token = client.cancel_token();
    let sent = tokio::spawn(async move { cancel_and_wait_for_close(&token, ours).await });

    let mut request = [0u8; 16];
    server.read_exact(&mut request).await.expect("the request");
    let field = |i: usize| i32::from_be_bytes(request[i..i + 4].try_into().unwrap());
    assert_eq!(field(0), 16, "the request's length");
    assert_eq!(field(4), CANCEL_REQUEST_CODE);
    assert_eq!(field(8), pid, "the request names this session's backend");

    // On this one-thread runtime the sender ran as far as it could before
    // the read above returned: it has neither closed its side nor finished.
    let mut more = [0u8; 1];
    let read = server.read(&mut more).now_or_never();
    assert!(read.is_none(), "the sender closed its side first: {read:?}");
    assert!(!sent.is_finished());

    drop(server);
    let outcome = sent.await.expect("the sender did not panic");
    assert!(outcome.is_ok(), "{outcome:?}");
}
