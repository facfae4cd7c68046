//! Which gateway nodes are alive, and so which node owns each user (see [`crate::ring`]).
//!
//! With Redis, each node registers itself under a key that expires unless the node renews it
//! (its heartbeat), and lists the members every poll interval:
//!
//! - `{nearby:nodes}`: a set of node ids;
//! - `{nearby:nodes}:node:<id>`: the node's advertised base URL, `SET ... PX <ttl>`.
//!
//! A member whose key has expired is dead and is removed from the set by whoever notices.
//! Every key shares the hash tag `{nearby:nodes}`, so on a Redis Cluster they live in one slot
//! and the registration can be one `MULTI`. A killed node drops out after at most the TTL;
//! a draining node deletes its key at once. Without Redis there is one node, this one.
//!
//! Each node's view may lag the others' by a poll interval: a client may then be redirected
//! to a node that redirects it back once. Views converge within the poll interval.

use crate::ring;
use redis::aio::ConnectionLike;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The set of live node ids.
pub const MEMBERS_KEY: &str = "{nearby:nodes}";

/// The key of a node's registration.
///
/// ```
/// assert_eq!(nearby_ws_gateway::membership::node_key("n1"), "{nearby:nodes}:node:n1");
/// ```
pub fn node_key(id: &str) -> String {
    format!("{MEMBERS_KEY}:node:{id}")
}

/// This node's identity and its membership timings.
///
/// ```
/// let node = nearby_ws_gateway::membership::NodeConfig::default();
/// assert_eq!(node.heartbeat_ttl.as_secs(), 5);
/// ```
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// A name unique among the nodes sharing a Redis.
    pub id: String,
    /// The base URL clients reach this node at (`http://host:port` or `https://...`).
    pub advertise_url: String,
    /// A node that stops renewing its registration is dead after this long.
    pub heartbeat_ttl: Duration,
    /// How often the node re-reads the members.
    pub poll_interval: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            id: "local".to_owned(),
            advertise_url: "http://127.0.0.1:8080".to_owned(),
            heartbeat_ttl: Duration::from_secs(5),
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// A gateway node.
///
/// ```
/// use nearby_ws_gateway::membership::Member;
/// let node = Member::new("n1", "https://n1.example.com/");
/// assert_eq!(node.websocket_url(), "wss://n1.example.com/v1/ws");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    id: String,
    url: String,
    key: u64,
}

impl Member {
    /// A node named `id` reached at the base URL `url`.
    pub fn new(id: impl Into<String>, url: impl Into<String>) -> Self {
        let id = id.into();
        let key = ring::node_key(&id);
        Self {
            id,
            url: url.into().trim_end_matches('/').to_owned(),
            key,
        }
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of its WebSocket endpoint (`ws://` for `http://`, `wss://` for `https://`).
    pub fn websocket_url(&self) -> String {
        let url = if let Some(rest) = self.url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.url.clone()
        };
        format!("{url}/v1/ws")
    }
}

/// The live nodes, as one node sees them.
///
/// ```
/// use nearby_ws_gateway::membership::{Member, Members};
/// let members = Members::new(vec![Member::new("b", "http://b"), Member::new("a", "http://a")]);
/// assert_eq!(members.len(), 2);
/// let owner = members.owner(42).unwrap();
/// assert!(owner.id() == "a" || owner.id() == "b");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    /// Sorted by id.
    nodes: Vec<Member>,
}

impl Members {
    /// The members, in any order.
    pub fn new(mut nodes: Vec<Member>) -> Self {
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        nodes.dedup_by(|a, b| a.id == b.id);
        Self { nodes }
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The nodes, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.nodes.iter()
    }

    /// The node that owns `user` (rendezvous hashing), if there is any node.
    pub fn owner(&self, user: u64) -> Option<&Member> {
        let keyed: Vec<(&str, u64)> = self.nodes.iter().map(|n| (n.id.as_str(), n.key)).collect();
        ring::owner(&keyed, user).map(|index| &self.nodes[index])
    }

