//! [`Gateway`]: the configuration and the shared parts every session uses (hub, bus, cache,
//! friend store, history, metrics), and what the HTTP handlers call when friendships or
//! sharing change.

use crate::audience::{AudienceConfig, AudienceWatcher};
use crate::bus::{Bus, BusError, RedisBus, RedisTarget};
use crate::cache::LocationCache;
use crate::event::{Event, Topic};
use crate::friends::FriendStore;
use crate::history::History;
use crate::hub::Hub;
use crate::membership::{Member, Membership, NodeConfig};
use crate::metrics::GatewayMetrics;
use crate::users::{UserLimits, Users};
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;

/// Five miles, in metres: the default radius.
pub const DEFAULT_RADIUS_M: f64 = 8_046.72;

/// Checks bearer tokens for the gateway; the service implements it with its signing secret.
pub trait Authenticator: Send + Sync + 'static {
    /// The user id a token speaks for, or why it is refused (a message safe to show).
    ///
    /// # Errors
    /// A message for the client: the token is missing, forged or expired.
    fn authenticate(&self, token: &str) -> Result<u64, String>;
}

/// Gateway settings.
///
/// ```
/// let config = nearby_ws_gateway::GatewayConfig::default();
/// assert_eq!(config.radius_m, 8_046.72);
/// assert_eq!(config.location_ttl.as_secs(), 600);
/// ```
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Friends within this distance are shown, metres.
    pub radius_m: f64,
    /// A shown friend is hidden only past `radius_m + hysteresis_m`, so one standing on the
    /// edge does not flicker.
    pub hysteresis_m: f64,
    /// A location expires after this long without an update.
    pub location_ttl: Duration,
    /// Location messages per second per user (all their sessions together), sustained.
    pub location_rate_per_s: f64,
    /// Location messages a user may send at once.
    pub location_burst: u32,
    /// Most WebSocket sessions one user may have open; a newer one closes the oldest (4002).
    pub max_sessions_per_user: usize,
    /// Connection attempts per second per user, sustained (more are refused with 429).
    pub connect_rate_per_s: f64,
    /// Connection attempts a user may make at once.
    pub connect_burst: u32,
    /// How the audience log is followed (revocation under faults).
    pub audience: AudienceConfig,
    /// With Redis but no shared friend store (read-only friendships from a seed file): the
    /// seed's fingerprint, which every node sharing the Redis must have. The first node stores
    /// it (renewed while nodes run); a node with another is refused before it joins.
    pub shared_seed_fingerprint: Option<String>,
    /// Frames per second per connection before it counts as a flood and is closed (1008).
    pub frame_rate_per_s: f64,
    /// Frames a connection may send at once.
    pub frame_burst: u32,
    /// Largest frame or message accepted, bytes (larger closes with 1009).
    pub max_message_bytes: usize,
    /// Per-connection read buffer, bytes (it grows for a larger message, up to the limit).
    pub read_buffer_bytes: usize,
    /// Per-connection write buffer, bytes: writes past it wait for the socket.
    pub write_buffer_bytes: usize,
    /// How often the server pings an idle connection.
    pub ping_interval: Duration,
    /// A connection silent (no frame, no pong) this long is closed.
    pub idle_timeout: Duration,
    /// A push that cannot be written this long closes the connection (the client is stuck).
    pub send_timeout: Duration,
    /// This node's id, advertised URL and membership timings (used with Redis, where
    /// several nodes share the users).
    pub node: NodeConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            radius_m: DEFAULT_RADIUS_M,
            hysteresis_m: 160.0,
            location_ttl: Duration::from_secs(600),
            location_rate_per_s: 1.0,
            location_burst: 5,
            max_sessions_per_user: 5,
            connect_rate_per_s: 0.5,
            connect_burst: 10,
            audience: AudienceConfig::default(),
            shared_seed_fingerprint: None,
            frame_rate_per_s: 10.0,
            frame_burst: 50,
            max_message_bytes: 4 * 1024,
            read_buffer_bytes: 512,
            write_buffer_bytes: 1024,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            send_timeout: Duration::from_secs(10),
            node: NodeConfig::default(),
        }
    }
}

