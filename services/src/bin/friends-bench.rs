//! `friends-bench`: load for the nearby-friends WebSocket gateway (`/v1/ws`).
//!
//! ```text
//! friends-bench graph --users N --circle G [--seed S]        > friends.csv
//! friends-bench tokens --users N --secret S                  > tokens.json
//! friends-bench run --url ws://HOST:PORT --secret S --users N --circle G --rate R
//!                   --duration SECS [--source-ips IP,IP] [--server-pid PID] [--idle]
//!                   [--approximate-share F]
//! ```
//!
//! Users `1..=N` are split into circles of `G` consecutive ids, everyone in a circle a friend
//! of everyone else in it. `run` opens one WebSocket per user, places each circle around its
//! own point of a 50 km box around Paris (members within 1 km of it, so every friend is always
//! well within the 8 km radius and every update must reach all `G - 1` friends), waits for
//! every snapshot, then sends `R` location updates per second spread evenly over the users and
//! times each `friend_location` push from the sender's send instant to its arrival at the
//! friend's socket. Expected deliveries: each update times the sender's friends that hold a
//! connection. `scripts/bench-friends` sets up a throwaway Redis and server around it.
//!
//! `--approximate-share F` mixes in approximate sharing: before any connection opens, the
//! users picked by [`approximate_sharer`] (a fraction F, spread evenly over the ids) set
//! `PUT /v1/me/sharing {"enabled":true,"precision":"approximate"}` and the others `"exact"`
//! (so a server that outlives a run holds exactly this mix). Their friends then see them at
//! the centre of an H3 cell, pushed only when that cell changes, which cannot be predicted
//! per update: the delivery ratio is computed over exact pairs only (senders sharing
//! exactly), and approximate pushes are reported apart, as a share of the updates their
//! senders sent times the friends connected. Every push and snapshot entry is checked
//! against what its sender shares: an approximate one must say `"precision":"approximate"`,
//! carry a plausible `accuracy_m`, sit on a resolution-7 cell centre near the sender's circle
//! and never on one of the sender's own recent coordinates; an exact one must say `"exact"`
//! and come from an exact sharer. Any violation fails the run (exit status 1, after the
//! report). The precision is written through the friend store, so the server needs a
//! writable one: the embedded mode, or a database (Redis without one answers 409
//! `read_only`).

use clap::{Args, Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use nearby_services::auth::{Secret, unix_now};
use nearby_ws_gateway::approximate;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, http};

/// Paris: the city the circles are spread over.
const CITY: (f64, f64) = (48.8566, 2.3522);
/// Side of the box the circle centres are drawn in, metres.
const CITY_BOX_M: f64 = 50_000.0;
/// Members stay within this distance of their circle's centre, so two friends are at most
/// 2 km apart: far inside the default 8 km radius and its hysteresis band.
const CIRCLE_SPREAD_M: f64 = 1_000.0;
/// Largest step of one update, metres.
const STEP_M: f64 = 5.0;
const METRES_PER_DEGREE: f64 = 111_320.0;
/// Distinct error codes and close codes kept; a misbehaving server cannot grow the maps.
const MAX_CODES: usize = 32;
/// Per user, the last few positions sent, which an approximate push must not carry.
const RECENT: usize = 8;
/// Two coordinates closer than this (degrees, ~0.1 m) are the same position.
const SAME_POSITION_DEG: f64 = 1e-6;

