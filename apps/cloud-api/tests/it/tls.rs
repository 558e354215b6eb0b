//! `sslmode` and `channel_binding` natively. cloud-api connects without TLS
//! (tokio-postgres' `NoTls`), so the settings that ask for TLS must refuse to
//! start, saying why, rather than fail later with a vague error or, worse,
//! connect in plain text; `prefer` (the default) and `disable` connect in
//! plain text, as `pg_stat_ssl` shows, against a server with `ssl = on`.

use std::sync::OnceLock;
use std::time::Duration;

use cloud_api::store::{Database, PostgresMode, StoreError};
use throwaway_postgres::{Certificates, Cluster, ClusterOptions};

/// One cluster with TLS on, for every test here.
fn ssl_cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let certificates =
            Certificates::generate("IP:127.0.0.1").expect("openssl makes certificates");
        ClusterOptions::new()
            .max_connections(20)
            .ssl(certificates.server_pem, certificates.server_key_pem)
            .start()
            .expect("a cluster with ssl = on")
    })
}

fn open(url: &str, mode: PostgresMode) -> Result<Database, StoreError> {
    Database::connect_postgres(
        url,
        mode,
        2,
        Duration::from_secs(2),
        Duration::from_secs(10),
    )
}

#[tokio::test]
async fn settings_that_need_tls_refuse_to_start_and_say_why() {
    let cluster = ssl_cluster();
    let db = cluster.create_database().unwrap();
    let base = cluster.url(&db);
    for (setting, named) in [
        ("sslmode=require", "sslmode=require"),
        ("sslmode=verify-ca", "sslmode=verify-ca"),
        ("sslmode=verify-full", "sslmode=verify-full"),
        ("channel_binding=require", "channel_binding=require"),
    ] {
        for mode in [PostgresMode::PerRequest, PostgresMode::Pool] {
            let url = format!("{base}?{setting}");
            match open(&url, mode) {
                Err(StoreError::Misconfigured(message)) => {
                    assert!(
                        message.contains(named) && message.contains("without TLS"),
                        "{setting} ({mode:?}): the message must name the setting and say \
                         cloud-api connects without TLS, got: {message}"
                    );
                    assert!(
                        !message.contains("127.0.0.1"),
                        "the message must not echo the URL: {message}"
                    );
                }
                Err(other) => panic!("{setting} ({mode:?}): expected Misconfigured, got {other:?}"),
                Ok(database) => {
                    let outcome = database.acquire().await.map(|_| ());
                    panic!("{setting} ({mode:?}) was accepted at startup; acquire gave {outcome:?}")
                }
            }
        }
    }
}

#[tokio::test]
async fn prefer_and_disable_connect_in_plain_text() {
    let cluster = ssl_cluster();
    let db = cluster.create_database().unwrap();
    let base = cluster.url(&db);
    for query in [
        "",
        "?sslmode=prefer",
        "?sslmode=disable",
        "?channel_binding=prefer",
    ] {
        let url = format!("{base}{query}");
        let database = open(&url, PostgresMode::PerRequest).unwrap();
        let connection = database
            .acquire()
            .await
            .unwrap_or_else(|e| panic!("{query:?}: {e:?}"));
        // The server's own view of the service's session while it is open.
        let sessions = cluster
            .psql(
                "postgres",
                &format!(
                    "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                     WHERE a.application_name = 'cloud-api' AND a.datname = '{db}'"
                ),
            )
            .unwrap();
        assert_eq!(
            sessions.trim(),
            "f",
            "{query:?}: one session, not encrypted"
        );
        connection.close().await;
    }
}
