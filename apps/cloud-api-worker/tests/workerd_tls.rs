//! `sslmode` and `channel_binding` on Cloudflare Workers: the Worker's build
//! served by workerd against a throwaway PostgreSQL with `ssl = on` and a
//! certificate signed by a CA this test makes (trusted through workerd's
//! network service, `tlsOptions.trustedCertificates`), and against one
//! without TLS. `pg_stat_ssl`, read while a request holds its connection,
//! says whether the Worker's session was encrypted.
//!
//! * `prefer` (the default): TLS when the server offers it; plain text when
//!   it does not, or when workerd refuses its certificate (libpq's `prefer`
//!   retries without TLS too);
//! * `disable`: plain text, even with a server that offers TLS;
//! * `require`, `verify-ca`, `verify-full`: TLS with a trusted certificate
//!   naming the host; a `503` with a JSON error saying what to do when the
//!   server offers no TLS, the certificate is not trusted, or it names
//!   another host (workerd verifies chain and host name in every mode);
//! * `channel_binding=require`: a `503` naming `channel_binding=prefer`,
//!   without connecting.
//!
//! Run by `scripts/test-worker` (it provides `WORKERD` and the build);
//! `cargo test` alone lists these as ignored.

mod support;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Options, TestDb, Workerd, env_path, migrated_db};
use throwaway_postgres::{Certificates, Cluster, ClusterOptions};

/// The host name the test certificate is issued for; `127.0.0.1` reaches
/// the same server under a name the certificate does not carry.
const CERTIFIED_HOST: &str = "localhost";

// ---------------------------------------------------------------------------
// What scripts/test-worker provides, and the servers

struct Setup {
    workerd: PathBuf,
    build: PathBuf,
}

fn setup() -> Setup {
    Setup {
        workerd: env_path("WORKERD"),
        build: env_path("CLOUD_API_WORKER_BUILD"),
    }
}

/// The CA and certificate of the TLS server.
fn certificates() -> &'static Certificates {
    static CERTIFICATES: OnceLock<Certificates> = OnceLock::new();
    CERTIFICATES.get_or_init(|| {
        Certificates::generate(&format!("DNS:{CERTIFIED_HOST}")).expect("openssl makes a CA")
    })
}

/// A PostgreSQL with `ssl = on`, shared by the tests here.
fn tls_server() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let certificates = certificates();
        ClusterOptions::new()
            .max_connections(40)
            .ssl(
                certificates.server_pem.clone(),
                certificates.server_key_pem.clone(),
            )
            .start()
            .expect("a cluster with ssl = on")
    })
}

/// A PostgreSQL without TLS.
fn plain_server() -> &'static Cluster {
    throwaway_postgres::shared()
}

impl TestDb {
    /// The database URL on `host` with `query` appended (`?sslmode=...`).
    fn url(&self, host: &str, query: &str) -> String {
        let url = self.url.replace("127.0.0.1", host);
        format!("{url}{query}")
    }