/// Makes sure every node sharing this Redis serves the same read-only friendships (see
/// [`GatewayConfig::shared_seed_fingerprint`]), and keeps the fingerprint alive while this
/// process runs.
async fn hold_fingerprint(
    connection: crate::redis_link::RedisLink,
    fingerprint: &str,
    config: &GatewayConfig,
) -> Result<(), BusError> {
    let ttl = (config.node.heartbeat_ttl * 2).max(Duration::from_secs(1));
    let key = "{nearby:nodes}:friends-seed";
    let held = claim(connection.clone(), key, fingerprint, ttl)
        .await
        .map_err(|err| {
            BusError::Unavailable(format!("cannot check the friendships seed in Redis: {err}"))
        })?;
    if held != fingerprint {
        return Err(BusError::Refused(format!(
            "another node sharing this Redis serves a different --friends file \
             (fingerprint {held}, this node's {fingerprint}); without DATABASE_URL every \
             node must serve the same one (or set DATABASE_URL to share friendships)"
        )));
    }
    let fingerprint = fingerprint.to_owned();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(ttl / 3).await;
            match claim(connection.clone(), key, &fingerprint, ttl).await {
                Ok(held) if held != fingerprint => tracing::error!(
                    held = %held,
                    fingerprint = %fingerprint,
                    "another node now serves a different --friends file"
                ),
                Ok(_) => {}
                Err(err) => tracing::debug!(error = %err, "cannot renew the friendships seed"),
            }
        }
    });
    Ok(())
}

/// Stores `value` at `key` for `ttl` unless another value is there; renews it if it is
/// ours. Returns the value held.
async fn claim(
    mut connection: crate::redis_link::RedisLink,
    key: &str,
    value: &str,
    ttl: Duration,
) -> Result<String, redis::RedisError> {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let set: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("NX")
        .arg("PX")
        .arg(ttl_ms)
        .query_async(&mut connection)
        .await?;
    if set.is_some() {
        return Ok(value.to_owned());
    }
    let held: Option<String> = redis::cmd("GET")
        .arg(key)
        .query_async(&mut connection)
        .await?;
    match held {
        Some(held) if held == value => {
            redis::cmd("PEXPIRE")
                .arg(key)
                .arg(ttl_ms)
                .query_async::<()>(&mut connection)
                .await?;
            Ok(held)
        }
        Some(held) => Ok(held),
        // Expired between the two commands: take it.
        None => Box::pin(claim(connection, key, value, ttl)).await,
    }
}

/// Which bus and cache to use.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Backend {
    /// In process: one node, no Redis.
    Local,
    /// Redis at this URL (`redis://host:port/db`).
    Redis(String),
    /// A Redis Cluster, given some of its nodes (`host:port`): sharded pub/sub, hash-tagged
    /// keys.
    RedisCluster(Vec<String>),
}

/// The gateway; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    config: GatewayConfig,
    hub: Arc<Hub>,
    bus: Bus,
    cache: LocationCache,
    friends: FriendStore,
    history: History,
    metrics: Arc<GatewayMetrics>,
    authenticator: Box<dyn Authenticator>,
    membership: Arc<Membership>,
    audience: Arc<AudienceWatcher>,
    users: Users,
    shutdown: watch::Sender<bool>,
    /// Sessions running on this node (see [`Gateway::session_started`]).
    active_sessions: watch::Sender<usize>,
}

impl GatewayConfig {
    /// The per-user limits these settings imply.
    pub fn user_limits(&self) -> UserLimits {
        UserLimits {
            max_sessions: self.max_sessions_per_user,
            connect_rate_per_s: self.connect_rate_per_s,
            connect_burst: self.connect_burst,
            location_rate_per_s: self.location_rate_per_s,
            location_burst: self.location_burst,
            forget_after: self.location_ttl,
            ..UserLimits::default()
        }
    }
}