#[derive(Parser)]
#[command(
    name = "friends-bench",
    about = "Load for the nearby-friends WebSocket gateway: circles of friends moving around a city"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the friendships CSV (`user_id,friend_id`, each pair once) for `serve --friends`.
    Graph {
        /// Users 1..=N.
        #[arg(long)]
        users: u64,
        /// Users per circle of mutual friends.
        #[arg(long)]
        circle: u64,
        /// Shuffles the order of the rows (the friendships are the same for any seed).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Print a JSON array of tokens, index i for user i + 1 (for k6).
    Tokens {
        /// Users 1..=N.
        #[arg(long)]
        users: u64,
        /// The server's signing secret.
        #[arg(long, env = "NEARBY_SECRET", hide_env_values = true)]
        secret: String,
        /// Token lifetime, seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
    },
    /// Connect every user, wait for the snapshots, drive updates, report.
    Run(Box<RunArgs>),
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Server base URL, e.g. ws://127.0.0.1:8080 (`/v1/ws` is appended when missing).
    #[arg(long)]
    url: String,
    /// The server's signing secret (tokens are minted in process).
    #[arg(long, env = "NEARBY_SECRET", hide_env_values = true)]
    secret: String,
    /// Users 1..=N, one connection each.
    #[arg(long)]
    users: u64,
    /// Users per circle of friends (the graph given to the server must match).
    #[arg(long, default_value_t = 10)]
    circle: u64,
    /// Location updates per second, all users together.
    #[arg(long, default_value_t = 1_000.0)]
    rate: f64,
    /// Seconds of updates (or of holding the connections with --idle).
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Client source addresses, used round-robin: one address has only ~28K ephemeral ports.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
    source_ips: Vec<IpAddr>,
    /// Server process id, to report its resident memory from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Only hold the connections: no updates.
    #[arg(long)]
    idle: bool,
    /// With --idle, still send the first location and wait for the snapshot.
    #[arg(long)]
    idle_locate: bool,
    /// Seconds to let the server settle after every connection is open, before measuring.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Seconds to keep reading after the last update, for pushes still in flight.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,
    /// Seconds allowed for one connection's TCP connect, upgrade and snapshot.
    #[arg(long, default_value_t = 20.0)]
    connect_timeout: f64,
    /// Seed for the circle centres and the moves.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Client runtime threads; default: the number of CPUs.
    #[arg(long)]
    threads: Option<usize>,
    /// Fraction of users (0..=1, spread evenly over the ids) who share only approximately
    /// with every friend (`PUT /v1/me/sharing`, set for every user before connecting when
    /// above 0). Needs a writable friend store: embedded mode, or a database.
    #[arg(long, default_value_t = 0.0)]
    approximate_share: f64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Graph {
            users,
            circle,
            seed,
        } => graph(users, circle, seed),
        Command::Tokens { users, secret, ttl } => tokens(users, &secret, ttl),
        Command::Run(args) => {
            let threads = args
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads.max(1))
                .enable_all()
                .build()
                .map_err(|err| format!("cannot start the async runtime: {err}"))
                .and_then(|rt| rt.block_on(run(*args)))
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("friends-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

// --- graph and tokens -------------------------------------------------------------------

fn check_sizes(users: u64, circle: u64) -> Result<(), String> {
    if users == 0 {
        return Err("--users must be at least 1".to_owned());
    }
    if circle < 2 {
        return Err("--circle must be at least 2 (a circle of one has no friends)".to_owned());
    }
    Ok(())
}

/// The circle (0-based) of a user, and its first and last member.
fn circle_of(user: u64, circle: u64, users: u64) -> (u64, u64, u64) {
    let index = (user - 1) / circle;
    let first = index * circle + 1;
    let last = (first + circle - 1).min(users);
    (index, first, last)
}

/// Whether `user` (1-based) shares only approximately when a fraction `share` of the users
/// does: the users at which `floor(id * share)` steps up, so exactly `floor(N * share)` of
/// users `1..=N` do, spread evenly over the ids (with 0.5, the even ids: half of every
/// circle). `k6/nearby_friends.js` picks the same users.
fn approximate_sharer(user: u64, share: f64) -> bool {
    user > 0 && share > 0.0 && (user as f64 * share).floor() > ((user - 1) as f64 * share).floor()
}

/// Where a circle's members gather: its own point of the box around the city.
fn circle_centre(seed: u64, circle_index: u64) -> Offset {
    let mut centre_rng = Rng::new(seed ^ circle_index.wrapping_mul(0x9e37_79b9));
    Offset {
        east: centre_rng.signed() * CITY_BOX_M / 2.0,
        north: centre_rng.signed() * CITY_BOX_M / 2.0,
    }
}

fn graph(users: u64, circle: u64, seed: Option<u64>) -> Result<(), String> {
    use std::io::Write as _;
    check_sizes(users, circle)?;
    let mut pairs = Vec::new();
    let mut first = 1;
    while first <= users {
        let last = (first + circle - 1).min(users);
        for a in first..=last {
            for b in a + 1..=last {
                pairs.push((a, b));
            }
        }
        first = last + 1;
    }
    if let Some(seed) = seed {
        // Fisher-Yates, so the server's seeding does not always see ids in order.
        let mut rng = Rng::new(seed);
        for i in (1..pairs.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            pairs.swap(i, j);
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let write = |out: &mut std::io::BufWriter<_>| -> std::io::Result<()> {
        writeln!(out, "user_id,friend_id")?;
        for (a, b) in &pairs {
            writeln!(out, "{a},{b}")?;
        }
        out.flush()
    };
    write(&mut out).map_err(|err| format!("cannot write the graph: {err}"))?;
    eprintln!(
        "friends-bench graph: {users} users in circles of {circle}: {} friendships",
        pairs.len()
    );
    Ok(())
}

fn tokens(users: u64, secret: &str, ttl: u64) -> Result<(), String> {
    use std::io::Write as _;
    let secret = Secret::new(secret.as_bytes().to_vec()).map_err(|err| err.to_string())?;
    let now = unix_now();
    let list: Vec<String> = (1..=users)
        .map(|user| secret.mint(user, false, ttl, now))
        .collect();
    let text = serde_json::to_string(&list).map_err(|err| err.to_string())?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "{text}").map_err(|err| format!("cannot write the tokens: {err}"))
}

// --- small helpers ----------------------------------------------------------------------

/// SplitMix64: deterministic, good enough to place points and pick steps.
#[derive(Clone, Copy)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [-1, 1).
    fn signed(&mut self) -> f64 {
        self.unit() * 2.0 - 1.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A position as metres east and north of the city centre (a flat approximation is plenty
/// at 50 km; the server measures great-circle distances).
#[derive(Clone, Copy)]
struct Offset {
    east: f64,
    north: f64,
}

impl Offset {
    fn lat_lng(self) -> (f64, f64) {
        let lat = CITY.0 + self.north / METRES_PER_DEGREE;
        let lng = CITY.1 + self.east / (METRES_PER_DEGREE * CITY.0.to_radians().cos());
        (lat, lng)
    }
}

/// The shared clock: one wall-clock reading at start plus a monotonic offset, so message
/// timestamps (Unix ms) and send instants (µs since start) agree exactly.
struct Clock {
    start: Instant,
    start_unix_us: u64,
}

impl Clock {
    fn new() -> Self {
        let start_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Self {
            start: Instant::now(),
            start_unix_us,
        }
    }

    fn micros(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn unix_ms_at(&self, micros: u64) -> u64 {
        (self.start_unix_us + micros) / 1_000
    }
}

/// Log-linear histogram of microseconds: 32 sub-buckets per power of two (≤ 3 % error),
/// fixed size whatever the sample count, lock-free.
struct Histogram {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    max: AtomicU64,
    sum: AtomicU64,
}

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
// Values below 2 SUB have a bucket each; then SUB buckets per power of two up to 2^64.
const BUCKETS: usize = ((64 - SUB_BITS + 1) as usize) * SUB as usize;

impl Histogram {
    fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    fn index(value: u64) -> usize {
        if value < 2 * SUB {
            return value as usize;
        }
        let msb = 63 - value.leading_zeros();
        let shift = msb - SUB_BITS;
        let mantissa = value >> shift; // in [SUB, 2 SUB)
        ((u64::from(shift) + 1) * SUB + (mantissa - SUB)) as usize
    }

    /// The largest value that falls in bucket `index`.
    fn upper(index: usize) -> u64 {
        let index = index as u64;
        if index < 2 * SUB {
            return index;
        }
        let shift = index / SUB - 1;
        let mantissa = SUB + index % SUB;
        // The top bucket's bound is 2^64: the shift wraps to 0, and 0 - 1 is u64::MAX.
        ((mantissa + 1) << shift).wrapping_sub(1)
    }

    fn record(&self, micros: u64) {
        if let Some(bucket) = self.buckets.get(Self::index(micros)) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(micros, Ordering::Relaxed);
        self.max.fetch_max(micros, Ordering::Relaxed);
    }

    /// The `q` quantile (0..=1), as the upper bound of its bucket capped at the maximum.
    fn quantile(&self, q: f64) -> u64 {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return 0;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= rank {
                return Self::upper(index).min(self.max.load(Ordering::Relaxed));
            }
        }
        self.max.load(Ordering::Relaxed)
    }
}

/// A bounded tally of codes (error codes, close codes).
#[derive(Default)]
struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    fn add(&self, code: &str) {
        let mut map = match self.0.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(count) = map.get_mut(code) {
            *count += 1;
        } else if map.len() < MAX_CODES {
            map.insert(code.to_owned(), 1);
        } else {
            *map.entry("(other)".to_owned()).or_insert(0) += 1;
        }
    }

    fn snapshot(&self) -> BTreeMap<String, u64> {
        match self.0.lock() {
            Ok(map) => map.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// The server's resident memory, kB, from /proc/PID/status.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
}

/// CPU time the server has used (user + system), seconds, from /proc/PID/stat (in clock
/// ticks, which Linux reports at USER_HZ = 100 per second).
fn cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after its closing parenthesis are
    // plain: state is field 3, utime field 14, stime field 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

// --- run --------------------------------------------------------------------------------

/// Where the run is; every connection task watches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Connections are being opened.
    Connecting,
    /// Updates are sent (unless idle).
    Running,
    /// No more updates; pushes still in flight are read.
    Draining,
    /// Close everything.
    Stop,
}

#[derive(Default)]
struct Counters {
    attempted: AtomicU64,
    held: AtomicU64,
    failed: AtomicU64,
    /// Tasks that finished connecting, successfully or not.
    settled: AtomicU64,
    snapshots: AtomicU64,
    snapshot_friends: AtomicU64,
    /// Snapshot entries by the precision they announce.
    snapshot_exact: AtomicU64,
    snapshot_approximate: AtomicU64,
    updates_sent: AtomicU64,
    /// Of `updates_sent`, those of approximate sharers.
    approximate_updates_sent: AtomicU64,
    /// Pushes expected from exact sharers' updates: one per connected friend.
    expected: AtomicU64,
    /// Exact pushes (`"precision":"exact"`) received for updates of the timed phase.
    deliveries: AtomicU64,
    /// Approximate sharers' updates times their connected friends: the most approximate
    /// pushes there could be (one arrives only when the sender's cell changes).
    approximate_pair_updates: AtomicU64,
    /// Approximate pushes received for updates of the timed phase.
    approximate_deliveries: AtomicU64,
    /// Pushes or snapshot entries that break what the sender shares: must stay 0.
    violations: AtomicU64,
    /// `friend_location` for a location sent before the timed phase (first locations).
    early_deliveries: AtomicU64,
    /// Deliveries whose send instant was overwritten by a newer update: timed in ms.
    coarse: AtomicU64,
    /// `friend_location` (or snapshot entry) about someone outside the receiver's circle:
    /// must stay 0.
    strangers: AtomicU64,
    gone: AtomicU64,
    /// `friend_gone` once the run is over: friends whose connections are being closed.
    gone_at_close: AtomicU64,
    /// Connections that ended while they should have been held.
    dropped: AtomicU64,
    /// Update ticks skipped because the socket could not take the message.
    send_errors: AtomicU64,
}

struct Shared {
    args: RunArgs,
    clock: Clock,
    counters: Counters,
    latency: Histogram,
    /// The same latencies by minute of the timed phase: is p99 stable over a long run?
    latency_by_minute: Vec<Histogram>,
    errors: Tally,
    closes: Tally,
    failures: Tally,
    /// Per circle: connections held, so an update expects a push only to friends that are
    /// actually connected (a failed connection is reported as such, not as lost pushes).
    held_in_circle: Vec<AtomicU64>,
    /// Per user (index user - 1): µs since start of their latest update, 0 when none yet.
    sent_at: Vec<AtomicU64>,
    /// Per user (index user - 1): the positions they sent last, which no approximate push
    /// about them may carry.
    recent: Vec<Mutex<Recent>>,
    /// Update-to-push latency of the approximate pushes (`latency` holds the exact ones).
    approximate_latency: Histogram,
    /// Precision violations by kind.
    violation_kinds: Tally,
    /// The timed phase's start, Unix ms; deliveries stamped before it are the first
    /// locations'.
    run_start_unix_ms: AtomicU64,
    secret: Secret,
    target: SocketAddr,
    request: http::Request<()>,
    connect_gate: Semaphore,
    next_source: AtomicUsize,
    /// Set just before the connections are closed: from then on `friend_gone` is expected.
    stopping: AtomicBool,
}

/// A server message, as much as the bench reads of it.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    user_id: Option<u64>,
    timestamp: Option<u64>,
    #[serde(borrow)]
    code: Option<&'a str>,
    #[serde(borrow)]
    friends: Option<Vec<Shown<'a>>>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    #[serde(borrow)]
    precision: Option<&'a str>,
    accuracy_m: Option<f64>,
}

impl<'a> Incoming<'a> {
    /// The friend a `friend_location` shows.
    fn shown(&self) -> Shown<'a> {
        Shown {
            user_id: self.user_id,
            latitude: self.latitude,
            longitude: self.longitude,
            precision: self.precision,
            accuracy_m: self.accuracy_m,
        }
    }
}

/// What a push or a snapshot entry shows of a friend.
#[derive(Deserialize, Clone, Copy)]
struct Shown<'a> {
    user_id: Option<u64>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    #[serde(borrow)]
    precision: Option<&'a str>,
    accuracy_m: Option<f64>,
}

/// A user's last positions sent (timestamp ms, latitude, longitude), a ring.
#[derive(Default)]
struct Recent {
    at: [(u64, f64, f64); RECENT],
    next: usize,
}

impl Recent {
    fn push(&mut self, timestamp_ms: u64, (lat, lng): (f64, f64)) {
        if let Some(slot) = self.at.get_mut(self.next % RECENT) {
            *slot = (timestamp_ms, lat, lng);
        }
        self.next = self.next.wrapping_add(1);
    }

    fn holds(&self, lat: f64, lng: f64) -> bool {
        self.at
            .iter()
            .take(self.next.min(RECENT))
            .any(|&(_, la, ln)| {
                (la - lat).abs() < SAME_POSITION_DEG && (ln - lng).abs() < SAME_POSITION_DEG
            })
    }
}

async fn run(args: RunArgs) -> Result<(), String> {
    check_sizes(args.users, args.circle)?;
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err("--rate must be a positive number of updates per second".to_owned());
    }
    if !(args.duration.is_finite() && args.duration > 0.0) {
        return Err("--duration must be a positive number of seconds".to_owned());
    }
    if args.source_ips.is_empty() {
        return Err("--source-ips needs at least one address".to_owned());
    }
    if !(0.0..=1.0).contains(&args.approximate_share) {
        return Err("--approximate-share must be a fraction between 0 and 1".to_owned());
    }
    let secret = Secret::new(args.secret.as_bytes().to_vec()).map_err(|err| err.to_string())?;
    let mut url = args.url.trim_end_matches('/').to_owned();
    if !url.ends_with("/v1/ws") {
        url.push_str("/v1/ws");
    }
    let request = url
        .as_str()
        .into_client_request()
        .map_err(|err| format!("bad --url {url}: {err}"))?;
    let host = request
        .uri()
        .host()
        .ok_or_else(|| format!("--url {url} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = request.uri().port_u16().unwrap_or(80);
    let target = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|err| format!("cannot resolve {host}: {err}"))?
        .find(|addr| addr.is_ipv4() == args.source_ips[0].is_ipv4())
        .ok_or_else(|| format!("{host} has no address of the source addresses' family"))?;
    let per_user = args.rate / args.users as f64;
    if !args.idle && per_user > 1.0 {
        eprintln!(
            "friends-bench: {per_user:.2} updates/s per user: past the server's default \
             --location-rate of 1/s, expect rate_limited errors unless it was raised"
        );
    }

    let shared = Arc::new(Shared {
        clock: Clock::new(),
        counters: Counters::default(),
        latency: Histogram::new(),
        latency_by_minute: (0..(args.duration / 60.0).ceil() as usize + 1)
            .map(|_| Histogram::new())
            .collect(),
        errors: Tally::default(),
        closes: Tally::default(),
        failures: Tally::default(),
        sent_at: (0..args.users).map(|_| AtomicU64::new(0)).collect(),
        recent: (0..args.users)
            .map(|_| Mutex::new(Recent::default()))
            .collect(),
        approximate_latency: Histogram::new(),
        violation_kinds: Tally::default(),
        held_in_circle: (0..args.users.div_ceil(args.circle))
            .map(|_| AtomicU64::new(0))
            .collect(),
        run_start_unix_ms: AtomicU64::new(u64::MAX),
        secret,
        target,
        request,
        connect_gate: Semaphore::new(args.connect_concurrency.max(1)),
        next_source: AtomicUsize::new(0),
        stopping: AtomicBool::new(false),
        args: args.clone(),
    });
    if args.approximate_share > 0.0 {
        set_precisions(&shared).await?;
    }
    let rss_before = args.server_pid.and_then(rss_kb);
    let (phase_tx, phase_rx) = watch::channel(Phase::Connecting);
    // The timed phase's start (µs since the clock's start), sent with `Running`.
    let (start_tx, start_rx) = watch::channel(0u64);

    eprintln!(
        "friends-bench: connecting {} users to {url} ({} at a time, from {} source address(es))",
        args.users,
        args.connect_concurrency,
        args.source_ips.len()
    );
    let connect_started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for user in 1..=args.users {
        let shared = Arc::clone(&shared);
        let phase = phase_rx.clone();
        let start = start_rx.clone();
        tasks.spawn(async move { user_task(shared, user, phase, start).await });
    }
    // Progress while connecting; the tasks count themselves.
    let mut last_report = Instant::now();
    while shared.counters.settled.load(Ordering::Relaxed) < args.users {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            eprintln!(
                "friends-bench: {} held, {} failed of {} after {:.0} s",
                shared.counters.held.load(Ordering::Relaxed),
                shared.counters.failed.load(Ordering::Relaxed),
                args.users,
                connect_started.elapsed().as_secs_f64()
            );
        }
    }
    let connect_s = connect_started.elapsed().as_secs_f64();
    let held_at_start = shared.counters.held.load(Ordering::Relaxed);
    eprintln!(
        "friends-bench: {held_at_start} connections held after {connect_s:.1} s; settling {:.0} s",
        args.settle
    );
    tokio::time::sleep(Duration::from_secs_f64(args.settle.max(0.0))).await;
    let rss_held = args.server_pid.and_then(rss_kb);

    let cpu_start = args.server_pid.and_then(cpu_s);
    let run_start_us = shared.clock.micros();
    shared
        .run_start_unix_ms
        .store(shared.clock.unix_ms_at(run_start_us), Ordering::Release);
    let _ = start_tx.send(run_start_us);
    let _ = phase_tx.send(Phase::Running);
    eprintln!(
        "friends-bench: {} for {:.0} s",
        if args.idle {
            "holding".to_owned()
        } else {
            format!("{:.0} updates/s", args.rate)
        },
        args.duration
    );
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let run_s = (shared.clock.micros() - run_start_us) as f64 / 1e6;
    let server_cpu_s = args
        .server_pid
        .and_then(cpu_s)
        .zip(cpu_start)
        .map(|(end, start)| end - start);
    let _ = phase_tx.send(Phase::Draining);
    // Read what is still in flight; stop early once everything expected has arrived (after a
    // moment: updates being sent as the phase changed are not counted as expected yet).
    let drain_until = Instant::now() + Duration::from_secs_f64(args.drain.max(0.0));
    tokio::time::sleep(
        Duration::from_millis(200).min(drain_until.saturating_duration_since(Instant::now())),
    )
    .await;
    while Instant::now() < drain_until
        && shared.counters.deliveries.load(Ordering::Relaxed)
            < shared.counters.expected.load(Ordering::Relaxed)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_end = args.server_pid.and_then(rss_kb);
    let held_at_end = shared.counters.held.load(Ordering::Relaxed)
        - shared.counters.dropped.load(Ordering::Relaxed);
    shared.stopping.store(true, Ordering::Release);
    let _ = phase_tx.send(Phase::Stop);
    // Closing is best effort and bounded per connection; bound the whole of it too.
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();

    let violations = shared.counters.violations.load(Ordering::Relaxed);
    report(
        &shared,
        &Figures {
            connect_s,
            run_s,
            held_at_start,
            held_at_end,
            rss: [rss_before, rss_held, rss_end],
            server_cpu_s,
        },
    );
    if violations > 0 {
        return Err(format!(
            "{violations} push(es) or snapshot entries broke what the sender shares: {:?}",
            shared.violation_kinds.snapshot()
        ));
    }
    Ok(())
}

struct Figures {
    connect_s: f64,
    run_s: f64,
    held_at_start: u64,
    held_at_end: u64,
    rss: [Option<u64>; 3],
    /// Server CPU seconds used during the timed phase.
    server_cpu_s: Option<f64>,
}

fn report(shared: &Shared, figures: &Figures) {
    let args = &shared.args;
    let c = &shared.counters;
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let (sent, expected, delivered) = (
        load(&c.updates_sent),
        load(&c.expected),
        load(&c.deliveries),
    );
    let ratio = if expected == 0 {
        None
    } else {
        Some(delivered as f64 / expected as f64)
    };
    // Approximate sharing: pushes only on a change of cell, reported apart.
    let approximate_users = (1..=args.users)
        .filter(|&user| approximate_sharer(user, args.approximate_share))
        .count() as u64;
    let (approximate_sent, approximate_pairs, approximate_pushes, violations) = (
        load(&c.approximate_updates_sent),
        load(&c.approximate_pair_updates),
        load(&c.approximate_deliveries),
        load(&c.violations),
    );
    let approximate_ratio =
        (approximate_pairs > 0).then(|| approximate_pushes as f64 / approximate_pairs as f64);
    let pushes = delivered + approximate_pushes;
    let violation_kinds = shared.violation_kinds.snapshot();
    let approximate_latency = &shared.approximate_latency;
    let (ap50, ap99, amax) = (
        approximate_latency.quantile(0.50),
        approximate_latency.quantile(0.99),
        load(&approximate_latency.max),
    );
    let per_s = |n: u64| n as f64 / figures.run_s.max(1e-9);
    let ms = |us: u64| us as f64 / 1_000.0;
    let latency = &shared.latency;
    let (p50, p90, p99, p999, max) = (
        latency.quantile(0.50),
        latency.quantile(0.90),
        latency.quantile(0.99),
        latency.quantile(0.999),
        load(&latency.max),
    );
    // Minutes with samples (the last one may be partial or empty).
    let p99_by_minute: Vec<u64> = shared
        .latency_by_minute
        .iter()
        .filter(|h| load(&h.count) > 0)
        .map(|h| h.quantile(0.99))
        .collect();
    let mean = load(&latency.sum)
        .checked_div(load(&latency.count))
        .unwrap_or(0);
    let [rss_before, rss_held, rss_end] = figures.rss;
    let per_conn = |after: Option<u64>| -> Option<f64> {
        let (before, after) = (rss_before?, after?);
        (figures.held_at_start > 0)
            .then(|| (after as f64 - before as f64) * 1024.0 / figures.held_at_start as f64)
    };
    let errors = shared.errors.snapshot();
    let closes = shared.closes.snapshot();
    let failures = shared.failures.snapshot();

    println!(
        "nearby friends bench: {} users, circles of {}, {}",
        args.users,
        args.circle,
        if args.idle {
            format!("idle for {:.0} s", args.duration)
        } else {
            format!("{:.0} updates/s for {:.0} s", args.rate, args.duration)
        }
    );
    println!(
        "  connections  attempted {}  held {} (at the end {})  failed {}  in {:.1} s{}",
        load(&c.attempted),
        figures.held_at_start,
        figures.held_at_end,
        load(&c.failed),
        figures.connect_s,
        if failures.is_empty() {
            String::new()
        } else {
            format!("  failures {failures:?}")
        }
    );
    println!(
        "  snapshots    {} (friends listed {}: exact {}, approximate {})",
        load(&c.snapshots),
        load(&c.snapshot_friends),
        load(&c.snapshot_exact),
        load(&c.snapshot_approximate)
    );
    if !args.idle {
        println!(
            "  updates      sent {sent} ({:.0}/s)  send errors {}{}",
            per_s(sent),
            load(&c.send_errors),
            if approximate_users > 0 {
                format!("  (by approximate sharers {approximate_sent})")
            } else {
                String::new()
            }
        );
        println!(
            "  deliveries   {delivered} of {expected} expected ({})  {:.0}/s  \
             (+{} for first locations, {} from strangers, {} gone while held, {} at close)",
            ratio.map_or("n/a".to_owned(), |r| format!("{:.4}", r)),
            per_s(delivered),
            load(&c.early_deliveries),
            load(&c.strangers),
            load(&c.gone),
            load(&c.gone_at_close)
        );
        println!(
            "  latency      p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms  \
             mean {:.2} ms  ({} timed in ms only)",
            ms(p50),
            ms(p90),
            ms(p99),
            ms(p999),
            ms(max),
            ms(mean),
            load(&c.coarse)
        );
        if p99_by_minute.len() > 1 {
            let series: Vec<String> = p99_by_minute
                .iter()
                .map(|p| format!("{:.2}", ms(*p)))
                .collect();
            println!("  p99/minute   {} ms", series.join(" "));
        }
    }
    if approximate_users > 0 {
        println!(
            "  approximate  {approximate_users} of {} users share approximately ({}): \
             {approximate_pushes} pushes for {approximate_pairs} approximate-pair updates ({})  \
             latency p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            args.users,
            args.approximate_share,
            approximate_ratio.map_or("n/a".to_owned(), |r| format!("{r:.4}")),
            ms(ap50),
            ms(ap99),
            ms(amax),
        );
        if !args.idle {
            println!(
                "  pushes       {pushes} ({:.0}/s): exact {delivered}, approximate {approximate_pushes}; \
                 the delivery ratio above counts exact pairs only",
                per_s(pushes)
            );
        }
    }
    println!(
        "  precision    violations {violations}{}",
        if violation_kinds.is_empty() {
            String::new()
        } else {
            format!(" {violation_kinds:?}")
        }
    );
    println!("  errors       {errors:?}  closes {closes:?}");
    if let Some(cpu) = figures.server_cpu_s {
        println!(
            "  server CPU   {cpu:.1} s in {:.1} s ({:.2} cores busy): {:.0} pushes per server CPU second{}",
            figures.run_s,
            cpu / figures.run_s.max(1e-9),
            if cpu > 0.0 { pushes as f64 / cpu } else { 0.0 },
            if approximate_users > 0 {
                " (exact + approximate)"
            } else {
                ""
            }
        );
    }
    if let Some(pid) = args.server_pid {
        let show = |kb: Option<u64>| {
            kb.map_or("?".to_owned(), |kb| {
                format!("{:.1} MiB", kb as f64 / 1024.0)
            })
        };
        println!(
            "  server RSS   (pid {pid}) before {}  held {}  end {}  per connection: held {}  end {}",
            show(rss_before),
            show(rss_held),
            show(rss_end),
            per_conn(rss_held).map_or("?".to_owned(), |b| format!("{:.1} KiB", b / 1024.0)),
            per_conn(rss_end).map_or("?".to_owned(), |b| format!("{:.1} KiB", b / 1024.0)),
        );
    }
    let json = serde_json::json!({
        "users": args.users,
        "circle": args.circle,
        "idle": args.idle,
        "rate": args.rate,
        "duration_s": figures.run_s,
        "source_ips": args.source_ips.len(),
        "connections": {
            "attempted": load(&c.attempted),
            "held": figures.held_at_start,
            "held_at_end": figures.held_at_end,
            "failed": load(&c.failed),
            "failures": failures,
            "connect_s": figures.connect_s,
        },
        "snapshots": load(&c.snapshots),
        "updates_sent": sent,
        "updates_per_s": per_s(sent),
        "send_errors": load(&c.send_errors),
        "deliveries": delivered,
        "expected_deliveries": expected,
        "delivery_ratio": ratio,
        "deliveries_per_s": per_s(delivered),
        "early_deliveries": load(&c.early_deliveries),
        "stranger_deliveries": load(&c.strangers),
        "friend_gone": load(&c.gone),
        "friend_gone_at_close": load(&c.gone_at_close),
        "latency_us": {
            "p50": p50, "p90": p90, "p99": p99, "p999": p999, "max": max, "mean": mean,
            "count": load(&latency.count), "ms_resolution": load(&c.coarse),
            "p99_by_minute": p99_by_minute,
        },
        "errors": errors,
        "closes": closes,
        "server_rss_kb": {
            "before": rss_before, "held": rss_held, "end": rss_end,
        },
        "server_rss_bytes_per_connection": {
            "held": per_conn(rss_held), "end": per_conn(rss_end),
        },
        "server_cpu_s": figures.server_cpu_s,
        "server_cores_busy": figures.server_cpu_s.map(|cpu| cpu / figures.run_s.max(1e-9)),
        "deliveries_per_server_cpu_s": figures.server_cpu_s
            .filter(|cpu| *cpu > 0.0)
            .map(|cpu| delivered as f64 / cpu),
        "approximate_share": args.approximate_share,
        "approximate_users": approximate_users,
        "approximate_updates_sent": approximate_sent,
        "exact_pushes": delivered,
        "approximate_pushes": approximate_pushes,
        "approximate_pair_updates": approximate_pairs,
        "approximate_push_ratio": approximate_ratio,
        "approximate_latency_us": {
            "p50": ap50, "p99": ap99, "max": amax, "count": load(&approximate_latency.count),
        },
        "pushes": pushes,
        "pushes_per_s": per_s(pushes),
        "pushes_per_server_cpu_s": figures.server_cpu_s
            .filter(|cpu| *cpu > 0.0)
            .map(|cpu| pushes as f64 / cpu),
        "snapshot_entries": {
            "exact": load(&c.snapshot_exact), "approximate": load(&c.snapshot_approximate),
        },
        "precision_violations": violations,
        "precision_violation_kinds": violation_kinds,
    });
    println!("{json}");
}

// --- sharing precisions -------------------------------------------------------------------

/// Sets every user's default precision (`PUT /v1/me/sharing` with their own token):
/// `approximate` for the users [`approximate_sharer`] picks, `exact` for the others, over a
/// few keep-alive connections. Any refusal ends the run: the mix would not be the one asked.
async fn set_precisions(shared: &Arc<Shared>) -> Result<(), String> {
    let args = &shared.args;
    let started = Instant::now();
    let approximate_users = (1..=args.users)
        .filter(|&user| approximate_sharer(user, args.approximate_share))
        .count();
    eprintln!(
        "friends-bench: setting the sharing precision of {} users ({approximate_users} approximate)",
        args.users
    );
    let next = Arc::new(AtomicU64::new(1));
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..args.connect_concurrency.clamp(1, 16) {
        let shared = Arc::clone(shared);
        let next = Arc::clone(&next);
        workers.spawn(async move {
            let mut connection: Option<BufReader<TcpStream>> = None;
            loop {
                let user = next.fetch_add(1, Ordering::Relaxed);
                if user > shared.args.users {
                    return Ok(());
                }
                let precision = if approximate_sharer(user, shared.args.approximate_share) {
                    "approximate"
                } else {
                    "exact"
                };
                let mut retried = false;
                let (status, body) = loop {
                    let outcome = match connection.as_mut() {
                        Some(stream) => put_sharing(&shared, stream, user, precision).await,
                        None => match http_connect(&shared, worker).await {
                            Ok(stream) => {
                                let stream = connection.insert(stream);
                                put_sharing(&shared, stream, user, precision).await
                            }
                            Err(err) => Err(err),
                        },
                    };
                    match outcome {
                        Ok((status, body, keep)) => {
                            if !keep {
                                connection = None;
                            }
                            break (status, body);
                        }
                        // The server may close a keep-alive connection between requests:
                        // once more on a fresh one.
                        Err(_) if !retried => {
                            retried = true;
                            connection = None;
                        }
                        Err(err) => {
                            return Err(format!("PUT /v1/me/sharing for user {user}: {err}"));
                        }
                    }
                };
                check_sharing_answer(user, precision, status, &body)?;
            }
        });
    }
    while let Some(outcome) = workers.join_next().await {
        if let Err(err) = outcome.map_err(|err| err.to_string()).and_then(|done| done) {
            workers.abort_all();
            return Err(err);
        }
    }
    eprintln!(
        "friends-bench: sharing precisions set in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Whether the server took the precision: `200` with it in the answer.
fn check_sharing_answer(user: u64, precision: &str, status: u16, body: &str) -> Result<(), String> {
    if status == 409 && body.contains("read_only") {
        return Err(
            "the server answers 409 read_only to PUT /v1/me/sharing: friendships and sharing are \
             read-only with Redis and no database; --approximate-share needs the embedded mode \
             (no Redis) or a database"
                .to_owned(),
        );
    }
    if status != 200 {
        return Err(format!(
            "PUT /v1/me/sharing for user {user}: HTTP {status}: {}",
            short(body)
        ));
    }
    let answer: serde_json::Value = serde_json::from_str(body).map_err(|_| {
        format!(
            "PUT /v1/me/sharing for user {user}: not JSON: {}",
            short(body)
        )
    })?;
    if answer.get("precision").and_then(|p| p.as_str()) != Some(precision) {
        return Err(format!(
            "PUT /v1/me/sharing for user {user} asked for {precision}, the answer says {}",
            short(body)
        ));
    }
    Ok(())
}

/// A plain HTTP/1.1 connection to the server, from a source address picked by `worker`.
async fn http_connect(shared: &Shared, worker: usize) -> Result<BufReader<TcpStream>, String> {
    let ips = &shared.args.source_ips;
    let source = ips[worker % ips.len()];
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|err| format!("socket: {}", io_kind(&err)))?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|err| format!("bind: {}", io_kind(&err)))?;
    let stream = tokio::time::timeout(Duration::from_secs(10), socket.connect(shared.target))
        .await
        .map_err(|_| "connect: timeout".to_owned())?
        .map_err(|err| format!("connect: {}", io_kind(&err)))?;
    Ok(BufReader::new(stream))
}

/// `PUT /v1/me/sharing {"enabled":true,"precision":...}` as `user`: the status, the body,
/// and whether the connection may be used again.
async fn put_sharing(
    shared: &Shared,
    stream: &mut BufReader<TcpStream>,
    user: u64,
    precision: &str,
) -> Result<(u16, String, bool), String> {
    let uri = shared.request.uri();
    let authority = uri.authority().map_or("127.0.0.1", |a| a.as_str());
    let token = shared.secret.mint(user, false, 3_600, unix_now());
    let body = format!(r#"{{"enabled":true,"precision":"{precision}"}}"#);
    let request = format!(
        "PUT /v1/me/sharing HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .map_err(|err| format!("write: {}", io_kind(&err)))?;
        let mut line = String::new();
        let read = stream
            .read_line(&mut line)
            .await
            .map_err(|err| format!("read: {}", io_kind(&err)))?;
        if read == 0 {
            return Err("closed before answering".to_owned());
        }
        // "HTTP/1.1 200 OK"
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("not an HTTP status line: {}", short(line.trim_end())))?;
        let mut length: Option<usize> = None;
        let mut keep = true;
        loop {
            line.clear();
            stream
                .read_line(&mut line)
                .await
                .map_err(|err| format!("read: {}", io_kind(&err)))?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().ok();
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close")
            {
                keep = false;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(format!("unexpected transfer-encoding {value}"));
            }
        }
        let mut body = Vec::new();
        match length {
            Some(length) if length <= 64 * 1024 => {
                body.resize(length, 0);
                stream
                    .read_exact(&mut body)
                    .await
                    .map_err(|err| format!("read: {}", io_kind(&err)))?;
            }
            Some(length) => return Err(format!("a {length}-byte answer")),
            None => {
                // No length: the body runs to the end of the connection.
                keep = false;
                (&mut *stream)
                    .take(64 * 1024)
                    .read_to_end(&mut body)
                    .await
                    .map_err(|err| format!("read: {}", io_kind(&err)))?;
            }
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned(), keep))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "no answer within 10 s".to_owned())?
}

