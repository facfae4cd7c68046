//! The composition root, used by the `nearby` binary and by the integration tests alike:
//!
//! - [`Settings`]: the `serve` flags (and their environment variables), each checked by its
//!   clap value parser as it is read, so an invalid setting never reaches the code below;
//! - [`Config`]: what the settings mean, derived once ([`Config::from_settings`]): the
//!   secret, the store, the gateway's configuration (hysteresis, frame rate, node identity);
//!   tests start from it and change what they need;
//! - [`App`]: the store, the state, the gateway and the catalog load wired together
//!   ([`App::from_config`]), served by [`App::run`].

use crate::auth::{Secret, SecretError, development_secret_path};
use crate::catalog::Catalog;
use crate::state::{AppState, Limits};
use crate::store::{PgStore, Store, StoreError};
use crate::{places_file, server};
use axum::Router;
use nearby_ws_gateway::friends::FriendStore;
use nearby_ws_gateway::membership::NodeConfig;
use nearby_ws_gateway::{Backend, Gateway, GatewayConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The `serve` flags. Every value is checked as it is parsed (a radius must be a positive
/// number of metres, a node id a short name, and so on).
///
/// ```
/// use clap::Parser;
/// use nearby_services::app::Settings;
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     settings: Settings,
/// }
/// let cli = Cli::try_parse_from(["nearby", "--friend-radius-m", "1000"]).unwrap();
/// assert_eq!(cli.settings.friend_radius_m, 1000.0);
/// assert!(Cli::try_parse_from(["nearby", "--friend-radius-m", "-1"]).is_err());
/// assert!(Cli::try_parse_from(["nearby", "--node-id", "no spaces"]).is_err());
/// ```
#[derive(clap::Args, Clone)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "NEARBY_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Place file (CSV or GeoJSON) to serve instead of the bundled GeoNames places; with a
    /// database, it is imported into the database before serving.
    #[arg(long, env = "NEARBY_PLACES")]
    pub places: Option<PathBuf>,
    /// PostgreSQL + PostGIS URL (postgres://user:password@host:port/database). Businesses are
    /// then stored there and shared by every node using the same database; without it they
    /// are kept in memory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Redis URL (redis://host:port/db) for the nearby-friends bus and location cache, shared
    /// by every node; without it they are in process (one node).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Redis Cluster nodes (`host:port,host:port,...`, some or all masters) for the bus
    /// (sharded pub/sub), the location cache and the membership, instead of `--redis-url`.
    #[arg(
        long,
        env = "REDIS_CLUSTER",
        value_delimiter = ',',
        conflicts_with = "redis_url",
        value_parser = redis_node
    )]
    pub redis_cluster: Vec<String>,
    /// This node's id among the gateway nodes sharing a Redis (default: host name and port).
    #[arg(long, env = "NEARBY_NODE_ID", value_parser = node_id)]
    pub node_id: Option<String>,
    /// The base URL clients reach this node at, advertised to the other nodes for redirects
    /// (default: http://<listen address>, or the host name when listening on all addresses).
    #[arg(long, env = "NEARBY_ADVERTISE_URL", value_parser = advertise_url)]
    pub advertise_url: Option<String>,
    /// With Redis: a node that stops renewing its registration for this long is considered
    /// dead and its users move to other nodes, milliseconds.
    #[arg(
        long,
        env = "NEARBY_NODE_TTL_MS",
        default_value_t = DEFAULT_NODE_TTL_MS,
        value_parser = clap::value_parser!(u64).range(100..)
    )]
    pub node_ttl_ms: u64,
    /// CSV file of mutual friendships (`user_id,friend_id` rows) to seed before serving. Each
    /// pair is applied once in the life of the database: a friendship ended through the API
    /// is not re-created at the next start. With Redis and no database, the friendships are
    /// read-only and every node must serve the same file.
    #[arg(long, env = "NEARBY_FRIENDS")]
    pub friends: Option<PathBuf>,
    /// Most WebSocket sessions one user may hold at once; a newer one closes the oldest
    /// (close code 4002).
    #[arg(
        long,
        env = "NEARBY_MAX_SESSIONS_PER_USER",
        default_value_t = DEFAULT_MAX_SESSIONS_PER_USER,
        value_parser = at_least_one
    )]
    pub max_sessions_per_user: usize,
    /// Friends within this distance are shown, metres (default: five miles).
    #[arg(
        long,
        env = "NEARBY_FRIEND_RADIUS_M",
        default_value_t = nearby_ws_gateway::DEFAULT_RADIUS_M,
        value_parser = positive_number
    )]
    pub friend_radius_m: f64,
    /// A friend's location expires after this many seconds without an update.
    #[arg(
        long,
        env = "NEARBY_LOCATION_TTL_S",
        default_value_t = DEFAULT_LOCATION_TTL_S,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub location_ttl_s: u64,
    /// Location messages per second per user (all their WebSocket sessions), sustained
    /// (bursts of 5).
    #[arg(
        long,
        env = "NEARBY_LOCATION_RATE",
        default_value_t = DEFAULT_LOCATION_RATE,
        value_parser = positive_number
    )]
    pub location_rate: f64,
    /// Map tile URL template (`{z}`, `{x}`, `{y}`) of the web console at `/`; when tiles
    /// cannot load, the page falls back to its bundled country outlines.
    #[arg(long, env = "NEARBY_TILE_URL", default_value = crate::state::DEFAULT_TILE_URL)]
    pub tile_url: String,
    /// Token signing secret (at least 16 bytes). Default: a development secret kept in the
    /// user's data directory, and development mode (the web console may mint tokens; only on
    /// a loopback address).
    #[arg(long, env = "NEARBY_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_NODE_TTL_MS: u64 = 5_000;
