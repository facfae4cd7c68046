//! The state every request handler shares, and the write path that keeps the store and the
//! in-memory catalog in step.

use crate::auth::Secret;
use crate::business::{Business, BusinessId};
use crate::catalog::Catalog;
use crate::metrics::Metrics;
pub use crate::store::WriteError;
use crate::store::{BusinessStore, Change, Store, write_catalog};
use futures_util::{Stream, StreamExt};
use nearby_ws_gateway::Gateway;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// Snapshot rows applied per hold of the catalog's write lock, so searches are not held up
/// for the whole of a large reload.
const SNAPSHOT_BATCH: usize = 4_096;

/// The web console's default map tiles: OpenStreetMap's standard layer.
pub const DEFAULT_TILE_URL: &str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";

/// Limits the HTTP layer enforces.
///
/// ```
/// let limits = nearby_services::state::Limits::default();
/// assert_eq!(limits.body_bytes, 64 * 1024);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request body accepted.
    pub body_bytes: usize,
    /// Longest a request may take before it is abandoned.
    pub request_timeout: Duration,
    /// Longest a client may take to send a request's headers (slow clients, "slowloris", and
    /// idle keep-alive connections are closed after it).
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) accepted, bytes.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
        }
    }
}

/// Shared state; cheap to clone.
///
/// ```
/// use nearby_services::{auth::Secret, catalog::Catalog, state::AppState, store::Store};
/// let state = AppState::new(Store::memory(), Secret::new(vec![1; 32])?, Default::default());
/// assert!(!state.is_ready());
/// state.install_catalog(Catalog::default());
/// assert!(state.is_ready());
/// # Ok::<(), nearby_services::auth::SecretError>(())
/// ```
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: RwLock<Catalog>,
    store: Store,
    secret: Secret,
    metrics: Metrics,
    ready: AtomicBool,
    limits: Limits,
    gateway: OnceLock<Gateway>,
    development: AtomicBool,
    tile_url: OnceLock<String>,
    /// When the state was made (the process start, for the binary).
    created: std::time::Instant,
    /// Seconds from [`Inner::created`] to the first catalog install, once ready.
    load_time_s: OnceLock<f64>,
}

impl AppState {
    /// State with an empty catalog, not ready until [`AppState::install_catalog`].
    ///
    /// ```
    /// # use nearby_services::{auth::Secret, state::AppState, store::Store};
    /// let state = AppState::new(Store::memory(), Secret::new(vec![1; 32])?, Default::default());
    /// assert_eq!(state.catalog().len(), 0);
    /// # Ok::<(), nearby_services::auth::SecretError>(())
    /// ```
    pub fn new(store: Store, secret: Secret, limits: Limits) -> Self {
        Self {
            inner: Arc::new(Inner {
                catalog: RwLock::new(Catalog::default()),
                store,
                secret,
                metrics: Metrics::default(),
                ready: AtomicBool::new(false),
                limits,
                gateway: OnceLock::new(),
                development: AtomicBool::new(false),
                tile_url: OnceLock::new(),
                created: std::time::Instant::now(),
                load_time_s: OnceLock::new(),
            }),
        }
    }

    /// Replaces the catalog (after the initial load) and marks the service ready.
    ///
    /// ```
    /// # use nearby_services::{auth::Secret, catalog::Catalog, state::AppState, store::Store};
    /// # let state = AppState::new(Store::memory(), Secret::new(vec![1; 32])?, Default::default());
    /// state.install_catalog(Catalog::default());
    /// # Ok::<(), nearby_services::auth::SecretError>(())
    /// ```
    pub fn install_catalog(&self, catalog: Catalog) {
        *self.catalog_mut() = catalog;
        let _ = self
            .inner
            .load_time_s
            .set(self.inner.created.elapsed().as_secs_f64());
        self.inner.ready.store(true, Ordering::Release);
    }

    /// Seconds from start to the first catalog install (`None` while loading).
    ///
    /// ```
    /// # use nearby_services::{auth::Secret, catalog::Catalog, state::AppState, store::Store};
    /// # let state = AppState::new(Store::memory(), Secret::new(vec![1; 32])?, Default::default());
    /// assert!(state.load_time_s().is_none());
    /// state.install_catalog(Catalog::default());
    /// assert!(state.load_time_s().is_some());
    /// # Ok::<(), nearby_services::auth::SecretError>(())
    /// ```
    pub fn load_time_s(&self) -> Option<f64> {
        self.inner.load_time_s.get().copied()
    }

