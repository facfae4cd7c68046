//! The business write path: what a storage backend must do for a write, once, for every
//! backend ([`BusinessStore`]), and the two backends.
//!
//! The contract, checked for both backends by one suite (`store::conformance`):
//! - a write is one atomic step in the backend that gives it a revision above every earlier
//!   write's;
//! - a create refuses an id that exists ([`WriteError::Conflict`]), a delete an id that does
//!   not ([`WriteError::NotFound`]); a put creates or replaces;
//! - when the call returns `Ok`, the write is durable (as durable as the backend is) and the
//!   node's catalog holds it at its revision, so the very next search on this node sees it;
//! - when it returns `Err`, nothing was changed.
//!
//! Each backend checks the two refusals inside its own atomic step (the catalog under its
//! write lock in memory, one SQL statement in PostgreSQL): checking first and writing after
//! would let two creates of one id both pass.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock, RwLockWriteGuard};

use crate::business::{Business, BusinessId};
use crate::catalog::{Applied, Catalog};
use crate::store::{PgStore, Store, StoreError};

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

/// A backend for business writes (see the module docs for the contract). `catalog` is the
/// node's catalog; a backend takes its write lock only for in-memory work, never across an
/// `.await`.
///
/// ```
/// use std::sync::RwLock;
/// use nearby_services::business::{Business, BusinessId, Name, position};
/// use nearby_services::catalog::Catalog;
/// use nearby_services::store::{BusinessStore, MemoryStore, WriteError};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let catalog = RwLock::new(Catalog::default());
/// let store = MemoryStore::default();
/// let cafe = Business { id: BusinessId::new("cafe")?, name: Name::new("Café")?, position: position(48.85, 2.35)?, category: None };
/// store.create(&catalog, cafe.clone()).await.map_err(|e| format!("{e:?}"))?;
/// assert!(matches!(store.create(&catalog, cafe).await, Err(WriteError::Conflict)));
/// assert_eq!(catalog.read().unwrap().len(), 1);
/// # Ok(()) }
/// ```
pub trait BusinessStore {
    /// Creates `business`; [`WriteError::Conflict`] if its id exists.
    fn create(
        &self,
        catalog: &RwLock<Catalog>,
        business: Business,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;

    /// Creates or replaces `business`; `true` when it was created.
    fn put(
        &self,
        catalog: &RwLock<Catalog>,
        business: Business,
    ) -> impl Future<Output = Result<bool, WriteError>> + Send;

    /// Deletes the business `id`; [`WriteError::NotFound`] if there is none.
    fn delete(
        &self,
        catalog: &RwLock<Catalog>,
        id: &BusinessId,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
}

/// Write access to the catalog. A panic while holding the lock cannot leave the catalog
/// half-updated in a way readers could observe as unsafe; keep serving.
pub(crate) fn write(catalog: &RwLock<Catalog>) -> RwLockWriteGuard<'_, Catalog> {
    catalog
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The embedded backend: the catalog is the store; revisions come from a counter shared by
/// the clones of one store.
///
/// ```
/// use nearby_services::store::{MemoryStore, Store};
/// assert!(Store::Memory(MemoryStore::default()).is_memory());
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    revisions: Arc<AtomicI64>,
}

impl MemoryStore {
    fn next_revision(&self) -> i64 {
        self.revisions.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl BusinessStore for MemoryStore {
    async fn create(
        &self,
        catalog: &RwLock<Catalog>,
        business: Business,
    ) -> Result<(), WriteError> {
        let mut catalog = write(catalog);
        if catalog.get(&business.id).is_some() {
            return Err(WriteError::Conflict);
        }
        catalog.upsert(business, self.next_revision());
        Ok(())
    }

    async fn put(&self, catalog: &RwLock<Catalog>, business: Business) -> Result<bool, WriteError> {
        let applied = write(catalog).upsert(business, self.next_revision());
        Ok(applied == Applied::Created)
    }

    async fn delete(&self, catalog: &RwLock<Catalog>, id: &BusinessId) -> Result<(), WriteError> {
        let mut catalog = write(catalog);
        if catalog.get(id).is_none() {
            return Err(WriteError::NotFound);
        }
        catalog.remove(id, self.next_revision());
        Ok(())
    }
}

/// PostgreSQL commits first (the refusals are in the statement), then the catalog applies the
/// write at the revision the database gave it. The change feed brings the same write back
/// later; applying a revision the catalog already holds changes nothing.
impl BusinessStore for PgStore {
    async fn create(
        &self,
        catalog: &RwLock<Catalog>,
        business: Business,
    ) -> Result<(), WriteError> {
        let revision = PgStore::create(self, &business)
            .await
            .map_err(WriteError::Unavailable)?
            .ok_or(WriteError::Conflict)?;
        write(catalog).upsert(business, revision);
        Ok(())
    }

    async fn put(&self, catalog: &RwLock<Catalog>, business: Business) -> Result<bool, WriteError> {
        let (revision, created) = self
            .upsert(&business)
            .await
            .map_err(WriteError::Unavailable)?;
        write(catalog).upsert(business, revision);
        Ok(created)
    }

    async fn delete(&self, catalog: &RwLock<Catalog>, id: &BusinessId) -> Result<(), WriteError> {
        let revision = PgStore::delete(self, id)
            .await
            .map_err(WriteError::Unavailable)?
            .ok_or(WriteError::NotFound)?;
        write(catalog).remove(id, revision);
        Ok(())
    }
}

/// Whichever backend the service was configured with.
impl BusinessStore for Store {
    async fn create(
        &self,
        catalog: &RwLock<Catalog>,
        business: Business,
    ) -> Result<(), WriteError> {
        match self {
            Store::Memory(store) => store.create(catalog, business).await,
            Store::Postgres(store) => BusinessStore::create(store, catalog, business).await,
        }
    }

    async fn put(&self, catalog: &RwLock<Catalog>, business: Business) -> Result<bool, WriteError> {
        match self {
            Store::Memory(store) => store.put(catalog, business).await,
            Store::Postgres(store) => store.put(catalog, business).await,
        }
    }

    async fn delete(&self, catalog: &RwLock<Catalog>, id: &BusinessId) -> Result<(), WriteError> {
        match self {
            Store::Memory(store) => store.delete(catalog, id).await,
            Store::Postgres(store) => BusinessStore::delete(store, catalog, id).await,
        }
    }
}