    /// Whether the Worker's session was encrypted, per `pg_stat_ssl`: a
    /// request's connection is held open by a lock on `users` taken here,
    /// read, then the lock is released and the request must answer 200.
    async fn worker_session_encrypted(&self, workerd: &Workerd) -> bool {
        let (locker, connection) =
            tokio_postgres::connect(&self.cluster.url(&self.name), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        locker
            .batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        let request = tokio::spawn(users(workerd.url("/api/users"), self.token.clone()));
        let sql = format!(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'cloud-api-worker' AND a.datname = '{}' \
             AND a.wait_event_type = 'Lock'",
            self.name
        );
        let started = Instant::now();
        let encrypted = loop {
            let rows = self.cluster.psql("postgres", &sql).unwrap();
            match rows.trim() {
                "t" => break true,
                "f" => break false,
                "" => {}
                other => panic!("expected one waiting session of the Worker, got {other:?}"),
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no session of the Worker waited on the lock within 10 s:\n{}",
                workerd.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        locker.batch_execute("ROLLBACK").await.unwrap();
        let (status, body) = request.await.unwrap();
        assert_eq!(status, 200, "GET /api/users once unblocked: {body}");
        encrypted
    }
}

/// `GET url` with the token: the status and the JSON body.
async fn users(url: String, token: String) -> (u16, Value) {
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("workerd answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("the answer ({status}) is not JSON: {text}"));
    (status, body)
}

/// Asserts `GET /api/users` answers 503 with a JSON error containing each
/// of `needles`, and returns the message.
async fn assert_503(db: &TestDb, workerd: &Workerd, needles: &[&str]) -> String {
    let (status, body) = users(workerd.url("/api/users"), db.token.clone()).await;
    assert_eq!(status, 503, "{body}");
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {body}"))
        .to_owned();
    for needle in needles {
        assert!(
            message.contains(needle),
            "the message should contain {needle:?}: {message}"
        );
    }
    message
}

// ---------------------------------------------------------------------------
// workerd

impl Workerd {
    /// workerd serving the build with `DATABASE_URL`, trusting the test CA
    /// or not.
    async fn start(database_url: &str, trust_test_ca: bool) -> Workerd {
        let setup = setup();
        let options = Options {
            trusted_ca: trust_test_ca.then(|| certificates().ca_pem.as_str()),
            ..Options::default()
        };
        Workerd::serve(&setup.workerd, &setup.build, database_url, options).await
    }
}

// ---------------------------------------------------------------------------
// The tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn prefer_encrypts_when_the_server_offers_tls_and_disable_never_does() {
    let db = migrated_db(tls_server()).await;
    for (query, encrypted) in [
        ("", true),
        ("?sslmode=prefer", true),
        ("?sslmode=disable", false),
    ] {
        let workerd = Workerd::start(&db.url(CERTIFIED_HOST, query), true).await;
        assert_eq!(
            db.worker_session_encrypted(&workerd).await,
            encrypted,
            "sslmode from {query:?}: encrypted per pg_stat_ssl"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn prefer_stays_plain_without_tls_or_with_a_certificate_workerd_refuses() {
    let plain = migrated_db(plain_server()).await;
    let workerd = Workerd::start(&plain.url("127.0.0.1", ""), true).await;
    assert!(
        !plain.worker_session_encrypted(&workerd).await,
        "a server without TLS: plain text"
    );
    drop(workerd);

    // The CA is not trusted: the handshake fails, and prefer retries
    // without TLS, as libpq does.
    let tls = migrated_db(tls_server()).await;
    let workerd = Workerd::start(&tls.url(CERTIFIED_HOST, "?sslmode=prefer"), false).await;
    assert!(
        !tls.worker_session_encrypted(&workerd).await,
        "an untrusted certificate under prefer: plain text"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn require_and_verify_modes_encrypt_with_a_trusted_certificate() {
    let db = migrated_db(tls_server()).await;
    for mode in ["require", "verify-ca", "verify-full"] {
        let url = db.url(CERTIFIED_HOST, &format!("?sslmode={mode}"));
        let workerd = Workerd::start(&url, true).await;
        assert!(
            db.worker_session_encrypted(&workerd).await,
            "sslmode={mode}: encrypted per pg_stat_ssl"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn require_and_verify_modes_answer_503_when_tls_cannot_be_had() {
    // No TLS on the server.
    let plain = migrated_db(plain_server()).await;
    for mode in ["require", "verify-full"] {
        let workerd =
            Workerd::start(&plain.url("127.0.0.1", &format!("?sslmode={mode}")), true).await;
        assert_503(
            &plain,
            &workerd,
            &["does not offer TLS", &format!("sslmode={mode}")],
        )
        .await;
    }

    let tls = migrated_db(tls_server()).await;
    // A host name the certificate does not carry.
    let workerd = Workerd::start(&tls.url("127.0.0.1", "?sslmode=verify-full"), true).await;
    let message = assert_503(&tls, &workerd, &["TLS handshake", "sslmode=verify-full"]).await;
    assert!(
        !message.contains("127.0.0.1"),
        "the client's message names no host: {message}"
    );
    drop(workerd);
    // A CA workerd does not trust, even for require.
    let workerd = Workerd::start(&tls.url(CERTIFIED_HOST, "?sslmode=require"), false).await;
    assert_503(&tls, &workerd, &["TLS handshake", "sslmode=require"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/test-worker"]
async fn channel_binding_require_answers_503_naming_what_to_use() {
    let db = migrated_db(tls_server()).await;
    let url = db.url(
        CERTIFIED_HOST,
        "?sslmode=verify-full&channel_binding=require",
    );
    let workerd = Workerd::start(&url, true).await;
    let sessions_before = db.sessions().await;
    assert_503(
        &db,
        &workerd,
        &["channel_binding=require", "channel_binding=prefer"],
    )
    .await;
    assert_eq!(
        db.sessions().await,
        sessions_before,
        "refused before connecting: no session opened"
    );
    drop(workerd);

    // prefer (what the message suggests) works, over TLS.
    let url = db.url(
        CERTIFIED_HOST,
        "?sslmode=verify-full&channel_binding=prefer",
    );
    let workerd = Workerd::start(&url, true).await;
    assert!(db.worker_session_encrypted(&workerd).await);
}

impl TestDb {
    /// Sessions ever opened on this database (`pg_stat_database`), once
    /// every session on it has ended: a backend reports its statistics as
    /// it exits, so waiting (at most ten seconds) makes the count final.
    async fn sessions(&self) -> i64 {
        let open = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}'",
            self.name
        );
        let started = Instant::now();
        while self.cluster.psql("postgres", &open).unwrap().trim() != "0" {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "sessions on the test database did not end"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let sql = format!(
            "SELECT pg_stat_clear_snapshot(); SELECT sessions FROM pg_stat_database WHERE datname = '{}'",
            self.name
        );
        let out = self.cluster.psql("postgres", &sql).unwrap();
        out.lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}
