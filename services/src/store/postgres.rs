//! PostgreSQL + PostGIS: the durable store when the service is given a database URL.
//!
//! The schema lives in `services/migrations` and is applied by [`PgStore::connect`]. Every
//! write takes a fresh revision from the `business_revision` sequence and, on commit, a
//! statement trigger sends one JSON notification per changed row on the `nearby_businesses`
//! channel; [`PgStore::change_feed`] turns those into [`Change`]s for the in-memory catalog.
//!
//! Coordinates are stored as the doubles given (`ST_MakePoint`) and read back with
//! `ST_Y`/`ST_X`, which returns them bit for bit; the change feed's JSON is printed with
//! shortest round-trip precision and parsed exactly.

use super::StoreError;
use crate::business::{Business, BusinessId, Category, Name, position};
use futures_util::{Stream, TryStreamExt};
use nearby_ws_gateway::retry::Retry;
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The notification channel the trigger in `0001_businesses.sql` sends on.
pub const CHANNEL: &str = "nearby_businesses";

/// Connections per node: writes are single short statements, one connection listens.
const POOL_SIZE: u32 = 8;

/// How long a write waits for a connection (including connecting) before it is answered
/// with "unavailable": short enough to answer well within the HTTP request time limit.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// With no notification for this long, the listener's connection is probed, so a connection
/// that died silently (no reset ever arrives) is noticed and replaced.
const LISTENER_PROBE_AFTER: Duration = Duration::from_secs(30);

/// The cap of the change feed's reconnect backoff (the shared policy, `retry`): at most 6 s
/// between attempts, jitter included.
const BACKOFF_CAP: Duration = Duration::from_secs(3);

/// COPY data is sent in chunks of about this many bytes.
const COPY_CHUNK_BYTES: usize = 1 << 20;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A PostgreSQL + PostGIS business store; cheap to clone (a connection pool inside).
///
/// ```no_run
/// # async fn demo() -> Result<(), nearby_services::store::StoreError> {
/// use nearby_services::business::{Business, BusinessId, Name, position};
/// use nearby_services::store::PgStore;
/// let store = PgStore::connect("postgres://nearby@localhost/nearby").await?;
/// let cafe = Business {
///     id: BusinessId::new("cafe-1").expect("valid"),
///     name: Name::new("Café").expect("valid"),
///     position: position(48.85, 2.35).expect("valid"),
///     category: None,
/// };
/// let revision = store.create(&cafe).await?.expect("new id");
/// assert_eq!(store.delete(&cafe.id).await?, Some(revision));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

/// A change to the businesses table, as the change feed reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A business was created or replaced at this revision.
    Upsert(Business, i64),
    /// A business was deleted; the revision is the one of the deleted row.
    Delete(BusinessId, i64),
    /// The feed is (re)subscribed: every change committed from now on will be delivered. A
    /// [`Change::Snapshot`] follows. Notifications sent while the feed was not subscribed are
    /// lost, so a consumer records what it holds now; whatever it held then and the snapshot
    /// lacks was deleted meanwhile.
    Subscribed,
    /// Every business and its revision, read after the preceding [`Change::Subscribed`].
    Snapshot(Vec<(Business, i64)>),
}

/// The notification payload written by the trigger.
#[derive(Deserialize)]
struct Payload {
    op: String,
    id: String,
    name: Option<String>,
    category: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    revision: i64,
}