impl Gateway {
    /// Builds the gateway: connects to Redis when asked (and starts its tasks), and starts
    /// the history writer when given a database pool.
    ///
    /// # Errors
    /// Redis cannot be reached.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use nearby_ws_gateway::{Authenticator, Backend, Gateway, GatewayConfig, friends::FriendStore};
    /// struct Anyone;
    /// impl Authenticator for Anyone {
    ///     fn authenticate(&self, token: &str) -> Result<u64, String> {
    ///         token.parse().map_err(|_| "not a user id".to_owned())
    ///     }
    /// }
    /// let gateway = Gateway::start(GatewayConfig::default(), Anyone, FriendStore::memory(), Backend::Local, None)
    ///     .await?;
    /// assert!(gateway.is_ready());
    /// # Ok::<(), nearby_ws_gateway::bus::BusError>(())
    /// # }).unwrap();
    /// ```
    pub async fn start(
        config: GatewayConfig,
        authenticator: impl Authenticator,
        friends: FriendStore,
        backend: Backend,
        history_pool: Option<PgPool>,
    ) -> Result<Gateway, BusError> {
        let metrics = Arc::new(GatewayMetrics::default());
        let hub = Arc::new(Hub::default());
        let redis_target = match backend {
            Backend::Local => None,
            Backend::Redis(url) => Some(RedisTarget::Single(url)),
            Backend::RedisCluster(nodes) => Some(RedisTarget::Cluster(nodes)),
        };
        let (bus, cache, membership) = match redis_target {
            None => {
                metrics.bus_up.store(1, Ordering::Relaxed);
                let cache = LocationCache::memory(config.location_ttl);
                if let LocationCache::Memory(memory) = &cache {
                    let memory = Arc::downgrade(memory);
                    tokio::spawn(async move {
                        let mut ticker = tokio::time::interval(Duration::from_secs(30));
                        loop {
                            ticker.tick().await;
                            let Some(memory) = memory.upgrade() else {
                                return;
                            };
                            memory.purge();
                        }
                    });
                }
                let me = Member::new(config.node.id.clone(), config.node.advertise_url.clone());
                (
                    Bus::Local(Arc::clone(&hub), Arc::clone(&metrics)),
                    cache,
                    Membership::single(me),
                )
            }
            Some(target) => {
                let bus =
                    RedisBus::connect(&target, Arc::clone(&hub), Arc::clone(&metrics)).await?;
                let cache = LocationCache::Redis {
                    connection: bus.connection(),
                    ttl: config.location_ttl,
                };
                if let Some(fingerprint) = &config.shared_seed_fingerprint {
                    // Before joining the membership: a refused node must never own a user.
                    hold_fingerprint(bus.connection(), fingerprint, &config).await?;
                }
                let membership = Membership::redis(&config.node, bus.connection()).await;
                (Bus::Redis(bus), cache, membership)
            }
        };
        let mut members = membership.subscribe();
        let nodes_metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            loop {
                let count = members.borrow_and_update().len();
                nodes_metrics
                    .nodes
                    .store(i64::try_from(count).unwrap_or(i64::MAX), Ordering::Relaxed);
                if members.changed().await.is_err() {
                    return;
                }
            }
        });
        let history = match history_pool {
            Some(pool) => History::postgres(pool, Arc::clone(&metrics)),
            None => History::off(Arc::clone(&metrics)),
        };
        let (shutdown, _) = watch::channel(false);
        let audience = Arc::new(AudienceWatcher::new(config.audience));
        // One read before serving, so the first sessions find the node fresh; if the store is
        // down the node starts stale (withholding) and the watcher keeps trying.
        if let Err(err) = audience.read_log(&friends, &hub).await {
            tracing::warn!(error = %err, "cannot read the audience log yet");
        }
        tokio::spawn(Arc::clone(&audience).run(
            friends.clone(),
            Arc::downgrade(&hub),
            Arc::clone(&metrics),
        ));
        let users = Users::new(config.user_limits());
        let gateway = Gateway {
            inner: Arc::new(Inner {
                config,
                hub,
                bus,
                cache,
                friends,
                history,
                metrics,
                authenticator: Box::new(authenticator),
                membership,
                audience,
                users,
                shutdown,
                active_sessions: watch::Sender::new(0),
            }),
        };
        let weak = Arc::downgrade(&gateway.inner);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(60));
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                inner.users.prune(std::time::Instant::now());
            }
        });
        Ok(gateway)
    }

    /// The audience watcher (see [`crate::audience`]).
    pub fn audience(&self) -> &Arc<AudienceWatcher> {
        &self.inner.audience
    }

    /// Per-user limits and state shared by a user's sessions.
    pub fn users(&self) -> &Users {
        &self.inner.users
    }

    /// The settings.
    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    /// The local fan-out.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    /// The bus.
    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    /// The location cache.
    pub fn cache(&self) -> &LocationCache {
        &self.inner.cache
    }

    /// The friend store.
    pub fn friends(&self) -> &FriendStore {
        &self.inner.friends
    }

    /// The history sink.
    pub fn history(&self) -> &History {
        &self.inner.history
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<GatewayMetrics> {
        &self.inner.metrics
    }

    /// Checks a token.
    ///
    /// # Errors
    /// Why it is refused.
    pub fn authenticate(&self, token: &str) -> Result<u64, String> {
        self.inner.authenticator.authenticate(token)
    }

    /// Whether the bus is connected (for `/readyz`).
    pub fn is_ready(&self) -> bool {
        self.inner.bus.is_up()
    }

    /// Hints every node that `user`'s friendships or sharing changed (committed, with its
    /// audience log entry): this node's watcher reads the log at once, and so does every node
    /// that holds a session of `user` when the hint reaches it. A lost hint only delays the
    /// change to the next poll of the log.
    ///
    /// # Errors
    /// The bus is unavailable.
    pub async fn notify_changed(&self, user: u64) -> Result<(), BusError> {
        self.inner.hub.control_hint().notify_one();
        self.inner
            .bus
            .publish(Topic::Control(user), Event::Changed)
            .await
    }

    /// Hides `user` from their friends at once: drops the cached location and tells every
    /// session showing them.
    ///
    /// # Errors
    /// Redis is unavailable.
    pub async fn hide(&self, user: u64) -> Result<(), BusError> {
        self.inner
            .cache
            .delete(user)
            .await
            .map_err(|err| BusError::Unavailable(err.to_string()))?;
        self.inner
            .bus
            .publish(Topic::Location(user), Event::Gone)
            .await
    }

    /// Which nodes are alive and which one owns each user.
    pub fn membership(&self) -> &Arc<Membership> {
        &self.inner.membership
    }

    /// Starts closing every session (1001 going away, or 1012 naming the user's next node
    /// when other nodes remain); see [`Gateway::drained`].
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Drains the node: leaves the membership (so other nodes take its users), waits until
    /// the other nodes have seen that (two poll intervals), then starts closing every session
    /// with 1012 and the user's new node. See [`Gateway::drained`].
    pub async fn drain(&self) {
        let membership = &self.inner.membership;
        if membership.is_clustered() {
            membership.leave().await;
            // Clients move as soon as their session closes: if they arrived before the
            // other nodes saw this one leave, they would be redirected back here.
            tokio::time::sleep(self.inner.config.node.poll_interval * 2).await;
        }
        self.begin_shutdown();
    }

    /// A receiver that turns true when the gateway shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Waits until the location history accepted so far is written (the queue is empty), or
    /// `deadline` passes; true if it was. The drain calls it after the sessions have ended, so
    /// nothing accepted before SIGTERM is lost to the exit.
    pub async fn history_flushed(&self, deadline: Duration) -> bool {
        tokio::time::timeout(deadline, self.inner.history.flushed())
            .await
            .is_ok()
    }

    /// Counts a session as running until the returned guard is dropped; [`Gateway::drained`]
    /// waits for the count to reach zero.
    pub fn session_started(&self) -> ActiveSession {
        self.inner.active_sessions.send_modify(|count| *count += 1);
        ActiveSession(self.inner.active_sessions.clone())
    }

    /// Waits until every session counted by [`Gateway::session_started`] has ended, or
    /// `deadline` passes; true if all ended. Woken by the last session's end, not polled.
    pub async fn drained(&self, deadline: Duration) -> bool {
        let mut count = self.inner.active_sessions.subscribe();
        matches!(
            tokio::time::timeout(deadline, count.wait_for(|&running| running == 0)).await,
            Ok(Ok(_))
        )
    }
}

/// A running session, counted until dropped (see [`Gateway::session_started`]).
#[derive(Debug)]
pub struct ActiveSession(watch::Sender<usize>);

impl Drop for ActiveSession {
    fn drop(&mut self) {
        self.0.send_modify(|count| *count = count.saturating_sub(1));
    }
}