    /// The same members without `id`.
    pub fn without(&self, id: &str) -> Members {
        Members {
            nodes: self.nodes.iter().filter(|n| n.id != id).cloned().collect(),
        }
    }
}

/// This node's view of the membership, kept current by a background task in Redis mode.
pub struct Membership {
    me: Member,
    clustered: bool,
    view: watch::Sender<Arc<Members>>,
    leaving: AtomicBool,
    /// Deletes the registration when the node leaves (Redis mode).
    deregister: Option<Box<dyn Fn() -> DeregisterFuture + Send + Sync>>,
}

type DeregisterFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl Membership {
    /// One node, this one, for ever (embedded mode).
    ///
    /// ```
    /// use nearby_ws_gateway::membership::{Member, Membership};
    /// let membership = Membership::single(Member::new("n1", "http://127.0.0.1:8080"));
    /// assert_eq!(membership.owner(7).id(), "n1");
    /// assert!(membership.owns(7));
    /// ```
    pub fn single(me: Member) -> Arc<Membership> {
        let (view, _) = watch::channel(Arc::new(Members::new(vec![me.clone()])));
        Arc::new(Membership {
            me,
            clustered: false,
            view,
            leaving: AtomicBool::new(false),
            deregister: None,
        })
    }

    /// Registers this node in Redis and starts the heartbeat and membership polling task.
    /// A Redis outage does not stop the node: it keeps its last view and re-registers when
    /// Redis is back.
    pub async fn redis<C>(config: &NodeConfig, connection: C) -> Arc<Membership>
    where
        C: ConnectionLike + Clone + Send + Sync + 'static,
    {
        let me = Member::new(config.id.clone(), config.advertise_url.clone());
        let (view, _) = watch::channel(Arc::new(Members::new(vec![me.clone()])));
        let deregister_connection = connection.clone();
        let deregister_id = me.id.clone();
        let membership = Arc::new(Membership {
            me,
            clustered: true,
            view,
            leaving: AtomicBool::new(false),
            deregister: Some(Box::new(move || {
                let mut connection = deregister_connection.clone();
                let id = deregister_id.clone();
                Box::pin(async move {
                    let result = redis::pipe()
                        .atomic()
                        .del(node_key(&id))
                        .srem(MEMBERS_KEY, &id)
                        .query_async::<()>(&mut connection)
                        .await;
                    if let Err(err) = result {
                        tracing::warn!(error = %err, "could not deregister the node; it drops out when its heartbeat expires");
                    }
                })
            })),
        });
        let mut connection = connection;
        if let Err(err) = heartbeat(&mut connection, &membership.me, config.heartbeat_ttl).await {
            tracing::warn!(error = %err, "could not register the node yet, retrying");
        }
        tokio::spawn(maintain(
            Arc::downgrade(&membership),
            connection,
            config.heartbeat_ttl,
            config.poll_interval,
        ));
        membership
    }

    /// This node.
    pub fn me(&self) -> &Member {
        &self.me
    }

    /// Whether other nodes may exist (Redis mode).
    pub fn is_clustered(&self) -> bool {
        self.clustered
    }

    /// The current view.
    pub fn members(&self) -> Arc<Members> {
        self.view.borrow().clone()
    }

    /// A receiver that sees every change of the view.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Members>> {
        self.view.subscribe()
    }

    /// The node that owns `user` now (this node if the view is somehow empty).
    pub fn owner(&self, user: u64) -> Member {
        self.members()
            .owner(user)
            .cloned()
            .unwrap_or_else(|| self.me.clone())
    }

    /// Whether this node owns `user`.
    pub fn owns(&self, user: u64) -> bool {
        self.owner(user).id == self.me.id
    }

    /// Where `user` should go once this node has left: the owner among the other nodes.
    pub fn successor(&self, user: u64) -> Option<Member> {
        self.members().without(&self.me.id).owner(user).cloned()
    }

    /// Leaves the membership: stops the heartbeat and deletes the registration, so the other
    /// nodes take over this node's users at their next poll. The local view is left as it
    /// was (sessions are closed by the drain, not moved one by one).
    pub async fn leave(&self) {
        if self.leaving.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(deregister) = &self.deregister {
            // Bounded: a Redis outage must not hold up the shutdown.
            let _ = tokio::time::timeout(Duration::from_secs(1), deregister()).await;
            tracing::info!(node = %self.me.id, "node left the membership");
        }
    }

    /// Whether [`Membership::leave`] was called.
    pub fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::Acquire)
    }
}

