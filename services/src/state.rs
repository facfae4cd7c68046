//! The state every request handler shares, and the write path that keeps the store and the
//! in-memory catalog in step.

use crate::auth::Secret;
use crate::business::{Business, BusinessId};
use crate::catalog::{Applied, Catalog};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError, next_revision};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(10),
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
}

/// Why a write did not happen. In every case nothing was changed.
#[derive(Debug)]
#[non_exhaustive]
pub enum WriteError {
    /// A business with that id exists.
    Conflict,
    /// No business with that id.
    NotFound,
    /// The store cannot take writes now.
    Unavailable(StoreError),
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
        self.inner.ready.store(true, Ordering::Release);
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
        self.inner
            .catalog
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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

    /// The token secret.
    pub(crate) fn secret(&self) -> &Secret {
        &self.inner.secret
    }

    /// The metrics registry.
    ///
    /// ```
    /// # use nearby_services::{auth::Secret, state::AppState, store::Store};
    /// # let state = AppState::new(Store::memory(), Secret::new(vec![1; 32])?, Default::default());
    /// assert!(state.metrics().render(0).contains("nearby_businesses 0"));
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
    /// # Errors
    /// [`WriteError::Conflict`] or [`WriteError::Unavailable`].
    pub async fn create(&self, business: Business) -> Result<(), WriteError> {
        match self.store() {
            Store::Memory(counter) => {
                let mut catalog = self.catalog_mut();
                if catalog.get(&business.id).is_some() {
                    return Err(WriteError::Conflict);
                }
                catalog.upsert(business, next_revision(counter));
                Ok(())
            }
        }
    }

    /// Creates or replaces a business; `true` when it was created.
    ///
    /// # Errors
    /// [`WriteError::Unavailable`].
    pub async fn put(&self, business: Business) -> Result<bool, WriteError> {
        match self.store() {
            Store::Memory(counter) => {
                let applied = self.catalog_mut().upsert(business, next_revision(counter));
                Ok(applied == Applied::Created)
            }
        }
    }

    /// Deletes a business.
    ///
    /// # Errors
    /// [`WriteError::NotFound`] or [`WriteError::Unavailable`].
    pub async fn delete(&self, id: &BusinessId) -> Result<(), WriteError> {
        match self.store() {
            Store::Memory(counter) => {
                let mut catalog = self.catalog_mut();
                if catalog.get(id).is_none() {
                    return Err(WriteError::NotFound);
                }
                catalog.remove(id, next_revision(counter));
                Ok(())
            }
        }
    }
}
