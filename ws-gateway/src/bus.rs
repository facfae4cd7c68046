//! The pub/sub bus between nodes.
//!
//! - `Local` (embedded): a publish is handed straight to the node's [`Hub`].
//! - `Redis`: `PUBLISH` on one multiplexed connection; a second, RESP3 connection holds one
//!   `SUBSCRIBE` per channel that any local session needs (however many sessions need it),
//!   and its pushes are fanned out by the hub. The redis crate's `ConnectionManager`
//!   reconnects and resubscribes by itself; pushes pass through a bounded channel whose
//!   overflow is counted, never buffered without limit.
//! - On a Redis Cluster the same with sharded pub/sub: `SPUBLISH` and `SSUBSCRIBE`, so each
//!   channel lives on the shard that owns its slot (the user id is the hash tag, see
//!   [`crate::event::Topic`]). The crate's cluster connection tracks subscriptions but does
//!   not reliably restore them (tested): a slot moving to another shard unsubscribes its
//!   channels with a `sunsubscribe` push that the crate takes as final, so the bus subscribes
//!   again (the command follows `MOVED` to the new owner); after a connection loss (a
//!   `Disconnection` push: a failover, a restart) the crate resends all of a node's channels
//!   in one `SSUBSCRIBE`, which Redis refuses when they span slots, so once the bus answers
//!   again it subscribes every needed channel again, one per command. Those control pushes are
//!   acted on in the push sender itself, so a full push queue cannot lose them.
//!
//! Subscriptions are reconciled rather than queued: a session marks the topics whose local
//! interest changed, and one task brings Redis in line with the hub, in batches. However
//! fast sessions come and go, the pending work is at most one entry per topic.

use crate::event::{Event, Topic};
use crate::hub::Hub;
use crate::metrics::GatewayMetrics;
use crate::redis_link::RedisLink;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, RedisResult, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// Pushes waiting between the Redis connection and the dispatcher.
const PUSH_QUEUE: usize = 65_536;
/// Channels per SUBSCRIBE / UNSUBSCRIBE command.
const SUBSCRIBE_BATCH: usize = 1_000;
/// Sharded subscriptions in flight at once on a cluster (one channel per command: channels
/// of one command must share a slot).
const SHARDED_CONCURRENCY: usize = 64;
/// How often the subscriber connection is pinged: a dead connection is noticed (and
/// re-established, with its subscriptions) within about this long.
const PING_EVERY: Duration = Duration::from_millis(500);

/// A bus operation that could not be done.
///
/// The Redis variants display their cause as well as keeping it as `source()`: callers log
/// errors with `%err`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// Redis failed or cannot be reached (a message without an underlying error value).
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// A Redis command or connection failed.
    #[error("bus unavailable: {context}{source}")]
    Redis {
        /// What was being done, with a trailing ": " (or empty).
        context: &'static str,
        /// The failure.
        #[source]
        source: redis::RedisError,
    },
    /// This node may not join the others on this Redis (why).
    #[error("{0}")]
    Refused(String),
}

impl BusError {
    /// A Redis failure while doing `context` (ends with ": " when not empty).
    fn redis(context: &'static str) -> impl Fn(redis::RedisError) -> BusError + Copy {
        move |source| BusError::Redis { context, source }
    }
}

/// The bus; cheap to clone.
#[derive(Clone)]
pub enum Bus {
    /// In process: publishes reach this node's sessions only.
    Local(Arc<Hub>, Arc<GatewayMetrics>),
    /// Redis pub/sub.
    Redis(Arc<RedisBus>),
}

impl Bus {
    /// Publishes `event` on `topic`.
    ///
    /// # Errors
    /// Redis is unavailable.
    pub async fn publish(&self, topic: Topic, event: Event) -> Result<(), BusError> {
        match self {
            Bus::Local(hub, metrics) => {
                let outcome = hub.dispatch(topic, event);
                if outcome.coalesced > 0 {
                    metrics
                        .coalesced
                        .fetch_add(outcome.coalesced as u64, Ordering::Relaxed);
                }
                Ok(())
            }
            Bus::Redis(bus) => bus.publish(topic, event).await,
        }
    }

    /// Tells the bus that local interest in `topic` started or ended (per the hub).
    pub fn interest_changed(&self, topic: Topic) {
        if let Bus::Redis(bus) = self {
            bus.mark(topic);
        }
    }

    /// Whether the bus is connected.
    pub fn is_up(&self) -> bool {
        match self {
            Bus::Local(..) => true,
            Bus::Redis(bus) => bus.metrics.bus_up.load(Ordering::Relaxed) == 1,
        }
    }
}

