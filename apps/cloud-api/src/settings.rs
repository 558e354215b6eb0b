//! The service's configuration: flags, environment, defaults. One app value,
//! supplied to the registry at startup.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// How requests get a PostgreSQL connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DbMode {
    /// Lease a connection from a pool shared by all requests; it goes back
    /// to the pool when the request ends.
    Pool,
    /// Open a fresh connection on the request's first query and close it
    /// when the request ends: the Cloudflare Workers rule, and what a
    /// PgBouncer (transaction mode) or Hyperdrive deployment expects.
    PerRequest,
}

/// Database and server settings, from flags or the environment.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// PostgreSQL URL (postgres://user:password@host:port/db). Without it,
    /// the service uses an embedded SQLite database in --data-dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// PostgreSQL URL that migrations use, when --database-url goes through
    /// a transaction-mode pooler (PgBouncer): migrations hold a session
    /// lock, which needs a direct connection. Defaults to --database-url.
    #[arg(long, env = "MIGRATIONS_DATABASE_URL", hide_env_values = true)]
    pub migrations_database_url: Option<String>,

    /// Directory of the embedded SQLite database (used when no
    /// --database-url is given); created if missing.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// How requests get a PostgreSQL connection.
    #[arg(long, env = "DB_MODE", value_enum, default_value_t = DbMode::Pool)]
    pub db_mode: DbMode,

    /// Connections in the pool (pool mode).
    #[arg(long, env = "POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub pool_size: u32,

    /// Longest a request waits for a database connection before it gets a
    /// 503, e.g. `5s`, `500ms`.
    #[arg(long, env = "ACQUIRE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub acquire_timeout: Duration,

    /// Most database connections the list routes (`GET /api/users`,
    /// `/api/orgs`, `/api/orgs/{org_id}/members`, `/api/scopes`,
    /// `/api/scopes/{scope_id}/sources`) hold at once between them, so that
    /// a burst of lists cannot take every connection from single reads and
    /// writes; a list that gets none in time (twice --acquire-timeout for
    /// the whole acquisition) gets a 503.
    /// Defaults to half of --pool-size (at least 1) in pool mode, and to no
    /// cap in per-request mode, where there is no pool to keep connections
    /// for.
    #[arg(long, env = "LIST_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub list_connections: Option<u32>,

    /// Longest one SQL statement may run (PostgreSQL `statement_timeout`).
    #[arg(long, env = "STATEMENT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub statement_timeout: Duration,

    /// How long shutdown waits for in-flight requests before cutting them
    /// off.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Longest a request may run, from its arrival to its response's head
    /// (handler and commit); past it the request is stopped, its services
    /// released, and the client gets a 504.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Longest one service's settle step (a commit) or release step (a
    /// rollback, giving a connection back) may run; past it the step is
    /// abandoned, logged and counted (`provision_service_steps_abandoned_total`), and
    /// the others proceed. Above the statement timeout, so that a
    /// statement's own deadline (which cancels it cleanly) comes first.
    #[arg(long, env = "STEP_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub step_timeout: Duration,

    /// Longest a client may take to send a request head (on a new
    /// connection, or an idle kept-alive one); past it the connection is
    /// closed. Keeps idle and slowloris clients from holding connections.
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "BODY_LIMIT", default_value_t = 64 * 1024)]
    pub body_limit: usize,

    /// Keeps `GET /metrics` private: a scraper must send
    /// `Authorization: Bearer <this token>`, anyone else gets a 401.
    /// Without it, `/metrics` is open to whoever reaches the port.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// How often the token-expiry job runs (the Worker's is a daily cron
    /// trigger), e.g. `60m`.
    #[arg(long, env = "TOKEN_EXPIRY_INTERVAL", default_value = "60m", value_parser = parse_duration)]
    pub token_expiry_interval: Duration,

    /// Age in days after which an API token expires (is deleted by the
    /// token-expiry job).
    #[arg(long, env = "TOKEN_MAX_AGE_DAYS", default_value_t = crate::jobs::expire_tokens::DEFAULT_MAX_AGE_DAYS, value_parser = clap::value_parser!(i32).range(0..=36_500))]
    pub token_max_age_days: i32,
}
provision::supplied!(Settings);

impl Settings {
    /// Settings for tests and tools: defaults, no flags read.
    pub fn for_database(database_url: Option<String>, data_dir: PathBuf) -> Settings {
        Settings {
            listen: "127.0.0.1:0".parse().expect("a valid address"),
            database_url,
            migrations_database_url: None,
            data_dir,
            db_mode: DbMode::Pool,
            pool_size: 16,
            acquire_timeout: Duration::from_secs(5),
            list_connections: None,
            statement_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            step_timeout: Duration::from_secs(15),
            header_read_timeout: Duration::from_secs(10),
            body_limit: 64 * 1024,
            metrics_token: None,
            token_expiry_interval: Duration::from_secs(3600),
            token_max_age_days: crate::jobs::expire_tokens::DEFAULT_MAX_AGE_DAYS,
        }
    }

    /// The connections the list routes may hold at once: `--list-connections`,
    /// or half the pool in pool mode; `None` (no cap) in per-request mode
    /// unless the flag says otherwise: each request opens its own
    /// connection and takes none from single reads and writes, so a cap
    /// there would only queue lists behind one another, at a cost
    /// (bench/README.md, "Per-request mode: the users list at c = 32").
    pub fn list_connections(&self) -> Option<usize> {
        let cap = match (self.list_connections, self.db_mode) {
            (Some(cap), _) => cap,
            (None, DbMode::Pool) => self.pool_size / 2,
            (None, DbMode::PerRequest) => return None,
        };
        Some(usize::try_from(cap.max(1)).unwrap_or(usize::MAX))
    }

    /// The SQLite file used when there is no database URL.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("cloud-api.sqlite3")
    }
}

/// Parses `250ms`, `5s`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: write it like 500ms, 5s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => {
            return Err(format!(
                "`{text}` has an unknown unit `{unit}`: use ms, s or m"
            ));
        }
    };
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 86_400.0 {
        return Err(format!("`{text}` must be more than zero and at most a day"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_are_capped_at_half_the_pool_unless_there_is_no_pool_or_a_flag() {
        let mut settings = Settings::for_database(None, PathBuf::from("data"));
        settings.pool_size = 16;
        assert_eq!(settings.list_connections(), Some(8));
        settings.pool_size = 1;
        assert_eq!(settings.list_connections(), Some(1), "at least one");
        settings.db_mode = DbMode::PerRequest;
        assert_eq!(settings.list_connections(), None);
        settings.list_connections = Some(3);
        assert_eq!(settings.list_connections(), Some(3));
        settings.db_mode = DbMode::Pool;
        assert_eq!(settings.list_connections(), Some(3));
    }

    #[test]
    fn durations_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").unwrap_err().contains("more than zero"));
        assert!(parse_duration("5h").unwrap_err().contains("unknown unit"));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }
}