impl PgStore {
    /// Connects (waiting at most a few seconds) and brings the schema up to date.
    ///
    /// # Errors
    /// [`StoreError`] if the URL is invalid, the server cannot be reached, or a
    /// migration fails. The message never contains the URL's password.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), nearby_services::store::StoreError> {
    /// let store = nearby_services::store::PgStore::connect("postgres://localhost/nearby").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(StoreError::InvalidUrl)?
            .application_name("nearby");
        // Host, port and database name help an operator and are not secret; the password is.
        let target = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        );
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                target: target.clone(),
                source,
            })?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate { target, source })?;
        Ok(PgStore { pool })
    }

    /// A second, separate pool of `size` connections to the same database (for work that must
    /// not wait behind this store's pool, such as the friends gateway's privacy changes).
    ///
    /// # Errors
    /// [`StoreError`] if the server cannot be reached.
    ///
    /// ```no_run
    /// # async fn demo(store: nearby_services::store::PgStore) -> Result<(), nearby_services::store::StoreError> {
    /// let control = store.another_pool(4).await?;
    /// # Ok(()) }
    /// ```
    pub async fn another_pool(&self, size: u32) -> Result<PgPool, StoreError> {
        let options = (*self.pool.connect_options()).clone();
        PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Database {
                operation: "cannot open a second pool",
                source,
            })
    }

    /// The connection pool, for callers that need SQL this type does not offer.
    ///
    /// ```no_run
    /// # async fn demo(store: nearby_services::store::PgStore) -> Result<(), sqlx::Error> {
    /// sqlx::query("SELECT 1").execute(store.pool()).await?;
    /// # Ok(()) }
    /// ```
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Inserts a new business; `None` when the id exists (nothing changed).
    ///
    /// # Errors
    /// [`StoreError`]: nothing was changed.
    ///
    /// ```no_run
    /// # async fn demo(store: nearby_services::store::PgStore, b: nearby_services::business::Business)
    /// # -> Result<(), nearby_services::store::StoreError> {
    /// assert!(store.create(&b).await?.is_some());
    /// assert_eq!(store.create(&b).await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn create(&self, business: &Business) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO businesses (id, name, category, location) \
             VALUES ($1, $2, $3, ST_SetSRID(ST_MakePoint($5, $4), 4326)::geography) \
             ON CONFLICT (id) DO NOTHING \
             RETURNING revision",
        )
        .bind(business.id.as_str())
        .bind(business.name.as_str())
        .bind(business.category.as_ref().map(Category::as_str))
        .bind(business.position.lat())
        .bind(business.position.lng())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable("create"))
    }

    /// Inserts or replaces a business; returns its new revision and whether it was created.
    ///
    /// # Errors
    /// [`StoreError`]: nothing was changed.
    ///
    /// ```no_run
    /// # async fn demo(store: nearby_services::store::PgStore, b: nearby_services::business::Business)
    /// # -> Result<(), nearby_services::store::StoreError> {
    /// let (first, created) = store.upsert(&b).await?;
    /// let (second, created_again) = store.upsert(&b).await?;
    /// assert!(second > first && !created_again);
    /// # Ok(()) }
    /// ```
    pub async fn upsert(&self, business: &Business) -> Result<(i64, bool), StoreError> {
        // The replacement's revision comes from nextval in SET, evaluated once the row is
        // locked, so it is above the revision of whatever write it replaces. `xmax = 0` holds
        // only for a freshly inserted row version.
        sqlx::query_as::<_, (i64, bool)>(
            "INSERT INTO businesses AS b (id, name, category, location) \
             VALUES ($1, $2, $3, ST_SetSRID(ST_MakePoint($5, $4), 4326)::geography) \
             ON CONFLICT (id) DO UPDATE SET \
                 name = EXCLUDED.name, \
                 category = EXCLUDED.category, \
                 location = EXCLUDED.location, \
                 revision = nextval('business_revision') \
             RETURNING b.revision, (b.xmax = 0)",
        )
        .bind(business.id.as_str())
        .bind(business.name.as_str())
        .bind(business.category.as_ref().map(Category::as_str))
        .bind(business.position.lat())
        .bind(business.position.lng())
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable("upsert"))
    }

    /// Deletes a business; returns the revision of the deleted row, `None` if there was none.
    ///
    /// # Errors
    /// [`StoreError`]: nothing was changed.
    ///
    /// ```no_run
    /// # async fn demo(store: nearby_services::store::PgStore) -> Result<(), nearby_services::store::StoreError> {
    /// let id = nearby_services::business::BusinessId::new("gone").expect("valid");
    /// assert_eq!(store.delete(&id).await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, id: &BusinessId) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar::<_, i64>("DELETE FROM businesses WHERE id = $1 RETURNING revision")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable("delete"))
    }

    /// Every business with its revision, read as one consistent snapshot and streamed row by
    /// row (the whole result is never buffered twice). Rows the service cannot represent
    /// (written around it, e.g. an id with a space) are logged and skipped.
    ///
    /// # Errors
    /// [`StoreError`].
    ///
    /// ```no_run
    /// # async fn demo(store: nearby_services::store::PgStore) -> Result<(), nearby_services::store::StoreError> {
    /// for (business, revision) in store.load_all().await? {
    ///     println!("{} @ {revision}", business.id);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn load_all(&self) -> Result<Vec<(Business, i64)>, StoreError> {
        let started = Instant::now();
        // A size hint from the planner's statistics: cheap, and close enough to avoid most
        // reallocations of a large Vec.
        let estimate: f32 = sqlx::query_scalar(
            "SELECT coalesce(max(reltuples), 0)::real FROM pg_class WHERE oid = 'businesses'::regclass",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable("load"))?;
        let mut all = Vec::with_capacity(estimate.clamp(0.0, 1e8) as usize);
        let mut skipped = 0_u64;
        let mut rows = sqlx::query_as::<_, (String, String, Option<String>, f64, f64, i64)>(
            "SELECT id, name, category, ST_Y(location::geometry), ST_X(location::geometry), \
                    revision \
             FROM businesses",
        )
        .fetch(&self.pool);
        while let Some((id, name, category, latitude, longitude, revision)) =
            rows.try_next().await.map_err(unavailable("load"))?
        {
            match business_from(&id, &name, category.as_deref(), latitude, longitude) {
                Ok(business) => all.push((business, revision)),
                Err(err) => {
                    skipped += 1;
                    tracing::warn!(id = %id.escape_debug(), error = %err, "skipping a database row the service cannot represent");
                }
            }
        }
        tracing::info!(
            businesses = all.len(),
            skipped,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "businesses loaded from PostgreSQL"
        );
        Ok(all)
    }

    /// Creates or replaces many businesses in one transaction: COPY into a temporary table,
    /// then one `INSERT … ON CONFLICT DO UPDATE`. Rows identical to what is stored are left
    /// alone (same revision, no notification), so importing a file twice changes nothing the
    /// second time. A repeated id keeps its last record. Returns how many rows were inserted
    /// or changed.
    ///
    /// # Errors
    /// [`StoreError`]: nothing was changed.
    ///
    /// ```no_run
    /// # async fn demo(store: nearby_services::store::PgStore) -> Result<(), Box<dyn std::error::Error>> {
    /// let places = nearby_services::places_file::load("places.csv".as_ref())?;
    /// let written = store.import(&places).await?;
    /// assert!(written <= places.len() as u64);
    /// # Ok(()) }
    /// ```
    pub async fn import(&self, businesses: &[Business]) -> Result<u64, StoreError> {
        let err = unavailable("import");
        // `ON CONFLICT DO UPDATE` refuses to touch a row twice in one statement, so repeated
        // ids are reduced to their last occurrence here.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(businesses.len());
        for (i, business) in businesses.iter().enumerate() {
            last.insert(business.id.as_str(), i);
        }

        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::raw_sql(
            "CREATE TEMPORARY TABLE business_import ( \
                 id text NOT NULL, name text NOT NULL, category text, \
                 latitude double precision NOT NULL, longitude double precision NOT NULL \
             ) ON COMMIT DROP",
        )
        .execute(&mut *tx)
        .await
        .map_err(err)?;

        let mut copy = tx
            .copy_in_raw(
                "COPY business_import (id, name, category, latitude, longitude) FROM STDIN",
            )
            .await
            .map_err(err)?;
        let mut chunk = String::with_capacity(COPY_CHUNK_BYTES + 1024);
        for (i, business) in businesses.iter().enumerate() {
            if last.get(business.id.as_str()) != Some(&i) {
                continue;
            }
            copy_row(&mut chunk, business);
            if chunk.len() >= COPY_CHUNK_BYTES {
                copy.send(chunk.as_bytes()).await.map_err(err)?;
                chunk.clear();
            }
        }
        if !chunk.is_empty() {
            copy.send(chunk.as_bytes()).await.map_err(err)?;
        }
        copy.finish().await.map_err(err)?;

        // Unchanged rows are skipped by the WHERE clause; locations are compared as WKB
        // because geography's `=` compares bounding boxes only.
        let written = sqlx::raw_sql(
            "INSERT INTO businesses AS b (id, name, category, location) \
             SELECT id, name, category, \
                    ST_SetSRID(ST_MakePoint(longitude, latitude), 4326)::geography \
             FROM business_import \
             ON CONFLICT (id) DO UPDATE SET \
                 name = EXCLUDED.name, \
                 category = EXCLUDED.category, \
                 location = EXCLUDED.location, \
                 revision = nextval('business_revision') \
             WHERE b.name IS DISTINCT FROM EXCLUDED.name \
                OR b.category IS DISTINCT FROM EXCLUDED.category \
                OR ST_AsBinary(b.location) <> ST_AsBinary(EXCLUDED.location)",
        )
        .execute(&mut *tx)
        .await
        .map_err(err)?
        .rows_affected();
        tx.commit().await.map_err(err)?;
        Ok(written)
    }

    /// The change feed: subscribes to the trigger's notifications and yields them as
    /// [`Change`]s, forever.
    ///
    /// It starts with [`Change::Subscribed`] and a [`Change::Snapshot`] of every business,
    /// then one [`Change::Upsert`] or [`Change::Delete`] per committed change (including this
    /// node's own writes). If the connection is lost it reconnects with exponential backoff
    /// (the shared policy of `nearby_ws_gateway::retry`: 0.1 s up to 3 s, plus jitter) and
    /// starts over with `Subscribed` and a fresh `Snapshot`, so changes made while it was
    /// away are caught up. Invalid payloads are logged and skipped. The
    /// stream ends only when the pool is closed.
    ///
    /// ```no_run
    /// # async fn demo(store: nearby_services::store::PgStore) {
    /// use futures_util::StreamExt;
    /// use nearby_services::store::Change;
    /// let mut feed = std::pin::pin!(store.change_feed());
    /// while let Some(change) = feed.next().await {
    ///     if let Change::Upsert(business, revision) = change {
    ///         println!("{} is now at revision {revision}", business.id);
    ///     }
    /// }
    /// # }
    /// ```
    pub fn change_feed(self) -> impl Stream<Item = Change> + Send + 'static {
        let feed = Feed {
            store: self,
            listener: None,
            phase: Phase::Connect,
            retry: Retry::capped_at(BACKOFF_CAP),
            delay: None,
        };
        futures_util::stream::unfold(feed, |mut feed| async move {
            let change = feed.next().await?;
            Some((change, feed))
        })
    }
}