/// Where Redis is.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum RedisTarget {
    /// One server: `redis://host:port/db`.
    Single(String),
    /// A Redis Cluster, given some of its nodes (`host:port` or `redis://host:port`).
    Cluster(Vec<String>),
}

/// The connection that holds the node's subscriptions.
#[derive(Clone)]
enum Subscriber {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Subscriber {
    async fn change(&mut self, channels: &[String], subscribe: bool) -> RedisResult<()> {
        match self {
            Subscriber::Single(connection) => {
                if subscribe {
                    connection.subscribe(channels).await
                } else {
                    connection.unsubscribe(channels).await
                }
            }
            Subscriber::Cluster(connection) => {
                let mut pending = futures_util::stream::FuturesUnordered::new();
                let mut outcome = Ok(());
                for channel in channels {
                    if pending.len() >= SHARDED_CONCURRENCY
                        && let Some(Err(err)) = pending.next().await
                    {
                        outcome = Err(err);
                    }
                    pending.push(sharded_change(
                        connection.clone(),
                        channel.clone(),
                        subscribe,
                    ));
                }
                while let Some(result) = pending.next().await {
                    if let Err(err) = result {
                        outcome = Err(err);
                    }
                }
                outcome
            }
        }
    }

    async fn ping(&mut self) -> bool {
        let command = redis::cmd("PING");
        match self {
            Subscriber::Single(connection) => command.query_async::<()>(connection).await.is_ok(),
            // Routed to the primaries the connection knows; a dead one may be skipped, so a
            // failover shows as a `Disconnection` push rather than a failed ping.
            Subscriber::Cluster(connection) => command.query_async::<()>(connection).await.is_ok(),
        }
    }
}

async fn sharded_change(
    mut connection: ClusterConnection,
    channel: String,
    subscribe: bool,
) -> RedisResult<()> {
    if subscribe {
        connection.ssubscribe(channel).await
    } else {
        connection.sunsubscribe(channel).await
    }
}

/// The Redis bus.
pub struct RedisBus {
    publisher: RedisLink,
    dirty: Mutex<HashSet<Topic>>,
    /// Subscriptions the server dropped (a slot moved): to be made again.
    lost: Mutex<HashSet<Topic>>,
    wake: Arc<Notify>,
    metrics: Arc<GatewayMetrics>,
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        // Lets the reconciler notice that the bus is gone and stop.
        self.wake.notify_one();
    }
}

fn connection_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_max_delay(Duration::from_millis(500))
        .set_number_of_retries(2)
}

/// Adds `protocol=resp3` to a Redis URL (pushes need RESP3).
fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}protocol=resp3")
}

fn cluster_builder(nodes: &[String]) -> redis::cluster::ClusterClientBuilder {
    let nodes: Vec<String> = nodes
        .iter()
        .map(|node| {
            if node.contains("://") {
                node.clone()
            } else {
                format!("redis://{node}")
            }
        })
        .collect();
    redis::cluster::ClusterClientBuilder::new(nodes)
        .use_protocol(redis::ProtocolVersion::RESP3)
        .connection_timeout(Duration::from_secs(1))
        .response_timeout(Duration::from_secs(2))
        .retries(3)
        .max_retry_wait(500)
}

