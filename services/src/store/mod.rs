//! Where writes become durable before they reach the in-memory catalog.
//!
//! - `Memory` (the embedded default): the catalog is the store; revisions come from a counter.
//! - `Postgres` (given `DATABASE_URL`): PostGIS is the source of truth; every write is committed
//!   there first, and other nodes learn of it through the change feed.
//!
//! Both implement [`BusinessStore`] (`writes.rs`: the write path's contract, once); one suite
//! (`conformance.rs`) checks them against it.

#[doc(hidden)]
pub mod conformance;
mod postgres;
mod writes;

pub use postgres::{CHANNEL, Change, PgStore};
pub(crate) use writes::write as write_catalog;
pub use writes::{BusinessStore, MemoryStore, WriteError};

/// A write the store refused or could not make. Nothing was changed.
///
/// Each variant displays its cause as well as keeping it as `source()`: the service logs
/// and prints these with `%err` / `to_string()`, and those lines must keep saying what failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL does not parse.
    #[error("store unavailable: invalid database URL: {0}")]
    InvalidUrl(#[source] sqlx::Error),
    /// The server cannot be reached (`target` is host:port/database, never the password).
    #[error("store unavailable: cannot connect to PostgreSQL at {target}: {source}")]
    Connect {
        /// Host, port and database.
        target: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("store unavailable: cannot migrate the database at {target}: {source}")]
    Migrate {
        /// Host, port and database.
        target: String,
        /// Why.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// The database failed during `operation`; retry later.
    #[error("store unavailable: {operation}: {source}")]
    Database {
        /// What was being done: `create`, `upsert`, `delete`, `load`, `import`, ….
        operation: &'static str,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
}

/// The durable side of writes.
///
/// ```
/// use nearby_services::store::Store;
/// let store = Store::memory();
/// assert!(store.is_memory());
/// ```
#[derive(Clone, Debug)]
pub enum Store {
    /// In-memory only: revisions from a counter.
    Memory(MemoryStore),
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
        Store::Memory(MemoryStore::default())
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