/// Where the change feed is in its cycle.
enum Phase {
    /// No subscription: (re)connect and LISTEN.
    Connect,
    /// Subscribed: read the snapshot.
    Snapshot,
    /// Delivering notifications.
    Live,
}

struct Feed {
    store: PgStore,
    listener: Option<PgListener>,
    phase: Phase,
    /// Consecutive failed attempts, for the backoff.
    retry: Retry,
    /// How long to wait before connecting again, after a failure.
    delay: Option<Duration>,
}

impl Feed {
    /// The next change; `None` once the pool is closed.
    async fn next(&mut self) -> Option<Change> {
        loop {
            match self.phase {
                Phase::Connect => {
                    if let Some(delay) = self.delay.take() {
                        tokio::time::sleep(delay).await;
                    }
                    match self.subscribe().await {
                        Ok(listener) => {
                            self.listener = Some(listener);
                            self.phase = Phase::Snapshot;
                            return Some(Change::Subscribed);
                        }
                        Err(sqlx::Error::PoolClosed) => return None,
                        Err(err) => self.lost("cannot subscribe to the change feed", &err),
                    }
                }
                Phase::Snapshot => match self.store.load_all().await {
                    Ok(all) => {
                        if self.retry.failures() > 0 {
                            tracing::info!(
                                businesses = all.len(),
                                "change feed reconnected; catching up from a full reload"
                            );
                        }
                        self.retry.succeeded();
                        self.phase = Phase::Live;
                        return Some(Change::Snapshot(all));
                    }
                    Err(err) => {
                        if self.store.pool.is_closed() {
                            return None;
                        }
                        self.lost("cannot reload after subscribing", &err);
                    }
                },
                Phase::Live => {
                    let Some(listener) = self.listener.as_mut() else {
                        self.phase = Phase::Connect;
                        continue;
                    };
                    match tokio::time::timeout(LISTENER_PROBE_AFTER, listener.try_recv()).await {
                        Ok(Ok(Some(notification))) => match parse(notification.payload()) {
                            Ok(change) => return Some(change),
                            Err(err) => tracing::warn!(
                                error = %err,
                                payload = %notification.payload().escape_debug(),
                                "skipping an invalid change feed notification"
                            ),
                        },
                        // The listener noticed the connection died.
                        Ok(Ok(None)) => self.lost("change feed lost its connection", &"closed"),
                        Ok(Err(sqlx::Error::PoolClosed)) => return None,
                        Ok(Err(err)) => self.lost("change feed failed", &err),
                        Err(_idle) => {
                            let probe = tokio::time::timeout(
                                ACQUIRE_TIMEOUT,
                                sqlx::query("SELECT 1").execute(&mut *listener),
                            )
                            .await;
                            match probe {
                                Ok(Ok(_)) => {}
                                Ok(Err(err)) => self.lost("change feed connection probe", &err),
                                Err(_) => self.lost("change feed connection probe", &"timed out"),
                            }
                        }
                    }
                }
            }
        }
    }