impl RedisBus {
    /// Connects both connections and starts the dispatcher, reconciler and health tasks.
    ///
    /// # Errors
    /// Redis cannot be reached or the URL is invalid.
    pub async fn connect(
        target: &RedisTarget,
        hub: Arc<Hub>,
        metrics: Arc<GatewayMetrics>,
    ) -> Result<Arc<RedisBus>, BusError> {
        let unavailable = BusError::redis("");
        let (push_tx, push_rx) = mpsc::channel::<PushInfo>(PUSH_QUEUE);
        let dropped_metrics = Arc::clone(&metrics);
        let resync = Arc::new(AtomicBool::new(false));
        let sender_resync = Arc::clone(&resync);
        let push_sender = move |push: PushInfo| {
            // Control pushes take effect here, before the queue: a full queue may drop
            // messages (counted) but never the news that subscriptions were lost.
            match push.kind {
                PushKind::Disconnection => {
                    dropped_metrics.bus_up.store(0, Ordering::Relaxed);
                    sender_resync.store(true, Ordering::Release);
                }
                PushKind::SUnsubscribe if push_tx.capacity() == 0 => {
                    sender_resync.store(true, Ordering::Release);
                }
                _ => {}
            }
            match push_tx.try_send(push) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    dropped_metrics.bus_dropped.fetch_add(1, Ordering::Relaxed);
                    // Not an error for the connection: dropping is the documented overflow
                    // policy.
                    Ok(())
                }
                Err(err @ mpsc::error::TrySendError::Closed(_)) => Err(err),
            }
        };
        let (publisher, subscriber) = match target {
            RedisTarget::Single(url) => {
                let client = redis::Client::open(with_resp3(url).as_str())
                    .map_err(BusError::redis("invalid Redis URL: "))?;
                let publisher = client
                    .get_connection_manager_with_config(connection_config())
                    .await
                    .map_err(unavailable)?;
                let subscriber = client
                    .get_connection_manager_with_config(
                        connection_config()
                            .set_push_sender(push_sender)
                            .set_automatic_resubscription(),
                    )
                    .await
                    .map_err(unavailable)?;
                (RedisLink::Single(publisher), Subscriber::Single(subscriber))
            }
            RedisTarget::Cluster(nodes) => {
                let publisher = cluster_builder(nodes)
                    .build()
                    .map_err(BusError::redis("invalid Redis Cluster nodes: "))?
                    .get_async_connection()
                    .await
                    .map_err(unavailable)?;
                let subscriber = cluster_builder(nodes)
                    .push_sender(push_sender)
                    .build()
                    .map_err(unavailable)?
                    .get_async_connection()
                    .await
                    .map_err(unavailable)?;
                (
                    RedisLink::Cluster(publisher),
                    Subscriber::Cluster(subscriber),
                )
            }
        };
        metrics.bus_up.store(1, Ordering::Relaxed);
        let bus = Arc::new(RedisBus {
            publisher,
            dirty: Mutex::new(HashSet::new()),
            lost: Mutex::new(HashSet::new()),
            wake: Arc::new(Notify::new()),
            metrics: Arc::clone(&metrics),
        });
        tokio::spawn(dispatch(
            push_rx,
            Arc::downgrade(&bus),
            Arc::clone(&hub),
            Arc::clone(&metrics),
        ));
        tokio::spawn(reconcile(
            Arc::downgrade(&bus),
            Arc::clone(&bus.wake),
            subscriber.clone(),
            Arc::clone(&hub),
        ));
        tokio::spawn(watch_health(Arc::downgrade(&bus), subscriber, hub, resync));
        Ok(bus)
    }

    fn dirty(&self) -> MutexGuard<'_, HashSet<Topic>> {
        self.dirty
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn mark(&self, topic: Topic) {
        self.dirty().insert(topic);
        self.wake.notify_one();
    }

    /// The server dropped the node's subscription to `topic` (its slot moved): subscribe
    /// again if sessions still need it.
    fn mark_lost(&self, topic: Topic) {
        self.lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(topic);
        self.mark(topic);
    }

    fn take_lost(&self) -> Vec<Topic> {
        self.lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain()
            .collect()
    }

    async fn publish(&self, topic: Topic, event: Event) -> Result<(), BusError> {
        let mut connection = self.publisher.clone();
        redis::cmd(connection.publish_command())
            .arg(topic.channel())
            .arg(event.encode())
            .query_async::<()>(&mut connection)
            .await
            .map_err(|err| {
                self.metrics.bus_errors.fetch_add(1, Ordering::Relaxed);
                BusError::Redis {
                    context: "",
                    source: err,
                }
            })
    }

    /// The publishing connection (shared with the location cache and the membership).
    pub fn connection(&self) -> RedisLink {
        self.publisher.clone()
    }
}