    /// Whether the initial load finished.
    ///
    /// ```
    /// # use nearby_services::{auth::Secret, state::AppState, store::Store};
    /// # let state = AppState::new(Store::memory(), Secret::new(vec![1; 32])?, Default::default());
    /// assert!(!state.is_ready());
    /// # Ok::<(), nearby_services::auth::SecretError>(())
    /// ```
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Read access to the catalog. Never hold it across an `.await`.
    ///
    /// ```
    /// # use nearby_services::{auth::Secret, state::AppState, store::Store};
    /// # let state = AppState::new(Store::memory(), Secret::new(vec![1; 32])?, Default::default());
    /// assert!(state.catalog().is_empty());
    /// # Ok::<(), nearby_services::auth::SecretError>(())
    /// ```
    pub fn catalog(&self) -> RwLockReadGuard<'_, Catalog> {
        // A panic while holding the lock cannot leave the catalog half-updated in a way
        // readers could observe as unsafe; keep serving.
        self.inner
            .catalog
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Write access to the catalog. Never hold it across an `.await`.
    pub(crate) fn catalog_mut(&self) -> RwLockWriteGuard<'_, Catalog> {
        write_catalog(&self.inner.catalog)
    }

    /// The durable store.
    ///
    /// ```
    /// # use nearby_services::{auth::Secret, state::AppState, store::Store};
    /// # let state = AppState::new(Store::memory(), Secret::new(vec![1; 32])?, Default::default());
    /// assert!(state.store().is_memory());
    /// # Ok::<(), nearby_services::auth::SecretError>(())
    /// ```
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Attaches the nearby-friends gateway: its routes are then served by [`crate::api::app`],
    /// its readiness is part of `/readyz` and its metrics of `/metrics`. Only the first
    /// attachment counts; returns false for later ones.
    pub fn attach_gateway(&self, gateway: Gateway) -> bool {
        self.inner.gateway.set(gateway).is_ok()
    }

    /// The nearby-friends gateway, if attached.
    pub fn gateway(&self) -> Option<&Gateway> {
        self.inner.gateway.get()
    }

    /// The token secret.
    pub fn secret(&self) -> &Secret {
        &self.inner.secret
    }

    /// Marks the server as running on the development secret: the web console may then mint
    /// tokens (`POST /v1/dev/token`). Off by default.
    ///
    /// ```
    /// # use nearby_services::{auth::Secret, state::AppState, store::Store};
    /// # let state = AppState::new(Store::memory(), Secret::new(vec![1; 32])?, Default::default());
    /// assert!(!state.is_development_mode());
    /// state.set_development_mode(true);
    /// assert!(state.is_development_mode());
    /// # Ok::<(), nearby_services::auth::SecretError>(())
    /// ```
    pub fn set_development_mode(&self, on: bool) {
        self.inner.development.store(on, Ordering::Release);
    }

    /// Whether the server runs on the development secret.
    pub fn is_development_mode(&self) -> bool {
        self.inner.development.load(Ordering::Acquire)
    }

    /// Sets the web console's map tile URL template (`{z}`, `{x}`, `{y}`). Only the first
    /// call counts; returns false for later ones.
    pub fn set_tile_url(&self, url: String) -> bool {
        self.inner.tile_url.set(url).is_ok()
    }

    /// The web console's map tile URL template: [`DEFAULT_TILE_URL`] unless set.
    ///
    /// ```
    /// # use nearby_services::{auth::Secret, state::{AppState, DEFAULT_TILE_URL}, store::Store};
    /// # let state = AppState::new(Store::memory(), Secret::new(vec![1; 32])?, Default::default());
    /// assert_eq!(state.tile_url(), DEFAULT_TILE_URL);
    /// # Ok::<(), nearby_services::auth::SecretError>(())
    /// ```
    pub fn tile_url(&self) -> &str {
        self.inner
            .tile_url
            .get()
            .map_or(DEFAULT_TILE_URL, String::as_str)
    }

    /// The metrics registry.
    ///
    /// ```
    /// # use nearby_services::{auth::Secret, state::AppState, store::Store};
    /// # let state = AppState::new(Store::memory(), Secret::new(vec![1; 32])?, Default::default());
    /// assert!(state.metrics().render(Default::default()).contains("nearby_businesses 0"));
    /// # Ok::<(), nearby_services::auth::SecretError>(())
    /// ```
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The HTTP limits.
    ///
    /// ```
    /// # use nearby_services::{auth::Secret, state::AppState, store::Store};
    /// # let state = AppState::new(Store::memory(), Secret::new(vec![1; 32])?, Default::default());
    /// assert!(state.limits().body_bytes > 0);
    /// # Ok::<(), nearby_services::auth::SecretError>(())
    /// ```
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Creates a business; refuses an id that exists.
    ///
    /// With PostgreSQL the row is committed first and then applied to the catalog at the
    /// revision the database gave it, so the very next search on this node sees it.
    ///
    /// # Errors
    /// [`WriteError::Conflict`] or [`WriteError::Unavailable`].
    pub async fn create(&self, business: Business) -> Result<(), WriteError> {
        self.store().create(&self.inner.catalog, business).await
    }

    /// Creates or replaces a business; `true` when it was created.
    ///
    /// # Errors
    /// [`WriteError::Unavailable`].
    pub async fn put(&self, business: Business) -> Result<bool, WriteError> {
        self.store().put(&self.inner.catalog, business).await
    }

    /// Deletes a business.
    ///
    /// # Errors
    /// [`WriteError::NotFound`] or [`WriteError::Unavailable`].
    pub async fn delete(&self, id: &BusinessId) -> Result<(), WriteError> {
        self.store().delete(&self.inner.catalog, id).await
    }

    /// Keeps the catalog in step with a change feed (see
    /// [`PgStore::change_feed`](crate::store::PgStore::change_feed)) until it ends; spawn it.
    ///
    /// The first snapshot becomes the catalog and marks the service ready. Later snapshots
    /// (after the feed reconnected) are merged: newer revisions are applied, and businesses
    /// held when the feed resubscribed but absent from the snapshot are removed, as they were
    /// deleted while the feed was away. Every change is revision-checked, so this and the
    /// local write path may apply the same change in either order.
    ///
    /// ```
    /// # use nearby_services::{auth::Secret, state::AppState, store::{Change, Store}};
    /// # use nearby_services::business::{Business, BusinessId, Name, position};
    /// # let state = AppState::new(Store::memory(), Secret::new(vec![1; 32])?, Default::default());
    /// let b = Business { id: BusinessId::new("a")?, name: Name::new("A")?, position: position(0.0, 0.0)?, category: None };
    /// let feed = futures_util::stream::iter([
    ///     Change::Subscribed,
    ///     Change::Snapshot(vec![(b.clone(), 1)]),
    ///     Change::Delete(b.id.clone(), 1),
    /// ]);
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// runtime.block_on(state.clone().follow(feed));
    /// assert!(state.is_ready() && state.catalog().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn follow(self, feed: impl Stream<Item = Change>) {
        let mut feed = std::pin::pin!(feed);
        // What the catalog held when the feed last (re)subscribed.
        let mut held: Option<HashMap<BusinessId, i64>> = None;
        while let Some(change) = feed.next().await {
            match change {
                Change::Upsert(business, revision) => {
                    self.metrics().observe_change_feed_event();
                    self.catalog_mut().upsert(business, revision);
                }
                Change::Delete(id, revision) => {
                    self.metrics().observe_change_feed_event();
                    self.catalog_mut().remove(&id, revision);
                }
                Change::Subscribed => {
                    held = Some(if self.is_ready() {
                        self.catalog().revisions().collect()
                    } else {
                        HashMap::new()
                    });
                }
                Change::Snapshot(all) => {
                    self.apply_snapshot(held.take().unwrap_or_default(), all)
                        .await;
                }
            }
        }
        tracing::info!("change feed ended");
    }

    /// Installs the first snapshot, or merges a later one (see [`AppState::follow`]).
    async fn apply_snapshot(&self, held: HashMap<BusinessId, i64>, all: Vec<(Business, i64)>) {
        let started = Instant::now();
        let count = all.len();
        if !self.is_ready() {
            // The bulk build takes about a second per million businesses: off the async
            // workers.
            match tokio::task::spawn_blocking(move || Catalog::build_revisions(all)).await {
                Ok(catalog) => {
                    self.install_catalog(catalog);
                    tracing::info!(
                        businesses = count,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "index loaded from PostgreSQL, ready"
                    );
                }
                Err(err) => tracing::error!(error = %err, "building the index failed"),
            }
            return;
        }
        let mut present = HashSet::with_capacity(count);
        let mut changed = 0_usize;
        let mut rows = all.into_iter().peekable();
        while rows.peek().is_some() {
            {
                let mut catalog = self.catalog_mut();
                for (business, revision) in rows.by_ref().take(SNAPSHOT_BATCH) {
                    present.insert(business.id.clone());
                    // Most of a snapshot is what the catalog already holds; re-inserting it
                    // would only churn the index.
                    if catalog.revision(&business.id) != Some(revision) {
                        catalog.upsert(business, revision);
                        changed += 1;
                    }
                }
            }
            tokio::task::yield_now().await;
        }
        let gone: Vec<(BusinessId, i64)> = held
            .into_iter()
            .filter(|(id, _)| !present.contains(id))
            .collect();
        for batch in gone.chunks(SNAPSHOT_BATCH) {
            let mut catalog = self.catalog_mut();
            for (id, revision) in batch {
                // At the revision held: if a newer write arrived meanwhile it wins.
                catalog.remove(id, *revision);
            }
        }
        tracing::info!(
            businesses = count,
            changed,
            removed = gone.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "caught up with PostgreSQL"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::business::{Name, position};
    use futures_util::stream;

    fn business(id: &str, name: &str) -> Business {
        Business {
            id: BusinessId::new(id).unwrap(),
            name: Name::new(name).unwrap(),
            position: position(1.0, 2.0).unwrap(),
            category: None,
        }
    }

    fn held(state: &AppState) -> Vec<(String, String, i64)> {
        let catalog = state.catalog();
        let mut held: Vec<_> = catalog
            .iter()
            .map(|b| {
                let revision = catalog.revision(&b.id).unwrap();
                (b.id.to_string(), b.name.as_str().to_owned(), revision)
            })
            .collect();
        held.sort();
        held
    }

    #[tokio::test]
    async fn a_later_snapshot_catches_up_missed_changes_and_keeps_newer_writes() {
        let state = AppState::new(
            Store::memory(),
            Secret::new(vec![1; 32]).unwrap(),
            Limits::default(),
        );
        let first = vec![
            (business("a", "A"), 1),
            (business("b", "B"), 2),
            (business("c", "C"), 3),
        ];
        let writer = state.clone();
        let feed = stream::iter([Change::Subscribed, Change::Snapshot(first)])
            // The feed lost its connection; meanwhile b was deleted, c replaced and d created
            // elsewhere. It resubscribes...
            .chain(stream::iter([Change::Subscribed]))
            // ...and while it reads the snapshot this node writes e, which the snapshot
            // (older) lacks and must not remove.
            .chain(stream::once(async move {
                writer.catalog_mut().upsert(business("e", "E"), 7);
                Change::Snapshot(vec![
                    (business("a", "A"), 1),
                    (business("c", "C2"), 5),
                    (business("d", "D"), 4),
                ])
            }))
            // The notification for e arrives afterwards and changes nothing.
            .chain(stream::iter([Change::Upsert(business("e", "E"), 7)]));
        state.clone().follow(feed).await;
        assert!(state.is_ready());
        assert_eq!(
            held(&state),
            [
                ("a".into(), "A".into(), 1),
                ("c".into(), "C2".into(), 5),
                ("d".into(), "D".into(), 4),
                ("e".into(), "E".into(), 7),
            ]
        );
        // b's removal left a tombstone at the revision it was held at: a late notification
        // of that old version is ignored.
        let stale = stream::iter([Change::Upsert(business("b", "B"), 2)]);
        state.clone().follow(stale).await;
        assert!(
            state
                .catalog()
                .get(&BusinessId::new("b").unwrap())
                .is_none()
        );
        assert!(
            state
                .metrics()
                .render(Default::default())
                .contains("nearby_change_feed_events_total 2")
        );
    }
}