// --- checking what is shown ------------------------------------------------------------------

/// Checks what a push or snapshot entry shows of `friend` against what the friend shares
/// (see the module comment), counting each violation; returns whether it announces itself
/// as approximate.
fn check_shown(shared: &Shared, friend: u64, shown: &Shown<'_>) -> bool {
    let args = &shared.args;
    let violation = |kind: &str| {
        shared.counters.violations.fetch_add(1, Ordering::Relaxed);
        shared.violation_kinds.add(kind);
    };
    let sharer_approximate = approximate_sharer(friend, args.approximate_share);
    match shown.precision {
        Some("exact") => {
            if sharer_approximate {
                violation("exact from an approximate sharer");
            }
            if shown.accuracy_m.is_some() {
                violation("exact with accuracy_m");
            }
            false
        }
        Some("approximate") => {
            if !sharer_approximate {
                violation("approximate from an exact sharer");
            }
            let accuracy = shown
                .accuracy_m
                .filter(|a| a.is_finite() && *a > 0.0 && *a <= 10_000.0);
            if accuracy.is_none() {
                violation("approximate without a plausible accuracy_m");
            }
            let (Some(lat), Some(lng)) = (shown.latitude, shown.longitude) else {
                violation("approximate without coordinates");
                return true;
            };
            let own = shared
                .recent
                .get((friend - 1) as usize)
                .is_some_and(|recent| match recent.lock() {
                    Ok(recent) => recent.holds(lat, lng),
                    Err(poisoned) => poisoned.into_inner().holds(lat, lng),
                });
            if own {
                violation("approximate carrying the sender's coordinates");
            }
            let Ok(point) = geo_index::LatLng::new(lat, lng) else {
                violation("approximate with invalid coordinates");
                return true;
            };
            if approximate::centre(approximate::cell_of(point)).distance_m(point) > 1.0 {
                violation("approximate not on a cell centre");
            }
            // The shown cell held the sender once, and the sender never leaves its circle's
            // disc: its centre is within the cell's circumradius of that disc.
            let (index, _, _) = circle_of(friend, args.circle, args.users);
            let (clat, clng) = circle_centre(args.seed, index).lat_lng();
            if let (Some(accuracy), Ok(centre)) = (accuracy, geo_index::LatLng::new(clat, clng))
                && centre.distance_m(point) > accuracy + CIRCLE_SPREAD_M + 2.0 * STEP_M + 50.0
            {
                violation("approximate too far from the sender's circle");
            }
            true
        }
        Some(_) => {
            violation("unknown precision");
            false
        }
        None => {
            violation("no precision");
            false
        }
    }
}