    async fn subscribe(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.store.pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }

    /// Logs why the subscription is gone and drops it: the next step reconnects, then
    /// reloads everything.
    fn lost(&mut self, what: &str, error: &dyn std::fmt::Display) {
        let delay = self.retry.failed();
        self.delay = Some(delay);
        tracing::warn!(
            error = %error,
            retry_in_ms = delay.as_millis() as u64,
            "{what}"
        );
        self.listener = None;
        self.phase = Phase::Connect;
    }
}
/// Parses a trigger notification.
fn parse(payload: &str) -> Result<Change, String> {
    let payload: Payload =
        serde_json::from_str(payload).map_err(|err| format!("not the expected JSON: {err}"))?;
    match payload.op.as_str() {
        "upsert" => {
            let (Some(name), Some(latitude), Some(longitude)) =
                (payload.name, payload.latitude, payload.longitude)
            else {
                return Err("an upsert needs name, latitude and longitude".into());
            };
            let business = business_from(
                &payload.id,
                &name,
                payload.category.as_deref(),
                latitude,
                longitude,
            )
            .map_err(|err| err.to_string())?;
            Ok(Change::Upsert(business, payload.revision))
        }
        "delete" => {
            let id = BusinessId::new(&payload.id).map_err(|err| err.to_string())?;
            Ok(Change::Delete(id, payload.revision))
        }
        other => Err(format!("unknown op {other:?}")),
    }
}

