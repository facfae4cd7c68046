//! Closed-loop load: `concurrency` workers, each with its own connection and one request in
//! flight, send queries back to back for a fixed time or until a shared request budget is
//! spent.

use super::targets::{Connection, Hit, Target};
use geo_index::LatLng;
use nearby_bench::latency::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// When a run stops.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// After this long (requests in flight at the deadline are completed and counted).
    After(Duration),
    /// After this many requests in total.
    Requests(u64),
}

/// What one timed run measured.
#[derive(Clone)]
pub struct RunResult {
    /// Successful requests.
    pub requests: u64,
    /// Failed requests (each followed by a reconnection).
    pub errors: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Wall time from the start to the last worker's end.
    pub elapsed: Duration,
    /// Latency of the successful requests.
    pub latency: Histogram,
}

impl RunResult {
    /// Successful requests per second.
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Connections kept across runs so that connecting is never timed; a connection lost to an
/// error is replaced before the next run.
pub struct Pool {
    connections: Vec<Option<Connection>>,
}

impl Pool {
    /// Opens `size` connections to `target`.
    ///
    /// # Errors
    /// The first connection failure.
    pub async fn open(target: &Target, size: usize) -> Result<Self, String> {
        let mut connections = Vec::with_capacity(size);
        for _ in 0..size {
            connections.push(Some(target.connect().await?));
        }
        Ok(Self { connections })
    }

    /// Runs the load: worker `w` starts at query `w * len / concurrency` and walks the list
    /// cyclically, so workers ask different questions and every run covers the same list.
    ///
    /// # Errors
    /// A connection that cannot be re-opened before the run, or a run where every request
    /// failed.
    pub async fn run(
        &mut self,
        target: &Arc<Target>,
        centres: &Arc<Vec<LatLng>>,
        radius_m: f64,
        stop: Stop,
    ) -> Result<RunResult, String> {
        for slot in &mut self.connections {
            if slot.is_none() {
                *slot = Some(target.connect().await?);
            }
        }
        let workers = self.connections.len();
        let started = Instant::now();
        let (deadline, budget) = match stop {
            Stop::After(duration) => (Some(started + duration), None),
            Stop::Requests(count) => (
                None,
                Some(Arc::new(AtomicI64::new(
                    i64::try_from(count).unwrap_or(i64::MAX),
                ))),
            ),
        };
        let mut handles = Vec::with_capacity(workers);
        for (w, slot) in self.connections.iter_mut().enumerate() {
            let Some(connection) = slot.take() else {
                return Err("a connection slot is empty after reconnecting".into());
            };
            let worker = Worker {
                target: Arc::clone(target),
                centres: Arc::clone(centres),
                next: w * centres.len() / workers,
                radius_m,
                deadline,
                budget: budget.clone(),
            };
            handles.push(tokio::spawn(worker.run(connection)));
        }
        let mut result = RunResult {
            requests: 0,
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            latency: Histogram::default(),
        };
        for (slot, handle) in self.connections.iter_mut().zip(handles) {
            let outcome = handle
                .await
                .map_err(|e| format!("a load worker panicked: {e}"))?;
            *slot = outcome.connection;
            result.requests += outcome.latency.count();
            result.errors += outcome.errors;
            result.latency.merge(&outcome.latency);
            if result.first_error.is_none() {
                result.first_error = outcome.first_error;
            }
        }
        result.elapsed = started.elapsed();
        if result.requests == 0 && result.errors > 0 {
            return Err(format!(
                "{}: every request failed, first error: {}",
                target.name(),
                result.first_error.unwrap_or_default()
            ));
        }
        Ok(result)
    }
}

/// One worker's share of a run.
struct Worker {
    target: Arc<Target>,
    centres: Arc<Vec<LatLng>>,
    next: usize,
    radius_m: f64,
    deadline: Option<Instant>,
    budget: Option<Arc<AtomicI64>>,
}

/// What a worker hands back: its connection (if still usable) and its counts.
struct Outcome {
    connection: Option<Connection>,
    latency: Histogram,
    errors: u64,
    first_error: Option<String>,
}

/// Consecutive failed reconnections after which a worker gives up.
const MAX_RECONNECT_FAILURES: u32 = 3;

impl Worker {
    async fn run(mut self, connection: Connection) -> Outcome {
        let mut connection = Some(connection);
        let mut outcome = Outcome {
            connection: None,
            latency: Histogram::default(),
            errors: 0,
            first_error: None,
        };
        let mut hits: Vec<Hit> = Vec::with_capacity(super::targets::LIMIT);
        let mut scratch = String::with_capacity(160);
        let mut reconnect_failures = 0;
        loop {
            if let Some(deadline) = self.deadline
                && Instant::now() >= deadline
            {
                break;
            }
            if let Some(budget) = &self.budget
                && budget.fetch_sub(1, Ordering::Relaxed) <= 0
            {
                break;
            }
            let Some(open) = connection.as_mut() else {
                match self.target.connect().await {
                    Ok(c) => {
                        connection = Some(c);
                        reconnect_failures = 0;
                    }
                    Err(e) => {
                        reconnect_failures += 1;
                        outcome.first_error.get_or_insert(e);
                        if reconnect_failures >= MAX_RECONNECT_FAILURES {
                            break;
                        }
                        // Give the server a moment rather than spinning on connect().
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                continue;
            };
            let centre = self.centres[self.next];
            self.next = (self.next + 1) % self.centres.len();
            let sent = Instant::now();
            match open
                .search(&self.target, centre, self.radius_m, &mut hits, &mut scratch)
                .await
            {
                Ok(()) => outcome.latency.record(sent.elapsed()),
                Err(e) => {
                    outcome.errors += 1;
                    outcome.first_error.get_or_insert(e);
                    // The connection's state is unknown after an error: start afresh.
                    connection = None;
                }
            }
        }
        outcome.connection = connection;
        outcome
    }
}
