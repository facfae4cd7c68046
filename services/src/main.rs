//! The `nearby` binary: parses flags and runs `serve` (the default), `token` or `import`.
//!
//! Without a database URL the service keeps businesses in memory (loaded from a place file or
//! the bundled GeoNames places); with one, PostgreSQL + PostGIS is the source of truth.

use clap::{Args, Parser, Subcommand, ValueEnum};
use nearby_services::auth::{Secret, development_secret_path, unix_now};
use nearby_services::catalog::Catalog;
use nearby_services::state::{AppState, Limits};
use nearby_services::store::{PgStore, Store};
use nearby_services::{places_file, server};
use std::net::SocketAddr;
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
    /// Address to listen on.
    #[arg(long, env = "NEARBY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Place file (CSV or GeoJSON) to serve instead of the bundled GeoNames places; with a
    /// database, it is imported into the database before serving.
    #[arg(long, env = "NEARBY_PLACES")]
    places: Option<PathBuf>,
    /// PostgreSQL + PostGIS URL (postgres://user:password@host:port/database). Businesses are
    /// then stored there and shared by every node using the same database; without it they
    /// are kept in memory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Redis URL (redis://host:port/db) for the nearby-friends bus and location cache, shared
    /// by every node; without it they are in process (one node).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Redis Cluster nodes (`host:port,host:port,...`, some or all masters) for the bus
    /// (sharded pub/sub), the location cache and the membership, instead of `--redis-url`.
    #[arg(
        long,
        env = "REDIS_CLUSTER",
        value_delimiter = ',',
        conflicts_with = "redis_url"
    )]
    redis_cluster: Vec<String>,
    /// This node's id among the gateway nodes sharing a Redis (default: host name and port).
    #[arg(long, env = "NEARBY_NODE_ID")]
    node_id: Option<String>,
    /// The base URL clients reach this node at, advertised to the other nodes for redirects
    /// (default: http://<listen address>, or the host name when listening on all addresses).
    #[arg(long, env = "NEARBY_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// With Redis: a node that stops renewing its registration for this long is considered
    /// dead and its users move to other nodes, milliseconds.
    #[arg(long, env = "NEARBY_NODE_TTL_MS", default_value_t = 5_000)]
    node_ttl_ms: u64,
    /// CSV file of mutual friendships (`user_id,friend_id` rows) to seed before serving. Each
    /// pair is applied once in the life of the database: a friendship ended through the API
    /// is not re-created at the next start. With Redis and no database, the friendships are
    /// read-only and every node must serve the same file.
    #[arg(long, env = "NEARBY_FRIENDS")]
    friends: Option<PathBuf>,
    /// Most WebSocket sessions one user may hold at once; a newer one closes the oldest
    /// (close code 4002).
    #[arg(long, env = "NEARBY_MAX_SESSIONS_PER_USER", default_value_t = 5)]
    max_sessions_per_user: usize,
    /// Friends within this distance are shown, metres (default: five miles).
    #[arg(long, env = "NEARBY_FRIEND_RADIUS_M", default_value_t = nearby_ws_gateway::DEFAULT_RADIUS_M)]
    friend_radius_m: f64,
    /// A friend's location expires after this many seconds without an update.
    #[arg(long, env = "NEARBY_LOCATION_TTL_S", default_value_t = 600)]
    location_ttl_s: u64,
    /// Location messages per second per user (all their WebSocket sessions), sustained
    /// (bursts of 5).
    #[arg(long, env = "NEARBY_LOCATION_RATE", default_value_t = 1.0)]
    location_rate: f64,
    /// Map tile URL template (`{z}`, `{x}`, `{y}`) of the web console at `/`; when tiles
    /// cannot load, the page falls back to its bundled country outlines.
    #[arg(long, env = "NEARBY_TILE_URL", default_value = nearby_services::state::DEFAULT_TILE_URL)]
    tile_url: String,
    /// Log format.
    #[arg(long, env = "NEARBY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(flatten)]
    secret: SecretArgs,
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