const DEFAULT_MAX_SESSIONS_PER_USER: usize = 5;
const DEFAULT_LOCATION_TTL_S: u64 = 600;
const DEFAULT_LOCATION_RATE: f64 = 1.0;

impl Default for Settings {
    /// The flags' defaults, without reading the environment (tests start from these).
    ///
    /// ```
    /// let settings = nearby_services::app::Settings::default();
    /// assert_eq!(settings.listen.to_string(), "127.0.0.1:8080");
    /// assert!(settings.database_url.is_none());
    /// ```
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            places: None,
            database_url: None,
            redis_url: None,
            redis_cluster: Vec::new(),
            node_id: None,
            advertise_url: None,
            node_ttl_ms: DEFAULT_NODE_TTL_MS,
            friends: None,
            max_sessions_per_user: DEFAULT_MAX_SESSIONS_PER_USER,
            friend_radius_m: nearby_ws_gateway::DEFAULT_RADIUS_M,
            location_ttl_s: DEFAULT_LOCATION_TTL_S,
            location_rate: DEFAULT_LOCATION_RATE,
            tile_url: crate::state::DEFAULT_TILE_URL.to_owned(),
            secret: None,
        }
    }
}

impl Settings {
    /// The checks that come before binding the listener: the development secret only on a
    /// loopback address (refused the same way for an address this machine does not have).
    ///
    /// ```
    /// use nearby_services::app::Settings;
    /// let settings = Settings { listen: "0.0.0.0:8080".parse()?, ..Settings::default() };
    /// assert!(settings.check_before_binding().is_err());
    /// assert!(Settings::default().check_before_binding().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The development secret on an address other than loopback.
    pub fn check_before_binding(&self) -> Result<(), AppError> {
        require_loopback_for_development(self, self.listen)
    }
}

fn positive_number(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err("must be a positive number".to_owned()),
    }
}

fn at_least_one(raw: &str) -> Result<usize, String> {
    match raw.trim().parse::<usize>() {
        Ok(value) if value >= 1 => Ok(value),
        _ => Err("must be a whole number of at least 1".to_owned()),
    }
}

fn redis_node(raw: &str) -> Result<String, String> {
    let node = raw.trim();
    if node.is_empty() || node.contains(char::is_whitespace) {
        return Err("each Redis Cluster node must be host:port".to_owned());
    }
    Ok(node.to_owned())
}

fn node_id(raw: &str) -> Result<String, String> {
    if raw.is_empty()
        || raw.len() > 64
        || !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err("must be 1 to 64 characters of letters, digits, '-', '_' or '.'".to_owned());
    }
    Ok(raw.to_owned())
}