/// Counts a snapshot and checks its entries.
fn on_snapshot(shared: &Shared, user: u64, friends: Option<&[Shown<'_>]>) {
    let c = &shared.counters;
    c.snapshots.fetch_add(1, Ordering::Relaxed);
    let friends = friends.unwrap_or_default();
    c.snapshot_friends
        .fetch_add(friends.len() as u64, Ordering::Relaxed);
    let circle = circle_of(user, shared.args.circle, shared.args.users).0;
    for entry in friends {
        let Some(friend) = entry.user_id else {
            shared.errors.add("(bad snapshot entry)");
            continue;
        };
        if friend == 0
            || friend > shared.args.users
            || circle_of(friend, shared.args.circle, shared.args.users).0 != circle
        {
            c.strangers.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if check_shown(shared, friend, entry) {
            c.snapshot_approximate.fetch_add(1, Ordering::Relaxed);
        } else {
            c.snapshot_exact.fetch_add(1, Ordering::Relaxed);
        }
    }
}

type Socket = WebSocketStream<TcpStream>;

/// Opens one connection: TCP from the next source address, the upgrade, and unless idle
/// without --idle-locate, the first location and its snapshot.
async fn connect(shared: &Shared, user: u64, position: Offset) -> Result<Socket, String> {
    let args = &shared.args;
    let source =
        args.source_ips[shared.next_source.fetch_add(1, Ordering::Relaxed) % args.source_ips.len()];
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|err| format!("socket: {}", io_kind(&err)))?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|err| format!("bind: {}", io_kind(&err)))?;
    let stream = socket
        .connect(shared.target)
        .await
        .map_err(|err| format!("connect: {}", io_kind(&err)))?;
    // Pushes are small and latency is what is measured.
    stream
        .set_nodelay(true)
        .map_err(|err| format!("nodelay: {}", io_kind(&err)))?;
    let mut request = shared.request.clone();
    let token = shared.secret.mint(user, false, 86_400, unix_now());
    let header = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "token is not a header value".to_owned())?;
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, header);
    // Small buffers: the client holds tens of thousands of sockets and reads tiny frames.
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|err| match err {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                format!("http {}", response.status().as_u16())
            }
            other => format!("upgrade: {}", short(&other.to_string())),
        })?;
    if args.idle && !args.idle_locate {
        return Ok(ws);
    }
    let now_us = shared.clock.micros();
    let timestamp_ms = shared.clock.unix_ms_at(now_us);
    remember(shared, user, timestamp_ms, position);
    ws.send(location(position, timestamp_ms))
        .await
        .map_err(|err| format!("send: {}", short(&err.to_string())))?;
    // Wait for the snapshot; pushes about friends that located first may come before it.
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                if let Ok(message) = serde_json::from_str::<Incoming<'_>>(text.as_str()) {
                    match message.kind {
                        "nearby_friends" => {
                            on_snapshot(shared, user, message.friends.as_deref());
                            return Ok(ws);
                        }
                        "error" => {
                            shared.errors.add(message.code.unwrap_or("(none)"));
                            return Err(format!("error {}", message.code.unwrap_or("(none)")));
                        }
                        _ => on_message(shared, user, &message),
                    }
                }
            }
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                shared.closes.add(&code.to_string());
                return Err(format!("closed {code} before the snapshot"));
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(format!("read: {}", short(&err.to_string()))),
            None => return Err("closed before the snapshot".to_owned()),
        }
    }
}

