//! The location cache: each user's latest location, expiring after a TTL of silence.
//!
//! - `Memory` (embedded): a map with deadlines; expired entries are never returned and are
//!   purged periodically.
//! - `Redis`: `SET nearby:last:{<id>} <25-byte payload> PX ttl` and one `MGET` per snapshot
//!   (the braces make the user id a Redis Cluster hash tag, the slot of the user's channels).

use crate::event::Event;
use crate::location::Fix;
use crate::redis_link::RedisLink;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

// Tokio's clock (the system's monotonic clock outside paused tests), so a paused test sees
// entries expire as its virtual time passes.
use tokio::time::Instant;

/// The Redis key of a user's cached location.
///
/// ```
/// assert_eq!(nearby_ws_gateway::cache::key(5), "nearby:last:{5}");
/// ```
pub fn key(user: u64) -> String {
    format!("nearby:last:{{{user}}}")
}

/// A cache operation that could not be done.
///
/// It displays its cause as well as keeping it as `source()`: callers log it with `%err`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Redis failed or cannot be reached.
    #[error("location cache unavailable: {0}")]
    Unavailable(#[source] redis::RedisError),
}

/// Latest locations.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use geo_index::LatLng;
/// use nearby_ws_gateway::{cache::LocationCache, location::Fix};
/// use std::time::Duration;
/// let cache = LocationCache::memory(Duration::from_secs(600));
/// let fix = Fix { position: LatLng::new(1.0, 2.0).unwrap(), timestamp_ms: 3 };
/// cache.set(7, fix).await.unwrap();
/// assert_eq!(cache.get_many(&[7, 8]).await.unwrap(), vec![Some(fix), None]);
/// # });
/// ```
#[derive(Clone)]
pub enum LocationCache {
    /// In memory.
    Memory(Arc<MemoryCache>),
    /// In Redis.
    Redis {
        /// A server or cluster connection that reconnects by itself.
        connection: RedisLink,
        /// Time to live of an entry.
        ttl: Duration,
    },
}

impl LocationCache {
    /// An empty in-memory cache whose entries live `ttl`.
    pub fn memory(ttl: Duration) -> Self {
        LocationCache::Memory(Arc::new(MemoryCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }))
    }

    /// Remembers `fix` as the latest location of `user`.
    ///
    /// # Errors
    /// Redis is unavailable.
    pub async fn set(&self, user: u64, fix: Fix) -> Result<(), CacheError> {
        match self {
            LocationCache::Memory(cache) => {
                cache.set(user, fix);
                Ok(())
            }
            LocationCache::Redis { connection, ttl } => {
                let mut connection = connection.clone();
                redis::cmd("SET")
                    .arg(key(user))
                    .arg(Event::Location(fix).encode())
                    .arg("PX")
                    .arg(ttl_ms(*ttl))
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(CacheError::Unavailable)
            }
        }
    }

    /// Forgets the location of `user`.
    ///
    /// # Errors
    /// Redis is unavailable.
    pub async fn delete(&self, user: u64) -> Result<(), CacheError> {
        match self {
            LocationCache::Memory(cache) => {
                cache.lock().remove(&user);
                Ok(())
            }
            LocationCache::Redis { connection, .. } => {
                let mut connection = connection.clone();
                redis::cmd("DEL")
                    .arg(key(user))
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(CacheError::Unavailable)
            }
        }
    }

    /// The latest location of each of `users` (in order), `None` where unknown or expired.
    ///
    /// # Errors
    /// Redis is unavailable.
    pub async fn get_many(&self, users: &[u64]) -> Result<Vec<Option<Fix>>, CacheError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            LocationCache::Memory(cache) => {
                let now = Instant::now();
                let entries = cache.lock();
                Ok(users
                    .iter()
                    .map(|user| {
                        entries
                            .get(user)
                            .filter(|(_, deadline)| *deadline > now)
                            .map(|(fix, _)| *fix)
                    })
                    .collect())
            }
            LocationCache::Redis { connection, .. } => {
                let mut link = connection.clone();
                let mut command = redis::cmd("MGET");
                for &user in users {
                    command.arg(key(user));
                }
                let values: Vec<Option<Vec<u8>>> = match command.query_async(&mut link).await {
                    Ok(values) => values,
                    // On a cluster, a multi-slot MGET can fail for as long as the crate's slot
                    // map is stale after a failover, while single-key reads already reach the
                    // promoted replica: read key by key instead.
                    Err(_) if connection.is_cluster() => get_each(connection, users).await?,
                    Err(err) => return Err(CacheError::Unavailable(err)),
                };
                Ok(values
                    .into_iter()
                    .map(|value| match value.as_deref().and_then(Event::decode) {
                        Some(Event::Location(fix)) => Some(fix),
                        _ => None,
                    })
                    .collect())
            }
        }
    }
}

/// One `GET` per user, 64 in flight, answers in `users` order.
async fn get_each(link: &RedisLink, users: &[u64]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
    use futures_util::StreamExt;
    let mut pending = futures_util::stream::FuturesOrdered::new();
    let mut values = Vec::with_capacity(users.len());
    for &user in users {
        if pending.len() >= 64
            && let Some(value) = pending.next().await
        {
            values.push(value);
        }
        let mut link = link.clone();
        pending.push_back(async move {
            redis::cmd("GET")
                .arg(key(user))
                .query_async::<Option<Vec<u8>>>(&mut link)
                .await
        });
    }
    while let Some(value) = pending.next().await {
        values.push(value);
    }
    values
        .into_iter()
        .collect::<redis::RedisResult<Vec<_>>>()
        .map_err(CacheError::Unavailable)
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The in-memory cache.
pub struct MemoryCache {
    ttl: Duration,
    entries: Mutex<HashMap<u64, (Fix, Instant)>>,
}

impl MemoryCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, (Fix, Instant)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, user: u64, fix: Fix) {
        let deadline = Instant::now() + self.ttl;
        self.lock().insert(user, (fix, deadline));
    }

    /// Drops expired entries; the gateway calls it periodically so memory follows the active
    /// users (expired entries are never returned either way).
    pub fn purge(&self) -> usize {
        let now = Instant::now();
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|_, (_, deadline)| *deadline > now);
        before - entries.len()
    }
}
