//! The `migrate` and `token create` commands.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::domain::NewUser;
use crate::services::db;
use crate::settings::{Settings, parse_duration};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The settings of the commands that only touch the database (`migrate`,
/// `token create`): their `--help` lists these, and a server flag
/// (`--listen`, `--pool-size`...) is refused rather than ignored. The same
/// names, environment variables and defaults as [`Settings`].
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL (postgres://user:password@host:port/db). Without it,
    /// the embedded SQLite database in --data-dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// PostgreSQL URL that migrations use, when --database-url goes through
    /// a transaction-mode pooler (PgBouncer). Defaults to --database-url.
    #[arg(long, env = "MIGRATIONS_DATABASE_URL", hide_env_values = true)]
    pub migrations_database_url: Option<String>,

    /// Directory of the embedded SQLite database (used when no
    /// --database-url is given); created if missing.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Longest the command waits for a database connection, e.g. `5s`.
    #[arg(long, env = "ACQUIRE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub acquire_timeout: Duration,

    /// Longest one SQL statement may run (PostgreSQL `statement_timeout`).
    #[arg(long, env = "STATEMENT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub statement_timeout: Duration,
}

impl DatabaseArgs {
    /// The service's settings with these database settings: the rest are
    /// defaults, which these commands do not use. One connection is enough.
    pub fn settings(&self) -> Settings {
        let mut settings = Settings::for_database(self.database_url.clone(), self.data_dir.clone());
        settings.migrations_database_url = self.migrations_database_url.clone();
        settings.acquire_timeout = self.acquire_timeout;
        settings.statement_timeout = self.statement_timeout;
        settings.pool_size = 1;
        settings
    }
}

/// Applies migrations to the configured database.
pub async fn migrate(settings: &Settings) -> Result<(), BoxError> {
    let database = db::open(settings)?;
    database.migrate().await?;
    database.close();
    eprintln!("migrations applied");
    Ok(())
}

/// Creates a token for the user with `email` (creating the user with `name`
/// if there is none) and prints it on stdout, once.
pub async fn create_token(
    settings: &Settings,
    email: &str,
    name: Option<&str>,
) -> Result<(), BoxError> {
    let database = db::open(settings)?;
    database.migrate().await?;
    let connection = database.acquire().await?;
    let default_name = email.split('@').next().unwrap_or(email);
    let new = NewUser {
        name: name.unwrap_or(default_name).trim().to_owned(),
        email: email.trim().to_owned(),
    };
    new.validate()?;
    let outcome = async {
        connection.begin().await?;
        let (user, created) = connection.find_or_create_user(&new).await?;
        let token = connection.create_token(user.id).await?;
        connection.commit().await?;
        Ok::<_, crate::store::StoreError>((user, created, token))
    }
    .await;
    connection.close().await;
    database.close();
    let (user, created, token) = outcome?;
    eprintln!(
        "{} user {} <{}> (id {}); the token below is shown once:",
        if created { "created" } else { "found" },
        user.name,
        user.email,
        user.id
    );
    println!("{}", token.token);
    Ok(())
}
