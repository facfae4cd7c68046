//! Where writes become durable before they reach the in-memory catalog.
//!
//! - `Memory` (the embedded default): the catalog is the store; revisions come from a counter.
//! - `Postgres` (given `DATABASE_URL`): PostGIS is the source of truth; every write is committed
//!   there first, and other nodes learn of it through the change feed.

mod postgres;

pub use postgres::{CHANNEL, Change, PgStore};

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A write the store refused or could not make. Nothing was changed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached or failed; retry later.
    Unavailable(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unavailable(detail) => write!(f, "store unavailable: {detail}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// The durable side of writes.
///
/// ```
/// use nearby_services::store::Store;
/// let store = Store::memory();
/// assert!(store.is_memory());
/// ```
#[derive(Clone, Debug)]
pub enum Store {
    /// In-memory only: revisions from a process-wide counter.
    Memory(Arc<AtomicI64>),
    /// PostgreSQL + PostGIS: revisions from the database's sequence.
    Postgres(PgStore),
}

impl Store {
    /// The embedded store.
    ///
    /// ```
    /// # use nearby_services::store::Store;
    /// let _ = Store::memory();
    /// ```
    pub fn memory() -> Store {
        Store::Memory(Arc::new(AtomicI64::new(0)))
    }

    /// True for the embedded store.
    ///
    /// ```
    /// # use nearby_services::store::Store;
    /// assert!(Store::memory().is_memory());
    /// ```
    pub fn is_memory(&self) -> bool {
        matches!(self, Store::Memory(_))
    }
}

/// The next revision of the embedded store.
pub(crate) fn next_revision(counter: &AtomicI64) -> i64 {
    counter.fetch_add(1, Ordering::Relaxed) + 1
}
