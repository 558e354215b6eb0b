//! `cloud-api`: serve the API, apply migrations, or create an API token.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use cloud_api::cli::DatabaseArgs;
use cloud_api::settings::Settings;

/// The reference service of provision: users, organisations, scopes and
/// sources over PostgreSQL, or an embedded SQLite database by default.
#[derive(Debug, Parser)]
#[command(name = "cloud-api", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// With no subcommand: serve, with these settings.
    #[command(flatten)]
    settings: Settings,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve(Settings),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token for a user (creating the user if needed) and print it
    /// once: it is stored only as a hash.
    Create(CreateToken),
}

#[derive(Debug, Args)]
struct CreateToken {
    /// The user's email.
    #[arg(long)]
    email: String,
    /// The user's name, if the user is new (default: the email's local part).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    database: DatabaseArgs,
}

fn main() -> ExitCode {
    let log = init_tracing();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            None => cloud_api::server::serve(cli.settings, cloud_api::server::signal()).await,
            Some(Command::Serve(settings)) => {
                cloud_api::server::serve(settings, cloud_api::server::signal()).await
            }
            Some(Command::Migrate(database)) => cloud_api::cli::migrate(&database.settings()).await,
            Some(Command::Token(TokenCommand::Create(args))) => {
                let settings = args.database.settings();
                cloud_api::cli::create_token(&settings, &args.email, args.name.as_deref()).await
            }
        }
    });
    // Every line logged (the runtime's last tasks' too) reaches stderr
    // before the error below, and before the process exits.
    drop(runtime);
    drop(log);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain: the step that failed, and what the database
            // (or the system) said about it.
            eprintln!("error: {}", cloud_api::cause::chain(&*e));
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr; `RUST_LOG` filters (default `info`: the access log, a
/// line per request), e.g. `RUST_LOG=info,provision=debug` to see every
/// acquire and release.
///
/// The request path never waits for stderr (a terminal or a pipe can take
/// longer than the request itself): a line is formatted on the request's
/// thread and handed to a writer thread that writes the lines gathered in
/// one `write(2)`, without dropping any (`cloud_api::log_writer`). The
/// line is tracing-subscriber's own text, its timestamp worked out once a
/// second (`log_time`), its fields written without painting (`log_fields`)
/// and the rest of it as plain strings (`log_line`). The returned guard writes what is left when dropped:
/// keep it until exit.
fn init_tracing() -> cloud_api::log_writer::FlushGuard {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let (writer, guard) = cloud_api::log_writer::LogWriter::new(std::io::stderr());
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(cloud_api::log_line::PlainLine::new(
                    cloud_api::log_time::CachedUtc,
                ))
                .fmt_fields(cloud_api::log_fields::PlainFields)
                .with_writer(writer)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(filter)
        .init();
    guard
}
