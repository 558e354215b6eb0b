//! The database everything runs against: a throwaway PostgreSQL cluster,
//! cloud-api's schema (applied by `cloud-api migrate`), 10,000 users, one
//! organisation, and an API token (made by `cloud-api token create`).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use throwaway_postgres::{Cluster, ClusterOptions};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

use crate::tools::{output, release_binary};
use crate::{BoxError, say};

/// Users seeded before anything runs; the writes of a run are deleted after it.
pub const SEED_USERS: i64 = 10_000;
/// `GET /api/users/{id}` asks for this one.
pub const GET_ID: i64 = 4_242;
/// The one seeded user outside the bench organisation: another tenant's
/// user, whom the token's user may not see (the contract check asks).
pub const OUTSIDER_ID: i64 = SEED_USERS;
/// A login role that must authenticate with SCRAM-SHA-256.
pub const SCRAM_USER: &str = "bench_scram";
pub const SCRAM_PASSWORD: &str = "bench-scram-password";
/// Enough for 256 per-request connections from a server plus pgbench's 256
/// plus pools and the monitor, with room to spare.
pub const MAX_CONNECTIONS: u32 = 1000;

/// The running database and what was seeded in it.
pub struct Env {
    pub cluster: Cluster,
    pub db: String,
    /// `postgres` (trust) over TCP.
    pub url: String,
    /// The SCRAM user over TCP.
    pub scram_url: String,
    pub token: String,
    pub token_id: i64,
    pub user_id: i64,
    pub server_version: String,
    monitor: tokio_postgres::Client,
    monitor_task: JoinHandle<()>,
}

impl Env {
    /// Starts the cluster and prepares the database.
    pub async fn start(root: &Path, _tmp: &Path, started: Instant) -> Result<Env, BoxError> {
        let cluster = ClusterOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .scram_user(SCRAM_USER, SCRAM_PASSWORD)
            .start()?;
        let db = cluster.create_database()?;
        let url = cluster.url(&db);
        let scram_url = cluster.url_as(SCRAM_USER, SCRAM_PASSWORD, &db);
        let cloud_api = release_binary(root, "cloud-api");
        output(
            Command::new(&cloud_api)
                .args(["migrate", "--database-url", &url])
                .env("RUST_LOG", "warn"),
        )?;
        cluster.psql(
            &db,
            &format!(
                "INSERT INTO users (name, email) \
                 SELECT 'User ' || g, 'user' || g || '@bench.example' FROM generate_series(1, {SEED_USERS}) g;"
            ),
        )?;
        let token = output(
            Command::new(&cloud_api)
                .args([
                    "token",
                    "create",
                    "--email",
                    "user1@bench.example",
                    "--database-url",
                    &url,
                ])
                .env("RUST_LOG", "warn"),
        )?
        .trim()
        .to_owned();
        let token_id: i64 = token
            .strip_prefix("pv_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| format!("`cloud-api token create` printed {token:?}, not a token"))?;
        // The caller belongs to one organisation, so the memberships query
        // of authentication returns a row, as it would in real use; every
        // seeded user is a member too, so the caller may see all of them
        // (the users endpoints show only those who share an organisation).
        cluster.psql(
            &db,
            &format!(
                "INSERT INTO organisations (name) VALUES ('Bench org');\n\
                 INSERT INTO memberships (org_id, user_id, role) \
                   SELECT o.id, u.id, CASE WHEN u.id = 1 THEN 'admin' ELSE 'member' END \
                   FROM organisations o CROSS JOIN users u WHERE u.id < {OUTSIDER_ID};\n\
                 VACUUM ANALYZE;"
            ),
        )?;
        let (monitor, connection) = tokio_postgres::connect(&url, NoTls).await?;
        let monitor_task = tokio::spawn(async move {
            let _ = connection.await;
        });
        let server_version = monitor
            .query_one("SHOW server_version", &[])
            .await?
            .get::<_, String>(0);
        say(
            started,
            format!(
                "PostgreSQL {server_version} on 127.0.0.1:{}, database {db}, {SEED_USERS} users, token id {token_id}",
                cluster.port()
            ),
        );
        Ok(Env {
            cluster,
            db,
            url,
            scram_url,
            token,
            token_id,
            user_id: 1,
            server_version,
            monitor,
            monitor_task,
        })
    }

    /// What was seeded, for the report.
    pub fn seed_summary(&self) -> String {
        format!(
            "{SEED_USERS} users; one organisation with every seeded user but the last in it, the token's user (id {}) as admin; \
             API token id {} made by `cloud-api token create`",
            self.user_id, self.token_id
        )
    }

    /// Sessions ever opened on the database (`pg_stat_database.sessions`).
    pub async fn sessions(&self) -> Result<i64, BoxError> {
        let row = self
            .monitor
            .query_one(
                "SELECT sessions FROM pg_stat_database WHERE datname = $1",
                &[&self.db],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Client backends connected to the database now, by application name
    /// (`pg_stat_activity`).
    pub async fn backends(&self) -> Result<HashMap<String, i64>, BoxError> {
        let rows = self
            .monitor
            .query(
                "SELECT coalesce(application_name, ''), count(*) FROM pg_stat_activity \
                 WHERE datname = $1 AND backend_type = 'client backend' GROUP BY 1",
                &[&self.db],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
            .collect())
    }

    /// Deletes the users a run created and vacuums, so every run starts from
    /// the same table.
    pub async fn reset_users(&self) -> Result<(), BoxError> {
        self.monitor
            .batch_execute(&format!("DELETE FROM users WHERE id > {SEED_USERS}"))
            .await?;
        self.monitor.batch_execute("VACUUM ANALYZE users").await?;
        Ok(())
    }

    /// Stops the cluster and removes its directory.
    pub fn stop(self) {
        self.monitor_task.abort();
        drop(self.monitor);
        drop(self.cluster);
    }
}