/// Hands each pushed message to the hub.
async fn dispatch(
    mut pushes: mpsc::Receiver<PushInfo>,
    bus: std::sync::Weak<RedisBus>,
    hub: Arc<Hub>,
    metrics: Arc<GatewayMetrics>,
) {
    while let Some(push) = pushes.recv().await {
        match push.kind {
            PushKind::Message | PushKind::SMessage => {
                metrics.bus_received.fetch_add(1, Ordering::Relaxed);
                let decoded = match push.data.as_slice() {
                    [Value::BulkString(channel), Value::BulkString(payload)] => {
                        Topic::parse_channel(channel).zip(Event::decode(payload))
                    }
                    _ => None,
                };
                match decoded {
                    Some((topic, event)) => {
                        let outcome = hub.dispatch(topic, event);
                        if outcome.coalesced > 0 {
                            metrics
                                .coalesced
                                .fetch_add(outcome.coalesced as u64, Ordering::Relaxed);
                        }
                    }
                    None => {
                        metrics.bus_invalid.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            PushKind::SUnsubscribe => {
                // Either the confirmation of our own SUNSUBSCRIBE or the server dropping the
                // subscription because the slot moved; only the second leaves local interest.
                let topic = match push.data.first() {
                    Some(Value::BulkString(channel)) => Topic::parse_channel(channel),
                    _ => None,
                };
                if let Some(topic) = topic
                    && hub.has_subscribers(topic)
                    && let Some(bus) = bus.upgrade()
                {
                    tracing::debug!(channel = %topic.channel(), "sharded subscription dropped by the server, subscribing again");
                    bus.mark_lost(topic);
                }
            }
            PushKind::Disconnection => {
                metrics.bus_up.store(0, Ordering::Relaxed);
                tracing::warn!("redis subscriber connection lost, reconnecting");
            }
            _ => {}
        }
    }
}

/// Brings the node's Redis subscriptions in line with the hub's local interest.
async fn reconcile(
    bus: std::sync::Weak<RedisBus>,
    wake: Arc<Notify>,
    mut subscriber: Subscriber,
    hub: Arc<Hub>,
) {
    let mut subscribed: HashSet<Topic> = HashSet::new();
    // Failed changes are retried soon (100-200 ms, the shared policy at its smallest cap):
    // until they succeed, friends' updates do not reach this node.
    let mut retry = crate::retry::Retry::capped_at(crate::retry::FIRST);
    loop {
        let woken = wake.notified();
        let Some(strong) = bus.upgrade() else { return };
        for topic in strong.take_lost() {
            subscribed.remove(&topic);
        }
        let dirty: Vec<Topic> = strong.dirty().drain().collect();
        let metrics = Arc::clone(&strong.metrics);
        drop(strong);
        if dirty.is_empty() {
            woken.await;
            continue;
        }
        let (mut to_subscribe, mut to_unsubscribe) = (Vec::new(), Vec::new());
        for topic in dirty {
            match (hub.has_subscribers(topic), subscribed.contains(&topic)) {
                (true, false) => to_subscribe.push(topic),
                (false, true) => to_unsubscribe.push(topic),
                _ => {}
            }
        }
        let mut failed = Vec::new();
        for (topics, subscribe) in [(to_subscribe, true), (to_unsubscribe, false)] {
            for batch in topics.chunks(SUBSCRIBE_BATCH) {
                let channels: Vec<String> = batch.iter().map(|t| t.channel()).collect();
                let result = subscriber.change(&channels, subscribe).await;
                match result {
                    Ok(()) => {
                        for topic in batch {
                            if subscribe {
                                subscribed.insert(*topic);
                            } else {
                                subscribed.remove(topic);
                            }
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, channels = batch.len(), "redis subscription change failed, retrying");
                        failed.extend_from_slice(batch);
                    }
                }
            }
        }
        metrics
            .bus_subscriptions
            .store(subscribed.len() as i64, Ordering::Relaxed);
        if failed.is_empty() {
            retry.succeeded();
        } else {
            let Some(strong) = bus.upgrade() else { return };
            strong.dirty().extend(failed);
            drop(strong);
            tokio::time::sleep(retry.failed()).await;
        }
    }
}

/// Pings the subscriber connection so a lost connection is re-established (with its
/// subscriptions) promptly, and keeps `bus_up` true to the facts.
///
/// On a cluster, when the bus answers again after a connection loss (a `Disconnection` push
/// or a failed ping: a master died and its replica took over, a node restarted), or after a
/// `sunsubscribe` that the full push queue could not carry, every channel sessions need is
/// subscribed again, one per command.
async fn watch_health(
    bus: std::sync::Weak<RedisBus>,
    mut subscriber: Subscriber,
    hub: Arc<Hub>,
    resync: Arc<AtomicBool>,
) {
    let mut ticker = tokio::time::interval(PING_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let sharded = matches!(subscriber, Subscriber::Cluster(_));
    loop {
        ticker.tick().await;
        let Some(strong) = bus.upgrade() else { return };
        let metrics = Arc::clone(&strong.metrics);
        drop(strong);
        // Bounded: a ping to a dead node must not hang the health check.
        let up = tokio::time::timeout(PING_EVERY * 2, subscriber.ping())
            .await
            .unwrap_or(false);
        let was = metrics.bus_up.swap(i64::from(up), Ordering::Relaxed);
        if up && was == 0 {
            tracing::info!("redis subscriber connection restored");
        }
        let resubscribe = up && (was == 0 || resync.load(Ordering::Acquire));
        if sharded
            && resubscribe
            && let Some(strong) = bus.upgrade()
        {
            resync.store(false, Ordering::Release);
            let topics = hub.topics();
            tracing::info!(
                channels = topics.len(),
                "subscribing again after a cluster outage"
            );
            for topic in topics {
                strong.mark_lost(topic);
            }
        } else if !up && was == 1 {
            tracing::warn!("redis unreachable");
        }
    }
}
