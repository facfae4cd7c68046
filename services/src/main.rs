//! The `nearby` binary: parses flags and runs `serve` (the default), `token` or `import`.
//!
//! Without a database URL the service keeps businesses in memory (loaded from a place file or
//! the bundled GeoNames places); with one, PostgreSQL + PostGIS is the source of truth.

use clap::{Args, Parser, Subcommand, ValueEnum};
use nearby_services::app::{App, AppError, Config, Settings, signing_secret};
use nearby_services::auth::unix_now;
use nearby_services::store::PgStore;
use nearby_services::{places_file, server};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "nearby",
    version,
    about = "What places are near me? Nearby answers."
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve(Box<ServeArgs>),
    /// Print a bearer token.
    Token(TokenArgs),
    /// Load a place file into PostgreSQL (creating or replacing businesses by id).
    Import(ImportArgs),
}

#[derive(Args, Clone)]
struct SecretArgs {
    /// Token signing secret (at least 16 bytes). Default: a development secret kept in the
    /// user's data directory.
    #[arg(long, env = "NEARBY_SECRET", hide_env_values = true)]
    secret: Option<String>,
}

#[derive(Args, Clone)]
struct ServeArgs {
    #[command(flatten)]
    settings: Settings,
    /// Log format.
    #[arg(long, env = "NEARBY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Args)]
struct TokenArgs {
    /// User id the token speaks for.
    #[arg(long)]
    user: u64,
    /// Allow business writes.
    #[arg(long)]
    admin: bool,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 86_400)]
    ttl: u64,
    #[command(flatten)]
    secret: SecretArgs,
}

#[derive(Args)]
struct ImportArgs {
    /// Place file (CSV or GeoJSON).
    #[arg(long)]
    places: PathBuf,
    /// PostgreSQL + PostGIS URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token(args)) => token(&args),
        Some(Command::Serve(args)) => serve(*args),
        Some(Command::Import(args)) => import(&args),
        None => serve(cli.serve),
    }
}

fn token(args: &TokenArgs) -> ExitCode {
    init_logging(LogFormat::Text);
    match signing_secret(args.secret.secret.as_deref()) {
        Ok(secret) => {
            println!(
                "{}",
                secret.mint(args.user, args.admin, args.ttl, unix_now())
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("nearby token: {}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

fn import(args: &ImportArgs) -> ExitCode {
    init_logging(LogFormat::Text);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("nearby import: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(import_async(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("nearby import: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn import_async(args: &ImportArgs) -> Result<(), String> {
    let store = PgStore::connect(&args.database_url)
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let path = args.places.clone();
    let places = tokio::task::spawn_blocking(move || places_file::load(&path))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let parsed = started.elapsed();
    let written = store.import(&places).await.map_err(|e| e.to_string())?;
    let total = started.elapsed();
    let imported = total.saturating_sub(parsed);
    println!(
        "imported {} places from {} ({written} new or changed) in {:.2} s \
         (parse {:.2} s, database {:.2} s: {:.0} rows/min)",
        places.len(),
        args.places.display(),
        total.as_secs_f64(),
        parsed.as_secs_f64(),
        imported.as_secs_f64(),
        places.len() as f64 / imported.as_secs_f64().max(1e-9) * 60.0,
    );
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    init_logging(args.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("nearby: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve_async(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let err = error_chain(&err);
            tracing::error!(error = %err, "nearby stopped");
            eprintln!("nearby: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_async(args: ServeArgs) -> Result<(), AppError> {
    let settings = args.settings;
    // Before binding and before the secret is read: a refused start creates no file.
    settings.check_before_binding()?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| AppError::Listen {
            address: settings.listen,
            source,
        })?;
    let address = listener.local_addr().map_err(|source| AppError::Listen {
        address: settings.listen,
        source,
    })?;
    let app = App::from_config(Config::from_settings(&settings, address)?).await?;
    tracing::info!(%address, "nearby listening");
    println!("nearby listening on http://{address}");
    println!(
        "try: curl 'http://{address}/v1/search/nearby?latitude=48.8566&longitude=2.3522&radius=5000&limit=5'"
    );
    app.run(listener, server::shutdown_signal()).await?;
    tracing::info!("nearby stopped");
    Ok(())
}

/// An error and its sources, "outer: inner: innermost".
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