fn secret(args: &SecretArgs) -> Result<Secret, String> {
    match &args.secret {
        Some(secret) => Secret::new(secret.as_bytes().to_vec()).map_err(|e| e.to_string()),
        None => {
            let path = development_secret_path();
            let secret = Secret::development(&path).map_err(|e| e.to_string())?;
            tracing::warn!(
                path = %path.display(),
                "using the development secret: for development only, set NEARBY_SECRET in production"
            );
            Ok(secret)
        }
    }
}

/// Without `--secret`, `serve` runs in development mode, where `POST /v1/dev/token` mints a
/// token for any user for whoever asks: allowed only on a loopback address, so only this
/// machine can ask.
fn require_loopback_for_development(args: &SecretArgs, listen: SocketAddr) -> Result<(), String> {
    // `to_canonical`: an IPv4-mapped loopback (::ffff:127.0.0.1) is loopback too.
    if args.secret.is_some() || listen.ip().to_canonical().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "refusing to serve on {listen} with the development secret: set NEARBY_SECRET (or \
         --secret) to a secret of at least {} bytes, or listen on a loopback address such as \
         127.0.0.1",
        nearby_services::auth::MIN_SECRET_LEN
    ))
}

fn token(args: &TokenArgs) -> ExitCode {
    init_logging(LogFormat::Text);
    match secret(&args.secret) {
        Ok(secret) => {
            println!(
                "{}",
                secret.mint(args.user, args.admin, args.ttl, unix_now())
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("nearby token: {err}");
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
            tracing::error!(error = %err, "nearby stopped");
            eprintln!("nearby: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_async(args: ServeArgs) -> Result<(), String> {
    // Before `secret`, so a refused start does not create the development secret file.
    require_loopback_for_development(&args.secret, args.listen)?;
    let secret = secret(&args.secret)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|err| format!("cannot listen on {}: {err}", args.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    // Connect (and migrate) before serving, so a wrong URL or a database that is down stops
    // the server at once rather than leaving it unready.
    let store = match &args.database_url {
        Some(url) => Store::Postgres(PgStore::connect(url).await.map_err(|e| e.to_string())?),
        None => Store::memory(),
    };
    let state = AppState::new(store, secret.clone(), Limits::default());
    // Without --secret the development secret is in use (see `secret`): the web console may
    // then mint tokens.
    state.set_development_mode(args.secret.secret.is_none());
    state.set_tile_url(args.tile_url.clone());
    let gateway = start_gateway(&args, address, secret, state.store()).await?;
    state.attach_gateway(gateway);

    // Load in the background so /healthz answers at once and /readyz tells when it is done;
    // a load failure stops the server rather than leaving it half-loaded.
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<String>();
    match state.store().clone() {
        Store::Postgres(store) => {
            let places = args.places.clone();
            let loading_state = state.clone();
            tokio::spawn(async move {
                if let Some(path) = places
                    && let Err(err) = import_places(&store, path).await
                {
                    let _ = failed_tx.send(err);
                    return;
                }
                // The feed's first snapshot becomes the catalog (streamed from PostGIS) and
                // marks the service ready; subscribing before reading it means no change
                // committed in between is missed.
                loading_state.follow(store.change_feed()).await;
            });
        }
        Store::Memory(_) => {
            let loading_state = state.clone();
            let places = args.places.clone();
            tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                let loaded = match &places {
                    Some(path) => places_file::load_catalog(path, 0),
                    None => places_file::bundled().map(|places| Catalog::build(places, 0)),
                };
                match loaded {
                    Ok(catalog) => {
                        let count = catalog.len();
                        loading_state.install_catalog(catalog);
                        tracing::info!(
                            businesses = count,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "index loaded, ready"
                        );
                    }
                    Err(err) => {
                        let _ = failed_tx.send(format!("cannot load places: {err}"));
                    }
                }
            });
        }
    }

    tracing::info!(%address, "nearby listening");
    println!("nearby listening on http://{address}");
    println!(
        "try: curl 'http://{address}/v1/search/nearby?latitude=48.8566&longitude=2.3522&radius=5000&limit=5'"
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        tokio::select! {
            () = server::shutdown_signal() => {}
            Ok(()) = stop_rx => {}
        }
    };
    let load_failure = tokio::spawn(async move {
        let failure = failed_rx.await.ok();
        if failure.is_some() {
            let _ = stop_tx.send(());
        }
        failure
    });
    server::run(listener, state, shutdown)
        .await
        .map_err(|err| format!("server error: {err}"))?;
    if load_failure.is_finished()
        && let Ok(Some(failure)) = load_failure.await
    {
        return Err(failure);
    }
    tracing::info!("nearby stopped");
    Ok(())
}

/// Starts the nearby-friends gateway: friendships in PostgreSQL or memory, the bus and cache
/// in Redis or in process, history in PostgreSQL when there is one; seeds `--friends`.
async fn start_gateway(
    args: &ServeArgs,
    listen: SocketAddr,
    secret: Secret,
    store: &Store,
) -> Result<nearby_ws_gateway::Gateway, String> {
    use nearby_ws_gateway::{Backend, Gateway, GatewayConfig, friends::FriendStore};
    if !(args.friend_radius_m.is_finite() && args.friend_radius_m > 0.0) {
        return Err("--friend-radius-m must be a positive number of metres".to_owned());
    }
    if !(args.location_rate.is_finite() && args.location_rate > 0.0) {
        return Err("--location-rate must be a positive number per second".to_owned());
    }
    if args.location_ttl_s == 0 {
        return Err("--location-ttl-s must be at least 1".to_owned());
    }
    if args.max_sessions_per_user == 0 {
        return Err("--max-sessions-per-user must be at least 1".to_owned());
    }
    let node = node_config(args, listen)?;
    let config = GatewayConfig {
        node,
        radius_m: args.friend_radius_m,
        hysteresis_m: (args.friend_radius_m * 0.02).min(500.0),
        location_ttl: std::time::Duration::from_secs(args.location_ttl_s),
        location_rate_per_s: args.location_rate,
        frame_rate_per_s: (args.location_rate * 10.0).max(10.0),
        max_sessions_per_user: args.max_sessions_per_user,
        ..GatewayConfig::default()
    };
    let (friends, history_pool) = match store {
        Store::Postgres(pg) => {
            // Unfriend, ghost mode and the audience log get connections of their own, so a
            // storm of reconnects (which read friendships on the main pool) cannot starve them.
            let control = pg
                .another_pool(4)
                .await
                .map_err(|err| format!("cannot start the nearby-friends gateway: {err}"))?;
            (
                FriendStore::Postgres(
                    nearby_ws_gateway::friends_pg::PgFriends::new(pg.pool().clone())
                        .with_control_pool(control),
                ),
                Some(pg.pool().clone()),
            )
        }
        Store::Memory(_) => (FriendStore::memory(), None),
    };
    let backend = match (&args.redis_url, args.redis_cluster.as_slice()) {
        (_, [_, ..]) => {
            let nodes: Vec<String> = args
                .redis_cluster
                .iter()
                .map(|node| node.trim().to_owned())
                .filter(|node| !node.is_empty())
                .collect();
            if nodes.is_empty() {
                return Err("--redis-cluster needs at least one host:port".to_owned());
            }
            Backend::RedisCluster(nodes)
        }
        (Some(url), []) => Backend::Redis(url.clone()),
        (None, []) => Backend::Local,
    };
    // Seed before the gateway starts: a node that cannot load its file, or is refused below,
    // never joins the other nodes.
    let mut pairs = Vec::new();
    if let Some(path) = &args.friends {
        let path = path.clone();
        pairs = tokio::task::spawn_blocking(move || nearby_services::friends_file::load(&path))
            .await
            .map_err(|err| err.to_string())??;
        let applied = friends
            .seed(&pairs)
            .await
            .map_err(|err| format!("cannot seed friendships: {err}"))?;
        tracing::info!(
            pairs = pairs.len(),
            applied,
            "friendships seeded (pairs seeded before are never applied again)"
        );
    }
    // Several nodes share a Redis but each would hold its own friendships in memory: they
    // could disagree (an unfriend on one node unknown to another). So they serve the seed
    // file read-only, and a node with a different file is refused before it joins.
    let mut config = config;
    if !matches!(backend, Backend::Local) && matches!(store, Store::Memory(_)) {
        friends.freeze();
        config.shared_seed_fingerprint = Some(seed_fingerprint(&pairs));
        tracing::warn!(
            "friendships and sharing are read-only: Redis without DATABASE_URL serves the --friends file on every node"
        );
    }
    Gateway::start(config, secret, friends, backend, history_pool)
        .await
        .map_err(|err| format!("cannot start the nearby-friends gateway: {err}"))
}

/// A fingerprint of a set of friendships, whatever the order or direction of the pairs.
fn seed_fingerprint(pairs: &[(u64, u64)]) -> String {
    use sha2::{Digest, Sha256};
    let mut normal: Vec<(u64, u64)> = pairs
        .iter()
        .filter(|(a, b)| a != b)
        .map(|&(a, b)| (a.min(b), a.max(b)))
        .collect();
    normal.sort_unstable();
    normal.dedup();
    let mut hasher = Sha256::new();
    for (a, b) in normal {
        hasher.update(a.to_le_bytes());
        hasher.update(b.to_le_bytes());
    }
    hasher
        .finalize()
        .iter()
        .take(12)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// This node's identity among the gateway nodes: `--node-id`, `--advertise-url` or defaults
/// from the host name and the listening address.
fn node_config(
    args: &ServeArgs,
    listen: SocketAddr,
) -> Result<nearby_ws_gateway::membership::NodeConfig, String> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    let id = match &args.node_id {
        Some(id) => id.clone(),
        None => format!("{host}-{}", listen.port()),
    };
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(
            "--node-id must be 1 to 64 characters of letters, digits, '-', '_' or '.'".to_owned(),
        );
    }
    let advertise_url = match &args.advertise_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None if listen.ip().is_unspecified() => format!("http://{host}:{}", listen.port()),
        None => format!("http://{listen}"),
    };
    // The URL travels in WebSocket close frames (4001, 1012), whose reason is at most 123
    // bytes; with "/v1/ws" appended it must fit.
    if !(advertise_url.starts_with("http://") || advertise_url.starts_with("https://"))
        || advertise_url.len() > 100
        || advertise_url.contains(char::is_whitespace)
    {
        return Err(
            "--advertise-url must be an http:// or https:// base URL of at most 100 bytes"
                .to_owned(),
        );
    }
    if args.node_ttl_ms < 100 {
        return Err("--node-ttl-ms must be at least 100".to_owned());
    }
    let heartbeat_ttl = std::time::Duration::from_millis(args.node_ttl_ms);
    Ok(nearby_ws_gateway::membership::NodeConfig {
        id,
        advertise_url,
        heartbeat_ttl,
        // A tenth of the TTL, at most half a second: membership changes are seen quickly
        // without polling Redis more than a few times a second.
        poll_interval: (heartbeat_ttl / 10).clamp(
            std::time::Duration::from_millis(20),
            std::time::Duration::from_millis(500),
        ),
    })
}

/// Imports a place file into the database before the catalog is loaded from it.
async fn import_places(store: &PgStore, path: PathBuf) -> Result<(), String> {
    let started = Instant::now();
    let shown = path.display().to_string();
    let places = tokio::task::spawn_blocking(move || places_file::load(&path))
        .await
        .map_err(|e| format!("cannot load places: {e}"))?
        .map_err(|e| format!("cannot load places: {e}"))?;
    let written = store
        .import(&places)
        .await
        .map_err(|e| format!("cannot import {shown}: {e}"))?;
    tracing::info!(
        places = places.len(),
        written,
        file = %shown,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "places imported into PostgreSQL"
    );
    Ok(())
}
