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

mod circles;
mod report;
mod run;
mod session;
mod shared;
mod sharing;

use clap::{Args, Parser, Subcommand};
use nearby_services::auth::{Secret, unix_now};
use std::net::IpAddr;
use std::process::ExitCode;

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
pub(crate) struct RunArgs {
    /// Server base URL, e.g. ws://127.0.0.1:8080 (`/v1/ws` is appended when missing).
    #[arg(long)]
    pub(crate) url: String,
    /// The server's signing secret (tokens are minted in process).
    #[arg(long, env = "NEARBY_SECRET", hide_env_values = true)]
    pub(crate) secret: String,
    /// Users 1..=N, one connection each.
    #[arg(long)]
    pub(crate) users: u64,
    /// Users per circle of friends (the graph given to the server must match).
    #[arg(long, default_value_t = 10)]
    pub(crate) circle: u64,
    /// Location updates per second, all users together.
    #[arg(long, default_value_t = 1_000.0)]
    pub(crate) rate: f64,
    /// Seconds of updates (or of holding the connections with --idle).
    #[arg(long, default_value_t = 30.0)]
    pub(crate) duration: f64,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 200)]
    pub(crate) connect_concurrency: usize,
    /// Client source addresses, used round-robin: one address has only ~28K ephemeral ports.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
    pub(crate) source_ips: Vec<IpAddr>,
    /// Server process id, to report its resident memory from /proc.
    #[arg(long)]
    pub(crate) server_pid: Option<u32>,
    /// Only hold the connections: no updates.
    #[arg(long)]
    pub(crate) idle: bool,
    /// With --idle, still send the first location and wait for the snapshot.
    #[arg(long)]
    pub(crate) idle_locate: bool,
    /// Seconds to let the server settle after every connection is open, before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub(crate) settle: f64,
    /// Seconds to keep reading after the last update, for pushes still in flight.
    #[arg(long, default_value_t = 2.0)]
    pub(crate) drain: f64,
    /// Seconds allowed for one connection's TCP connect, upgrade and snapshot.
    #[arg(long, default_value_t = 20.0)]
    pub(crate) connect_timeout: f64,
    /// Seed for the circle centres and the moves.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Client runtime threads; default: the number of CPUs.
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Fraction of users (0..=1, spread evenly over the ids) who share only approximately
    /// with every friend (`PUT /v1/me/sharing`, set for every user before connecting when
    /// above 0). Needs a writable friend store: embedded mode, or a database.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) approximate_share: f64,
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
                .and_then(|rt| rt.block_on(run::run(*args)))
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

pub(crate) fn check_sizes(users: u64, circle: u64) -> Result<(), String> {
    if users == 0 {
        return Err("--users must be at least 1".to_owned());
    }
    if circle < 2 {
        return Err("--circle must be at least 2 (a circle of one has no friends)".to_owned());
    }
    Ok(())
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
        // A modulo, not `SplitMix64::below`: the order recorded runs used.
        let mut rng = circles::rng(seed);
        for i in (1..pairs.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
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