fn io_kind(err: &std::io::Error) -> String {
    // The kind (not the text) keeps the failure tally to a few entries.
    format!("{:?}", err.kind())
}

fn short(text: &str) -> String {
    text.chars().take(60).collect()
}

/// Notes a position `user` is about to send, before sending it (a push can arrive before
/// `send` returns).
fn remember(shared: &Shared, user: u64, timestamp_ms: u64, position: Offset) {
    if let Some(recent) = shared.recent.get((user - 1) as usize) {
        let mut recent = match recent.lock() {
            Ok(recent) => recent,
            Err(poisoned) => poisoned.into_inner(),
        };
        recent.push(timestamp_ms, position.lat_lng());
    }
}

fn location(position: Offset, timestamp_ms: u64) -> Message {
    let (lat, lng) = position.lat_lng();
    Message::text(format!(
        r#"{{"type":"location","latitude":{lat:.7},"longitude":{lng:.7},"timestamp":{timestamp_ms}}}"#
    ))
}

/// Counts one server message received after the snapshot.
fn on_message(shared: &Shared, user: u64, message: &Incoming<'_>) {
    let c = &shared.counters;
    match message.kind {
        "friend_location" => {
            let (Some(friend), Some(timestamp)) = (message.user_id, message.timestamp) else {
                shared.errors.add("(bad friend_location)");
                return;
            };
            let circle = shared.args.circle;
            if friend == 0
                || friend > shared.args.users
                || circle_of(friend, circle, shared.args.users).0
                    != circle_of(user, circle, shared.args.users).0
            {
                c.strangers.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let approximate = check_shown(shared, friend, &message.shown());
            if timestamp < shared.run_start_unix_ms.load(Ordering::Acquire) {
                c.early_deliveries.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if approximate {
                c.approximate_deliveries.fetch_add(1, Ordering::Relaxed);
            } else {
                c.deliveries.fetch_add(1, Ordering::Relaxed);
            }
            let now_us = shared.clock.micros();
            // The friend's latest send instant times this push to the microsecond if it is
            // the one this push carries; otherwise (a newer update overtook it) fall back to
            // the message's millisecond timestamp.
            let sent_us = shared
                .sent_at
                .get((friend - 1) as usize)
                .map_or(0, |at| at.load(Ordering::Acquire));
            let latency_us = if sent_us > 0 && shared.clock.unix_ms_at(sent_us) == timestamp {
                now_us.saturating_sub(sent_us)
            } else {
                c.coarse.fetch_add(1, Ordering::Relaxed);
                let now_ms = shared.clock.unix_ms_at(now_us);
                now_ms.saturating_sub(timestamp) * 1_000
            };
            if approximate {
                shared.approximate_latency.record(latency_us);
                return;
            }
            shared.latency.record(latency_us);
            let minute = shared
                .clock
                .unix_ms_at(now_us)
                .saturating_sub(shared.run_start_unix_ms.load(Ordering::Acquire))
                / 60_000;
            if let Some(histogram) = usize::try_from(minute)
                .ok()
                .and_then(|m| shared.latency_by_minute.get(m))
            {
                histogram.record(latency_us);
            }
        }
        "friend_gone" if shared.stopping.load(Ordering::Acquire) => {
            c.gone_at_close.fetch_add(1, Ordering::Relaxed);
        }
        "friend_gone" => {
            c.gone.fetch_add(1, Ordering::Relaxed);
        }
        "error" => shared.errors.add(message.code.unwrap_or("(none)")),
        "nearby_friends" => on_snapshot(shared, user, message.friends.as_deref()),
        _ => shared.errors.add("(unknown message type)"),
    }
}

/// One user: connect, then send updates on its schedule and count what arrives, until told
/// to stop.
async fn user_task(
    shared: Arc<Shared>,
    user: u64,
    mut phase: watch::Receiver<Phase>,
    start: watch::Receiver<u64>,
) {
    let args = &shared.args;
    let c = &shared.counters;
    let (circle_index, first, last) = circle_of(user, args.circle, args.users);
    let mut rng = Rng::new(args.seed ^ user.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let centre = circle_centre(args.seed, circle_index);
    let approximately = approximate_sharer(user, args.approximate_share);
    let mut offset = {
        // Uniform in the disc around the centre.
        let r = CIRCLE_SPREAD_M * rng.unit().sqrt();
        let a = rng.unit() * std::f64::consts::TAU;
        (r * a.cos(), r * a.sin())
    };
    let position = |offset: (f64, f64)| Offset {
        east: centre.east + offset.0,
        north: centre.north + offset.1,
    };
    // Friends in the circle, until the connections are known (see held_in_circle).
    let mut friends_of_user = last - first;

    c.attempted.fetch_add(1, Ordering::Relaxed);
    let connected = {
        let permit = shared.connect_gate.acquire().await;
        let outcome = tokio::time::timeout(
            Duration::from_secs_f64(args.connect_timeout.max(0.1)),
            connect(&shared, user, position(offset)),
        )
        .await
        .unwrap_or_else(|_| Err("timeout".to_owned()));
        drop(permit);
        outcome
    };
    let mut ws = match connected {
        Ok(ws) => {
            c.held.fetch_add(1, Ordering::Relaxed);
            if let Some(held) = shared.held_in_circle.get(circle_index as usize) {
                held.fetch_add(1, Ordering::Relaxed);
            }
            c.settled.fetch_add(1, Ordering::Relaxed);
            ws
        }
        Err(reason) => {
            shared.failures.add(&reason);
            c.failed.fetch_add(1, Ordering::Relaxed);
            c.settled.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };

    // Updates every `period`, phases staggered so the users together send evenly: user i
    // starts i / rate seconds into the run (modulo the period).
    let period = Duration::from_secs_f64(args.users as f64 / args.rate);
    let mut ticker: Option<tokio::time::Interval> = None;
    let mut sending = false;
    loop {
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = *phase.borrow_and_update();
                match now {
                    Phase::Connecting => {}
                    Phase::Running if !args.idle => {
                        // Every connection has settled by now.
                        if let Some(held) = shared.held_in_circle.get(circle_index as usize) {
                            friends_of_user = held.load(Ordering::Relaxed).saturating_sub(1);
                        }
                        let run_start_us = *start.borrow();
                        let lag = Duration::from_micros(
                            shared.clock.micros().saturating_sub(run_start_us),
                        );
                        let offset_s = ((user - 1) as f64 / args.rate) % period.as_secs_f64();
                        let first_tick = Duration::from_secs_f64(offset_s).saturating_sub(lag);
                        let mut interval = tokio::time::interval_at(
                            tokio::time::Instant::now() + first_tick,
                            period,
                        );
                        // Never catch up in a burst: that would trip the server's rate limit.
                        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        ticker = Some(interval);
                        sending = true;
                    }
                    Phase::Running => {}
                    Phase::Draining => sending = false,
                    Phase::Stop => break,
                }
            }
            _ = async {
                match ticker.as_mut() {
                    Some(ticker) => ticker.tick().await,
                    None => std::future::pending().await,
                }
            }, if sending => {
                // The tick may win the race against the phase change: no update after the
                // timed phase, or the drain could end before its pushes arrive.
                if *phase.borrow() != Phase::Running {
                    sending = false;
                    continue;
                }
                offset = step(offset, &mut rng);
                let now_us = shared.clock.micros();
                // Record the instant before sending: the push can arrive before `send`
                // returns.
                if let Some(at) = shared.sent_at.get((user - 1) as usize) {
                    at.store(now_us.max(1), Ordering::Release);
                }
                let timestamp_ms = shared.clock.unix_ms_at(now_us.max(1));
                remember(&shared, user, timestamp_ms, position(offset));
                match ws.send(location(position(offset), timestamp_ms)).await {
                    Ok(()) => {
                        c.updates_sent.fetch_add(1, Ordering::Relaxed);
                        if approximately {
                            c.approximate_updates_sent.fetch_add(1, Ordering::Relaxed);
                            c.approximate_pair_updates
                                .fetch_add(friends_of_user, Ordering::Relaxed);
                        } else {
                            c.expected.fetch_add(friends_of_user, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        c.send_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<Incoming<'_>>(text.as_str()) {
                    Ok(message) => on_message(&shared, user, &message),
                    Err(_) => shared.errors.add("(unparsable frame)"),
                },
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map_or(1005, |f| u16::from(f.code));
                    shared.closes.add(&code.to_string());
                    c.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    shared.closes.add("(dropped)");
                    c.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
        }
    }
    // Best effort: the server sees a normal close rather than a reset.
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
}

/// A random step of up to STEP_M metres, turned back towards the centre when it would leave
/// the circle's disc.
fn step(offset: (f64, f64), rng: &mut Rng) -> (f64, f64) {
    let (dx, dy) = (rng.signed() * STEP_M, rng.signed() * STEP_M);
    let (x, y) = (offset.0 + dx, offset.1 + dy);
    if x.hypot(y) <= CIRCLE_SPREAD_M {
        (x, y)
    } else {
        (
            offset.0 - dx.abs() * offset.0.signum(),
            offset.1 - dy.abs() * offset.1.signum(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_contiguous_and_tight() {
        for value in [0u64, 1, 63, 64, 65, 100, 1_000, 12_345, 1 << 40, u64::MAX] {
            let index = Histogram::index(value);
            assert!(index < BUCKETS, "{value}");
            assert!(Histogram::upper(index) >= value, "{value}");
            if index > 0 {
                assert!(Histogram::upper(index - 1) < value, "{value}");
            }
        }
        let h = Histogram::new();
        for v in 1..=1_000 {
            h.record(v);
        }
        let p50 = h.quantile(0.5);
        assert!((490..=530).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), 1_000);
    }

    #[test]
    fn circles_split_users() {
        assert_eq!(circle_of(1, 10, 25), (0, 1, 10));
        assert_eq!(circle_of(10, 10, 25), (0, 1, 10));
        assert_eq!(circle_of(11, 10, 25), (1, 11, 20));
        assert_eq!(circle_of(25, 10, 25), (2, 21, 25));
    }

    #[test]
    fn approximate_sharers_are_the_fraction_asked_spread_evenly() {
        for (share, users, expected) in [(0.0, 100, 0), (0.5, 100, 50), (0.25, 10, 2), (1.0, 7, 7)]
        {
            let picked = (1..=users)
                .filter(|&user| approximate_sharer(user, share))
                .count();
            assert_eq!(picked, expected, "{share} of {users}");
        }
        // Half of every circle of 10.
        let in_circle = (11..=20).filter(|&u| approximate_sharer(u, 0.5)).count();
        assert_eq!(in_circle, 5);
        assert!(approximate_sharer(2, 0.5) && !approximate_sharer(1, 0.5));
    }

    #[test]
    fn a_push_is_read_with_its_precision() {
        let text = r#"{"type":"friend_location","user_id":2,"latitude":48.85,"longitude":2.35,"distance_m":10.0,"timestamp":5,"precision":"approximate","accuracy_m":1300.0}"#;
        let message: Incoming<'_> = serde_json::from_str(text).unwrap();
        let shown = message.shown();
        assert_eq!(shown.precision, Some("approximate"));
        assert_eq!(shown.accuracy_m, Some(1300.0));
        let text = r#"{"type":"nearby_friends","friends":[{"user_id":2,"latitude":48.85,"longitude":2.35,"distance_m":1.0,"timestamp":5,"precision":"exact"}]}"#;
        let message: Incoming<'_> = serde_json::from_str(text).unwrap();
        let friends = message.friends.unwrap();
        assert_eq!(friends[0].precision, Some("exact"));
        assert_eq!(friends[0].accuracy_m, None);
    }

    #[test]
    fn recent_positions_are_a_ring() {
        let mut recent = Recent::default();
        assert!(!recent.holds(0.0, 0.0));
        for i in 0..20 {
            recent.push(i, (48.0 + i as f64 * 0.001, 2.0));
        }
        assert!(recent.holds(48.019, 2.0));
        assert!(recent.holds(48.0120000001, 2.0));
        assert!(!recent.holds(48.011, 2.0));
    }

    #[test]
    fn steps_stay_in_the_disc() {
        let mut rng = Rng::new(1);
        let mut offset = (CIRCLE_SPREAD_M - 1.0, 0.0);
        for _ in 0..100_000 {
            offset = step(offset, &mut rng);
            assert!(offset.0.hypot(offset.1) <= CIRCLE_SPREAD_M + STEP_M * 2.0);
        }
    }
}