/// A checked business from database columns.
fn business_from(
    id: &str,
    name: &str,
    category: Option<&str>,
    latitude: f64,
    longitude: f64,
) -> Result<Business, crate::business::FieldError> {
    Ok(Business {
        id: BusinessId::new(id)?,
        name: Name::new(name)?,
        position: position(latitude, longitude)?,
        category: category.map(Category::new).transpose()?,
    })
}

/// Appends one row in COPY's text format: tab-separated, `\N` for NULL, backslash escapes.
fn copy_row(out: &mut String, business: &Business) {
    copy_text(out, business.id.as_str());
    out.push('\t');
    copy_text(out, business.name.as_str());
    out.push('\t');
    match &business.category {
        Some(category) => copy_text(out, category.as_str()),
        None => out.push_str("\\N"),
    }
    // `{:?}` prints the shortest text that parses back to the same double (with an exponent
    // for very small or large values, which PostgreSQL reads as well).
    let _ = writeln!(
        out,
        "\t{:?}\t{:?}",
        business.position.lat(),
        business.position.lng()
    );
}

/// Escapes a value for COPY's text format. Validation already keeps control characters out of
/// every field; escaping them anyway keeps a future relaxation from corrupting an import.
fn copy_text(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// A store error for a failed `operation`. sqlx's messages name the server's complaint or
/// the I/O failure, never the connection URL.
fn unavailable(operation: &'static str) -> impl Fn(sqlx::Error) -> StoreError + Copy {
    move |source| StoreError::Database { operation, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trigger_payloads() {
        let upsert = r#"{"op" : "upsert", "id" : "a", "name" : "A \"q\"", "category" : null,
            "latitude" : 48.85660000000001, "longitude" : 2.352199999999999, "revision" : 4}"#;
        let Ok(Change::Upsert(business, 4)) = parse(upsert) else {
            panic!("not an upsert at 4");
        };
        assert_eq!(business.name.as_str(), "A \"q\"");
        assert_eq!(
            business.position.lat().to_bits(),
            48.85660000000001_f64.to_bits()
        );
        assert_eq!(
            business.position.lng().to_bits(),
            2.352199999999999_f64.to_bits()
        );

        let delete = r#"{"op":"delete","id":"a","name":"A","category":"x","latitude":2,"longitude":1,"revision":7}"#;
        assert_eq!(
            parse(delete),
            Ok(Change::Delete(BusinessId::new("a").unwrap(), 7))
        );
    }

    #[test]
    fn refuses_invalid_payloads() {
        for bad in [
            "",
            "not json",
            r#"{"op":"upsert","id":"a","revision":1}"#,
            r#"{"op":"upsert","id":"a b","name":"A","latitude":0,"longitude":0,"revision":1}"#,
            r#"{"op":"upsert","id":"a","name":"A","latitude":91,"longitude":0,"revision":1}"#,
            r#"{"op":"truncate","id":"a","revision":1}"#,
            r#"{"op":"delete","id":"a"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_numbers_parse_to_the_exact_double() {
        // serde_json's default float parsing may be one ULP off; the crate enables
        // `float_roundtrip`, which this guards.
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x >> 11) as f64 / (1_u64 << 53) as f64 * 360.0 - 180.0;
            let parsed: f64 = serde_json::from_str(&format!("{v:?}")).unwrap();
            assert_eq!(parsed.to_bits(), v.to_bits(), "{v:?}");
        }
    }

    #[test]
    fn copy_rows_are_escaped() {
        let business = Business {
            id: BusinessId::new("a:1").unwrap(),
            name: Name::new(r#"Back\slash, the "bar""#).unwrap(),
            position: position(1e-300, -0.5).unwrap(),
            category: None,
        };
        let mut out = String::new();
        copy_row(&mut out, &business);
        assert_eq!(out, "a:1\tBack\\\\slash, the \"bar\"\t\\N\t1e-300\t-0.5\n");
    }
}