/// The URL travels in WebSocket close frames (4001, 1012), whose reason is at most 123 bytes;
/// with "/v1/ws" appended it must fit.
fn advertise_url(raw: &str) -> Result<String, String> {
    let url = raw.trim_end_matches('/');
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || url.len() > 100
        || url.contains(char::is_whitespace)
    {
        return Err("must be an http:// or https:// base URL of at most 100 bytes".to_owned());
    }
    Ok(url.to_owned())
}

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The settings cannot be served as given (the message says which and why).
    #[error("{0}")]
    Settings(String),
    /// The signing secret is unusable (too short, or the development secret file unreadable).
    #[error("bad signing secret")]
    Secret(#[from] SecretError),
    /// The listening socket could not be opened.
    #[error("cannot listen on {address}")]
    Listen {
        /// The address asked for.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be reached or migrated.
    #[error("cannot open the store")]
    Store(#[from] StoreError),
    /// The nearby-friends gateway could not start (its bus, cache or friend store).
    #[error("cannot start the nearby-friends gateway: {0}")]
    Gateway(String),
    /// The places could not be loaded or imported.
    #[error("cannot load places: {0}")]
    Load(String),
    /// The server failed while serving.
    #[error("server error")]
    Serve(#[source] std::io::Error),
}

/// The signing secret: the one given, or the development secret (created on first use in
/// the user's data directory).
///
/// # Errors
/// A secret shorter than [`crate::auth::MIN_SECRET_LEN`] bytes, or an unreadable
/// development secret file.
pub fn signing_secret(given: Option<&str>) -> Result<Secret, AppError> {
    match given {
        Some(secret) => Ok(Secret::new(secret.as_bytes().to_vec())?),
        None => {
            let path = development_secret_path();
            let secret = Secret::development(&path)?;
            tracing::warn!(
                path = %path.display(),
                "using the development secret: for development only, set NEARBY_SECRET in production"
            );
            Ok(secret)
        }
    }
}

/// What the settings mean: everything [`App::from_config`] needs, derived once. Tests build
/// it with [`Config::from_settings`] and change what they need (a shorter idle timeout, a
/// Redis backend, friendships to seed).
pub struct Config {
    /// The token signing secret.
    pub secret: Secret,
    /// Development mode: the web console may mint tokens (`POST /v1/dev/token`).
    pub development_mode: bool,
    /// PostgreSQL URL, or `None` for the in-memory store.
    pub database_url: Option<String>,
    /// The place file to serve (imported first with a database); `None`: the bundled places
    /// in memory, or what the database holds.
    pub places: Option<PathBuf>,
    /// A catalog to serve as it is, ready at once, instead of loading places (tests; the
    /// in-memory store only).
    pub catalog: Option<Catalog>,
    /// A `--friends` seed file, loaded and applied before the gateway starts.
    pub friends_file: Option<PathBuf>,
    /// Friendships to seed as well (tests), applied like the file's.
    pub friend_pairs: Vec<(u64, u64)>,
    /// Where the gateway's bus and cache live.
    pub backend: Backend,
    /// The gateway's configuration, with its derived settings.
    pub gateway: GatewayConfig,
    /// The HTTP limits.
    pub limits: Limits,
    /// The web console's tile URL template.
    pub tile_url: String,
}

impl Config {
    /// Derives the configuration from the settings for a server bound to `bound` (the real
    /// address, so port 0 resolves to the port taken).
    ///
    /// ```
    /// use nearby_services::app::{Config, Settings};
    /// let settings = Settings { secret: Some("0123456789abcdef0123".into()), ..Settings::default() };
    /// let config = Config::from_settings(&settings, "127.0.0.1:9000".parse()?)?;
    /// assert_eq!(config.gateway.hysteresis_m, (settings.friend_radius_m * 0.02).min(500.0));
    /// assert_eq!(config.gateway.node.advertise_url, "http://127.0.0.1:9000");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The development secret on an address other than loopback (only this machine may mint
    /// tokens), or an unusable secret.
    pub fn from_settings(settings: &Settings, bound: SocketAddr) -> Result<Config, AppError> {
        // Before the secret is read, so a refused start does not create the development
        // secret file.
        require_loopback_for_development(settings, bound)?;
        let secret = signing_secret(settings.secret.as_deref())?;
        let gateway = GatewayConfig {
            node: node_config(settings, bound),
            radius_m: settings.friend_radius_m,
            hysteresis_m: (settings.friend_radius_m * 0.02).min(500.0),
            location_ttl: Duration::from_secs(settings.location_ttl_s),
            location_rate_per_s: settings.location_rate,
            frame_rate_per_s: (settings.location_rate * 10.0).max(10.0),
            max_sessions_per_user: settings.max_sessions_per_user,
            ..GatewayConfig::default()
        };
        let backend = match (&settings.redis_url, settings.redis_cluster.as_slice()) {
            (_, [_, ..]) => Backend::RedisCluster(settings.redis_cluster.clone()),
            (Some(url), []) => Backend::Redis(url.clone()),
            (None, []) => Backend::Local,
        };
        Ok(Config {
            secret,
            development_mode: settings.secret.is_none(),
            database_url: settings.database_url.clone(),
            places: settings.places.clone(),
            catalog: None,
            friends_file: settings.friends.clone(),
            friend_pairs: Vec::new(),
            backend,
            gateway,
            limits: Limits::default(),
            tile_url: settings.tile_url.clone(),
        })
    }
}

/// Without `--secret`, `serve` runs in development mode, where `POST /v1/dev/token` mints a
/// token for any user for whoever asks: allowed only on a loopback address, so only this
/// machine can ask.
fn require_loopback_for_development(
    settings: &Settings,
    listen: SocketAddr,
) -> Result<(), AppError> {
    // `to_canonical`: an IPv4-mapped loopback (::ffff:127.0.0.1) is loopback too.
    if settings.secret.is_some() || listen.ip().to_canonical().is_loopback() {
        return Ok(());
    }
    Err(AppError::Settings(format!(
        "refusing to serve on {listen} with the development secret: set NEARBY_SECRET (or \
         --secret) to a secret of at least {} bytes, or listen on a loopback address such as \
         127.0.0.1",
        crate::auth::MIN_SECRET_LEN
    )))
}

/// This node's identity among the gateway nodes: `--node-id`, `--advertise-url` or defaults
/// from the host name and the listening address.
fn node_config(settings: &Settings, listen: SocketAddr) -> NodeConfig {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    // A host name that is not a valid node id (too long, odd characters) falls back to a
    // neutral one rather than refusing to start without `--node-id`.
    let id = match &settings.node_id {
        Some(id) => id.clone(),
        None => node_id(&format!("{host}-{}", listen.port()))
            .unwrap_or_else(|_| format!("node-{}", listen.port())),
    };
    let advertise_url = match &settings.advertise_url {
        Some(url) => url.clone(),
        None if listen.ip().is_unspecified() => format!("http://{host}:{}", listen.port()),
        None => format!("http://{listen}"),
    };
    let heartbeat_ttl = Duration::from_millis(settings.node_ttl_ms);
    NodeConfig {
        id,
        advertise_url,
        heartbeat_ttl,
        // A tenth of the TTL, at most half a second: membership changes are seen quickly
        // without polling Redis more than a few times a second.
        poll_interval: (heartbeat_ttl / 10)
            .clamp(Duration::from_millis(20), Duration::from_millis(500)),
    }
}

/// The service, wired: its state (store, catalog, gateway attached) and the catalog load
/// running in the background.
pub struct App {
    state: AppState,
    load_failure: tokio::sync::oneshot::Receiver<String>,
}

impl App {
    /// Connects (and migrates) the store, starts the gateway (seeding friendships first),
    /// and starts loading the catalog in the background: `/healthz` answers at once,
    /// `/readyz` once the catalog is in.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use nearby_services::app::{App, Config, Settings};
    /// let settings = Settings { secret: Some("0123456789abcdef0123".into()), ..Settings::default() };
    /// let app = App::from_config(Config::from_settings(&settings, "127.0.0.1:0".parse()?)?).await?;
    /// assert!(app.state().gateway().is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// A database that cannot be reached or migrated, a gateway that cannot start, a seed
    /// file that cannot be read.
    pub async fn from_config(config: Config) -> Result<App, AppError> {
        // Connect (and migrate) before serving, so a wrong URL or a database that is down
        // stops the server at once rather than leaving it unready.
        let store = match &config.database_url {
            Some(url) => Store::Postgres(PgStore::connect(url).await?),
            None => Store::memory(),
        };
        let state = AppState::new(store, config.secret.clone(), config.limits);
        state.set_development_mode(config.development_mode);
        state.set_tile_url(config.tile_url.clone());
        let gateway = start_gateway(&config, state.store()).await?;
        state.attach_gateway(gateway);
        let load_failure = match config.catalog {
            Some(catalog) if matches!(state.store(), Store::Memory(_)) => {
                state.install_catalog(catalog);
                tokio::sync::oneshot::channel().1
            }
            Some(_) => {
                return Err(AppError::Settings(
                    "a prebuilt catalog is served only with the in-memory store".to_owned(),
                ));
            }
            None => start_loading(&state, config.places),
        };
        Ok(App {
            state,
            load_failure,
        })
    }

    /// The shared state (the catalog, the store, the gateway, the metrics).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The whole HTTP API over this app's state (for `oneshot` tests).
    pub fn router(&self) -> Router {
        crate::api::app(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` resolves or the catalog fails to load, then
    /// drains (see [`server::run`]).
    ///
    /// # Errors
    /// The server failed, or the places could not be loaded.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let stop = async move {
            tokio::select! {
                () = shutdown => {}
                Ok(()) = stop_rx => {}
            }
        };
        let load_failure = self.load_failure;
        let watch_load = tokio::spawn(async move {
            let failure = load_failure.await.ok();
            if failure.is_some() {
                let _ = stop_tx.send(());
            }
            failure
        });
        server::run(listener, self.state, stop)
            .await
            .map_err(AppError::Serve)?;
        if watch_load.is_finished()
            && let Ok(Some(failure)) = watch_load.await
        {
            return Err(AppError::Load(failure));
        }
        Ok(())
    }
}

/// Loads the catalog in the background; a failure is sent on the returned channel (and
/// stops the server rather than leaving it half-loaded).
fn start_loading(
    state: &AppState,
    places: Option<PathBuf>,
) -> tokio::sync::oneshot::Receiver<String> {
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<String>();
    let loading_state = state.clone();
    match state.store().clone() {
        Store::Postgres(store) => {
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
    failed_rx
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

/// Starts the nearby-friends gateway: friendships in PostgreSQL or memory, the bus and cache
/// in Redis or in process, history in PostgreSQL when there is one; seeds the friendships.
async fn start_gateway(config: &Config, store: &Store) -> Result<Gateway, AppError> {
    let gateway_error = |err: &dyn std::fmt::Display| AppError::Gateway(err.to_string());
    let (friends, history_pool) = match store {
        Store::Postgres(pg) => {
            // Unfriend, ghost mode and the audience log get connections of their own, so a
            // storm of reconnects (which read friendships on the main pool) cannot starve them.
            let control = pg.another_pool(4).await?;
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
    // Seed before the gateway starts: a node that cannot load its file, or is refused below,
    // never joins the other nodes.
    let mut pairs = config.friend_pairs.clone();
    if let Some(path) = &config.friends_file {
        let path = path.clone();
        let from_file = tokio::task::spawn_blocking(move || crate::friends_file::load(&path))
            .await
            .map_err(|err| gateway_error(&err))?
            .map_err(AppError::Settings)?;
        pairs.extend(from_file);
    }
    if config.friends_file.is_some() || !pairs.is_empty() {
        let applied = friends
            .seed(&pairs)
            .await
            .map_err(|err| AppError::Gateway(format!("cannot seed friendships: {err}")))?;
        tracing::info!(
            pairs = pairs.len(),
            applied,
            "friendships seeded (pairs seeded before are never applied again)"
        );
    }
    // Several nodes share a Redis but each would hold its own friendships in memory: they
    // could disagree (an unfriend on one node unknown to another). So they serve the seed
    // file read-only, and a node with a different file is refused before it joins.
    let mut gateway_config = config.gateway.clone();
    if !matches!(config.backend, Backend::Local) && matches!(store, Store::Memory(_)) {
        friends.freeze();
        gateway_config.shared_seed_fingerprint = Some(seed_fingerprint(&pairs));
        tracing::warn!(
            "friendships and sharing are read-only: Redis without DATABASE_URL serves the --friends file on every node"
        );
    }
    Gateway::start(
        gateway_config,
        config.secret.clone(),
        friends,
        config.backend.clone(),
        history_pool,
    )
    .await
    .map_err(|err| gateway_error(&err))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_fingerprint_ignores_order_direction_and_repeats() {
        assert_eq!(
            seed_fingerprint(&[(1, 2), (3, 4)]),
            seed_fingerprint(&[(4, 3), (2, 1), (1, 2)])
        );
        assert_ne!(seed_fingerprint(&[(1, 2)]), seed_fingerprint(&[(1, 3)]));
    }

    #[test]
    fn development_mode_is_refused_beyond_loopback() {
        let settings = Settings::default();
        let err =
            Config::from_settings(&settings, "0.0.0.0:8080".parse().unwrap_or(settings.listen));
        assert!(matches!(err, Err(AppError::Settings(_))));
    }
}
