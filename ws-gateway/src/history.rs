//! Location history: every accepted location appended to PostgreSQL in batches, through a
//! bounded queue.
//!
//! A session never waits for the database: it offers the row to the queue and moves on. One
//! writer task drains the queue in batches (one `INSERT ... SELECT FROM unnest(...)` per
//! batch); while the database is down it retries the batch in hand and the queue fills, and
//! what does not fit is counted in `nearby_location_history_dropped_total`, never silently
//! lost. Without a database (the embedded mode) no history is kept.

use crate::location::Fix;
use crate::metrics::GatewayMetrics;
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// Rows per INSERT at most.
const BATCH: usize = 2_000;
/// Rows waiting at most; about 40 bytes each.
pub const QUEUE_CAPACITY: usize = 262_144;

/// One history row.
#[derive(Clone, Copy, Debug)]
struct Row {
    user: u64,
    fix: Fix,
}

/// Where history goes; cheap to clone.
#[derive(Clone)]
pub struct History {
    queue: Option<mpsc::Sender<Row>>,
    metrics: Arc<GatewayMetrics>,
    /// Batch writes that failed (each is retried), since the start.
    failed_writes: Arc<AtomicU64>,
    /// Woken by the writer when the queue empties (see [`History::flushed`]).
    emptied: Arc<Notify>,
}

impl History {
    /// No history (no database).
    pub fn off(metrics: Arc<GatewayMetrics>) -> Self {
        Self {
            queue: None,
            metrics,
            failed_writes: Arc::default(),
            emptied: Arc::default(),
        }
    }

    /// History in PostgreSQL (migrated by the service); starts the writer task.
    pub fn postgres(pool: PgPool, metrics: Arc<GatewayMetrics>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let failed_writes = Arc::new(AtomicU64::new(0));
        let emptied = Arc::new(Notify::new());
        tokio::spawn(write_batches(
            pool,
            rx,
            Arc::clone(&metrics),
            Arc::clone(&failed_writes),
            Arc::clone(&emptied),
        ));
        Self {
            queue: Some(tx),
            metrics,
            failed_writes,
            emptied,
        }
    }

    /// How many batch writes have failed (and been retried) since the start: lets a test
    /// observe the writer waiting out an outage instead of sleeping and hoping.
    pub fn failed_writes(&self) -> u64 {
        self.failed_writes.load(Ordering::Relaxed)
    }

    /// Waits until every row accepted so far is written (the queue is empty). Woken by the
    /// writer when a batch empties the queue, not polled.
    pub async fn flushed(&self) {
        loop {
            // Registered before the count is read, so an emptying between the two still wakes
            // this waiter.
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if self.metrics.history_queued.load(Ordering::Acquire) <= 0 {
                return;
            }
            emptied.await;
        }
    }

    /// Whether history is kept.
    pub fn is_on(&self) -> bool {
        self.queue.is_some()
    }

    /// Offers a row; counts it as dropped if the queue is full.
    pub fn record(&self, user: u64, fix: Fix) {
        let Some(queue) = &self.queue else { return };
        match queue.try_send(Row { user, fix }) {
            Ok(()) => {
                self.metrics.history_queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.metrics.history_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn write_batches(
    pool: PgPool,
    mut rx: mpsc::Receiver<Row>,
    metrics: Arc<GatewayMetrics>,
    failed_writes: Arc<AtomicU64>,
    emptied: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    // Worst case (jitter included) 2 s between attempts, as before the shared policy.
    let mut retry = crate::retry::Retry::capped_at(Duration::from_secs(1));
    loop {
        if batch.is_empty() && rx.recv_many(&mut batch, BATCH).await == 0 {
            return; // every sender is gone: the gateway stopped
        }
        match insert(&pool, &batch).await {
            Ok(()) => {
                metrics
                    .history_written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                let written = batch.len() as i64;
                let queued = metrics.history_queued.fetch_sub(written, Ordering::AcqRel);
                if queued - written <= 0 {
                    emptied.notify_waiters();
                }
                batch.clear();
                if retry.failures() > 0 {
                    tracing::info!("location history writes resumed");
                }
                retry.succeeded();
            }
            Err(err) => {
                failed_writes.fetch_add(1, Ordering::Relaxed);
                let delay = retry.failed();
                if retry.failures() == 1 {
                    tracing::warn!(error = %err, rows = batch.len(), "location history write failed, retrying");
                }
                // Keep the batch; back off. New rows wait in the bounded queue.
                tokio::time::sleep(delay).await;
            }
        }
    }
}

async fn insert(pool: &PgPool, rows: &[Row]) -> Result<(), sqlx::Error> {
    let users: Vec<i64> = rows
        .iter()
        .map(|r| i64::from_ne_bytes(r.user.to_ne_bytes()))
        .collect();
    let times: Vec<i64> = rows.iter().map(|r| r.fix.timestamp_ms).collect();
    let lats: Vec<f64> = rows.iter().map(|r| r.fix.position.lat()).collect();
    let lngs: Vec<f64> = rows.iter().map(|r| r.fix.position.lng()).collect();
    sqlx::query(
        "INSERT INTO location_history (user_id, recorded_at, location) \
         SELECT u, to_timestamp(t / 1000.0), ST_SetSRID(ST_MakePoint(lng, lat), 4326)::geography \
         FROM unnest($1::bigint[], $2::bigint[], $3::float8[], $4::float8[]) AS r(u, t, lat, lng)",
    )
    .bind(&users)
    .bind(&times)
    .bind(&lats)
    .bind(&lngs)
    .execute(pool)
    .await?;
    Ok(())
}