/// Renews this node's registration.
async fn heartbeat<C: ConnectionLike + Send>(
    connection: &mut C,
    me: &Member,
    ttl: Duration,
) -> redis::RedisResult<()> {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    redis::pipe()
        .atomic()
        .cmd("SET")
        .arg(node_key(&me.id))
        .arg(&me.url)
        .arg("PX")
        .arg(ttl_ms)
        .ignore()
        .sadd(MEMBERS_KEY, &me.id)
        .ignore()
        .query_async::<()>(connection)
        .await
}

/// Reads the live members, removing the dead ones from the set.
async fn read_members<C: ConnectionLike + Send>(
    connection: &mut C,
) -> redis::RedisResult<Vec<Member>> {
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(MEMBERS_KEY)
        .query_async(connection)
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = ids.iter().map(|id| node_key(id)).collect();
    let urls: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&keys)
        .query_async(connection)
        .await?;
    let mut live = Vec::new();
    let mut dead = Vec::new();
    for (id, url) in ids.into_iter().zip(urls) {
        match url {
            Some(url) => live.push(Member::new(id, url)),
            None => dead.push(id),
        }
    }
    if !dead.is_empty() {
        // A node that registers again re-adds itself; removing it here is safe either way.
        let _: redis::RedisResult<()> = redis::cmd("SREM")
            .arg(MEMBERS_KEY)
            .arg(&dead)
            .query_async(connection)
            .await;
    }
    Ok(live)
}

/// The heartbeat and polling loop; ends when the node leaves or the membership is dropped.
async fn maintain<C>(
    membership: std::sync::Weak<Membership>,
    mut connection: C,
    ttl: Duration,
    poll: Duration,
) where
    C: ConnectionLike + Send,
{
    // Renew well within the TTL so one slow round trip does not expire the node.
    let renew_every = (ttl / 3).max(Duration::from_millis(50));
    let mut last_renewal = Instant::now();
    let mut ticker = tokio::time::interval(poll.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticker.tick().await;
        let Some(strong) = membership.upgrade() else {
            return;
        };
        if strong.is_leaving() {
            return;
        }
        let me = strong.me.clone();
        drop(strong);
        if last_renewal.elapsed() >= renew_every {
            match heartbeat(&mut connection, &me, ttl).await {
                Ok(()) => last_renewal = Instant::now(),
                Err(err) => tracing::debug!(error = %err, "heartbeat failed"),
            }
        }
        let read = read_members(&mut connection).await;
        let Some(strong) = membership.upgrade() else {
            return;
        };
        if strong.is_leaving() {
            return;
        }
        match read {
            Ok(mut live) => {
                if failing {
                    failing = false;
                    tracing::info!("membership readable again");
                }
                // This node is alive whatever Redis says (its registration may not have
                // landed yet); it leaves only through `leave`.
                if !live.iter().any(|m| m.id == me.id) {
                    live.push(me.clone());
                }
                let members = Members::new(live);
                let changed = **strong.view.borrow() != members;
                if changed {
                    let ids: BTreeMap<&str, &str> =
                        members.iter().map(|m| (m.id(), m.url())).collect();
                    tracing::info!(nodes = members.len(), members = ?ids, "membership changed");
                    strong.view.send_replace(Arc::new(members));
                }
            }
            Err(err) => {
                if !failing {
                    failing = true;
                    tracing::warn!(error = %err, "cannot read the membership; keeping the last view");
                }
            }
        }
    }
}
