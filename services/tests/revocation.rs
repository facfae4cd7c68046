//! Revocation reaches every node even when the pub/sub message about it is lost.
//!
//! The guarantee: once a call that narrows who may see a user answers 2xx (unfriend
//! `DELETE /v1/me/friends/{id}` → 204, ghost mode `PUT /v1/me/sharing {"enabled":false}` →
//! 200), no location of that user reaches the other side more than 2 s later, on any node.
//!
//! Real processes: two `nearby serve` nodes sharing a throwaway PostgreSQL (friendships,
//! sharing) and a throwaway Redis (bus, cache, membership), each node reaching Redis through
//! its own TCP proxy (`support/proxy.rs`) so the test can drop every Redis connection of both
//! nodes and refuse reconnects for a while: a `Changed` (or `Gone`) published then is lost,
//! as at-most-once pub/sub loses it in production when a connection blips. Three users: A on
//! node 1; B (who revokes) and C (A's friend too, the control) on node 2. C's updates reaching
//! A again after the cut prove the bus works again, so B's silence is not just a dead bus.
//! An unfriend narrows both ways, so A's locations must stop reaching B too. The REST call goes
//! to B's node, or to the other one (then B's node must learn of it with no message at all).
//! A baseline makes the same unfriend with nothing cut.

#![allow(clippy::unwrap_used)]

#[path = "support/node.rs"]
mod node_support;
#[path = "support/postgres.rs"]
#[allow(dead_code)] // stop and restart serve other test files
mod postgres_support;
#[path = "support/proxy.rs"]
mod proxy_support;
#[path = "support/redis.rs"]
mod redis_support;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use nearby_ws_gateway::membership::{Member, Members};
use node_support::{NodeProcess, token};
use postgres_support::TestPostgres;
use proxy_support::TcpProxy;
use redis_support::TestRedis;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
/// A client's sending half, its name and where it starts.
type Mover = (&'static str, SplitSink<Ws, Message>, (f64, f64));

const NODES: [&str; 2] = ["n1", "n2"];
/// Long enough that no registration expires during a cut: the membership must not change,
/// or sessions would move (4001) and muddle what is tested.
const NODE_TTL_MS: &str = "10000";
/// Locations per second the nodes accept per connection: the clients send one every
/// `SEND_EVERY`, well within it.
const LOCATION_RATE: &str = "4";
const SEND_EVERY: Duration = Duration::from_millis(500);
/// The guarantee: nothing of the revoker reaches the other side later than this after the 2xx.
const GRACE: Duration = Duration::from_secs(2);
/// How long the Redis links stay down, and when (into the cut) the revocation is made. The
/// call takes about 0.8 s during a cut (the nodes' Redis clients try to reconnect before
/// giving up on the publish): the cut must outlast it, or the message might get through.
const CUT: Duration = Duration::from_millis(2_000);
const REVOKE_AFTER: Duration = Duration::from_millis(300);
/// Redis reconnection takes a while after the cut: how long C's updates may take to reach A
/// again after it ends.
const CONTROL_LIMIT: Duration = Duration::from_secs(8);
/// Observation lasts at least this long after the 2xx, and at least `AFTER_CONTROL` after
/// C's updates flow again.
const MIN_WINDOW: Duration = Duration::from_secs(6);
const AFTER_CONTROL: Duration = Duration::from_secs(4);
const PARIS: (f64, f64) = (48.8566, 2.3522);

/// The first user id from `from` that the two nodes' rendezvous hashing gives to `node`.
fn user_owned_by(node: &str, from: u64) -> u64 {
    let members = Members::new(
        NODES
            .iter()
            .map(|id| Member::new(*id, "http://x"))
            .collect(),
    );
    (from..)
        .find(|&user| members.owner(user).unwrap().id() == node)
        .unwrap()
}

/// The point `north` metres north and `east` metres east of Paris (close enough to flat).
fn near_paris(north: f64, east: f64) -> (f64, f64) {
    let lat = PARIS.0 + north / 111_195.0;
    let lng = PARIS.1 + east / (111_195.0 * PARIS.0.to_radians().cos());
    (lat, lng)
}

/// One message a client received, and when.
struct Received {
    at: Instant,
    message: Value,
}

/// A WebSocket client: a task reads every message as it arrives and stamps it, so arrival
/// times are the socket's, not the test's polling. The sending half goes to the task that
/// moves the users around (see [`move_around`]).
struct Client {
    name: &'static str,
    sink: Option<SplitSink<Ws, Message>>,
    inbox: Arc<Mutex<Vec<Received>>>,
    reader: JoinHandle<()>,
}

impl Client {
    async fn connect(name: &'static str, node: &NodeProcess, user: u64) -> Client {
        let url = format!("{}?token={}", node.ws_url(), token(user));
        let (ws, response) = connect_async(url)
            .await
            .unwrap_or_else(|err| panic!("connect {name} ({user}) to {}: {err}", node.id()));
        assert_eq!(response.status(), 101, "{name} upgraded");
        let (sink, stream) = ws.split();
        let inbox = Arc::new(Mutex::new(Vec::new()));
        let reader = tokio::spawn(read_all(stream, Arc::clone(&inbox)));
        Client {
            name,
            sink: Some(sink),
            inbox,
            reader,
        }
    }

    /// Messages received so far that satisfy `pick`, with their arrival times.
    fn find(&self, pick: impl Fn(&Value) -> bool) -> Vec<(Instant, Value)> {
        self.inbox
            .lock()
            .unwrap()
            .iter()
            .filter(|r| pick(&r.message))
            .map(|r| (r.at, r.message.clone()))
            .collect()
    }

    /// Waits until `count` messages satisfying `pick` arrived at or after `since`; the
    /// arrival of the last of them.
    async fn wait_for(
        &self,
        since: Instant,
        limit: Duration,
        count: usize,
        pick: impl Fn(&Value) -> bool,
    ) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            let found = self
                .find(&pick)
                .into_iter()
                .map(|(at, _)| at)
                .filter(|&at| at >= since)
                .nth(count - 1);
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything received, one line each, times relative to `origin`.
    fn timeline(&self, origin: Instant) -> String {
        let mut out = String::new();
        for r in self.inbox.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "  {:>+8.3}s {} got {}",
                signed_secs(r.at, origin),
                self.name,
                r.message
            );
        }
        out
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_all(mut stream: SplitStream<Ws>, inbox: Arc<Mutex<Vec<Received>>>) {
    while let Some(frame) = stream.next().await {
        let message = match frame {
            Ok(Message::Text(text)) => serde_json::from_str(text.as_str())
                .unwrap_or_else(|_| json!({"raw": text.as_str()})),
            Ok(Message::Close(frame)) => json!({"type": "(close)", "frame": format!("{frame:?}")}),
            Ok(_) => continue,
            Err(err) => json!({"type": "(socket error)", "error": err.to_string()}),
        };
        inbox.lock().unwrap().push(Received {
            at: Instant::now(),
            message,
        });
    }
}

fn signed_secs(at: Instant, origin: Instant) -> f64 {
    if at >= origin {
        (at - origin).as_secs_f64()
    } else {
        -(origin - at).as_secs_f64()
    }
}

/// A `friend_location` of `user`.
fn location_of(user: u64) -> impl Fn(&Value) -> bool {
    move |m: &Value| m["type"] == "friend_location" && m["user_id"] == user
}

/// Any message that shows where `user` is: a `friend_location`, or a snapshot naming them.
fn reveals(user: u64) -> impl Fn(&Value) -> bool {
    move |m: &Value| {
        (m["type"] == "friend_location" && m["user_id"] == user)
            || (m["type"] == "nearby_friends"
                && m["friends"]
                    .as_array()
                    .is_some_and(|friends| friends.iter().any(|f| f["user_id"] == user)))
    }
}

/// The revocation made during the test.
#[derive(Clone, Copy, Debug)]
enum Revocation {
    /// B ends the friendship with A: neither may see the other.
    Unfriend,
    /// B turns ghost mode on: A may no longer see B.
    Ghost,
}

/// Which node takes the REST call.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// Node 2, which holds B's session.
    RevokersNode,
    /// Node 1, which does not: node 2 must learn of the change without the pub/sub message.
    OtherNode,
}

/// Both nodes, their Redis and database, and the three connected users.
struct Cluster {
    // Fields drop in declaration order: clients, nodes, then proxies, Redis and the database.
    a: Client,
    b: Client,
    c: Client,
    users: Users,
    n1: NodeProcess,
    n2: NodeProcess,
    proxies: [TcpProxy; 2],
    _redis: TestRedis,
    _postgres: TestPostgres,
    dir: PathBuf,
}

#[derive(Clone, Copy)]
struct Users {
    a: u64,
    b: u64,
    c: u64,
}

impl Cluster {
    /// Starts everything; A↔B and A↔C become friends through the REST API, then all three
    /// connect to their owners.
    async fn start(name: &str) -> Cluster {
        let dir =
            std::env::temp_dir().join(format!("nearby-revocation-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let postgres = TestPostgres::start();
        let redis = TestRedis::start();
        let redis_addr: SocketAddr = redis.url().trim_start_matches("redis://").parse().unwrap();
        let proxies = [TcpProxy::start(redis_addr), TcpProxy::start(redis_addr)];
        let flags = |proxy: &TcpProxy| {
            [
                "--database-url",
                &postgres.url(),
                "--redis-url",
                &proxy.url(),
                "--node-ttl-ms",
                NODE_TTL_MS,
                "--location-rate",
                LOCATION_RATE,
            ]
            .map(str::to_owned)
        };
        // One after the other: both would otherwise run the migrations at once.
        let mut n1 = NodeProcess::start("n1", &flags(&proxies[0]), &dir);
        n1.wait_ready().await;
        let mut n2 = NodeProcess::start("n2", &flags(&proxies[1]), &dir);
        n2.wait_ready().await;

        let a = user_owned_by("n1", 1);
        let b = user_owned_by("n2", 1);
        let c = user_owned_by("n2", b + 1);
        // Both nodes must see both before the clients connect, or one would be redirected.
        for node in [&n1, &n2] {
            node.wait_owner(a, "n1", Duration::from_secs(10)).await;
            node.wait_owner(b, "n2", Duration::from_secs(10)).await;
            node.wait_owner(c, "n2", Duration::from_secs(10)).await;
        }
        befriend((&n1, a), (&n2, b)).await;
        befriend((&n1, a), (&n2, c)).await;

        Cluster {
            a: Client::connect("A", &n1, a).await,
            b: Client::connect("B", &n2, b).await,
            c: Client::connect("C", &n2, c).await,
            users: Users { a, b, c },
            n1,
            n2,
            proxies,
            _redis: redis,
            _postgres: postgres,
            dir,
        }
    }

    /// The node that takes the REST call.
    fn node(&self, via: Via) -> &NodeProcess {
        match via {
            Via::RevokersNode => &self.n2,
            Via::OtherNode => &self.n1,
        }
    }

    /// The nodes' warnings and errors, for failure messages (tokens and locations are never
    /// logged).
    fn log_warnings(&self) -> String {
        let mut out = String::new();
        for node in [&self.n1, &self.n2] {
            let log = node.log_text();
            let lines: Vec<&str> = log
                .lines()
                .filter(|line| line.contains("WARN") || line.contains("ERROR"))
                .collect();
            let _ = writeln!(
                out,
                "  {} ({} warnings/errors, last 15):",
                node.id(),
                lines.len()
            );
            for line in &lines[lines.len().saturating_sub(15)..] {
                let _ = writeln!(out, "    {}", strip_ansi(line));
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Kept when the test fails: the nodes' logs are there.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `line` without its terminal colour codes (the nodes colour their logs).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            // An escape sequence runs to its final letter (`m` for colours).
            for ch in chars.by_ref() {
                if ch.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// `a` asks `b` (each through their node), `b` accepts.
async fn befriend((a_node, a): (&NodeProcess, u64), (b_node, b): (&NodeProcess, u64)) {
    let path = format!("/v1/me/friend-requests/{b}");
    let (status, body) = a_node.call("POST", &path, Some(a), None).await;
    assert_eq!(status, 202, "POST {path} as {a}: {body}");
    let path = format!("/v1/me/friends/{a}");
    let (status, body) = b_node.call("PUT", &path, Some(b), None).await;
    assert_eq!(status, 200, "PUT {path} as {b}: {body}");
}

/// What the movers sent, and the sends that failed.
#[derive(Default)]
struct Sent {
    count: [usize; 3],
    failures: Vec<String>,
}

/// Sends a location for each client every `SEND_EVERY`, each moving a few metres north per
/// update (a real move each time), until `stop` fires. A failed send is recorded, not a
/// panic, so the test can report it with the rest.
async fn move_around(mut sinks: Vec<Mover>, mut stop: tokio::sync::oneshot::Receiver<()>) -> Sent {
    let mut sent = Sent::default();
    let mut ticker = tokio::time::interval(SEND_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for step in 0_u32.. {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut stop => break,
        }
        for (index, (name, sink, (lat, lng))) in sinks.iter_mut().enumerate() {
            let lat = *lat + f64::from(step % 50) * 3.0 / 111_195.0;
            let text = json!({"type": "location", "latitude": lat, "longitude": *lng}).to_string();
            match sink.send(Message::text(text)).await {
                Ok(()) => sent.count[index] += 1,
                Err(err) => sent.failures.push(format!("{name}: {err}")),
            }
        }
    }
    sent
}

/// Runs one scenario: with `cut`, both nodes' Redis links are cut for `CUT` and B revokes
/// `REVOKE_AFTER` into it; without, B simply revokes. Then checks the guarantee.
async fn scenario(name: &str, revocation: Revocation, via: Via, cut: bool) {
    let mut cluster = Cluster::start(name).await;
    let Users { a, b, c } = cluster.users;
    let sinks = vec![
        ("A", cluster.a.sink.take().unwrap(), PARIS),
        ("B", cluster.b.sink.take().unwrap(), near_paris(300.0, 0.0)),
        ("C", cluster.c.sink.take().unwrap(), near_paris(0.0, 400.0)),
    ];
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let mover = tokio::spawn(move_around(sinks, stopped));

    // The path works before any fault: A hears B and C, B hears A.
    let started = Instant::now();
    let limit = Duration::from_secs(10);
    for (who, client, friend, friend_name) in [
        ("A", &cluster.a, b, "B"),
        ("A", &cluster.a, c, "C"),
        ("B", &cluster.b, a, "A"),
    ] {
        assert!(
            client
                .wait_for(started, limit, 2, location_of(friend))
                .await
                .is_some(),
            "{who} did not hear twice from {friend_name} before any fault:\n{}{}{}",
            cluster.a.timeline(started),
            cluster.b.timeline(started),
            cluster.log_warnings()
        );
    }

    // The fault, and the revocation during it.
    let cut_at = Instant::now();
    if cut {
        for proxy in &cluster.proxies {
            proxy.cut(CUT);
        }
        tokio::time::sleep_until((cut_at + REVOKE_AFTER).into()).await;
    }
    let cut_end = if cut { cut_at + CUT } else { cut_at };
    let (method, path, body, expected) = match revocation {
        Revocation::Unfriend => ("DELETE", format!("/v1/me/friends/{a}"), None, 204),
        Revocation::Ghost => (
            "PUT",
            "/v1/me/sharing".to_owned(),
            Some(json!({"enabled": false})),
            200,
        ),
    };
    let call_at = Instant::now();
    let (status, answer) = cluster
        .node(via)
        .call_text(method, &path, Some(b), body.as_ref())
        .await;
    let ok_at = Instant::now();
    assert_eq!(
        status,
        expected,
        "{method} {path} as B through {}: {answer}",
        cluster.node(via).id()
    );

    // The control: C's updates reach A again after the cut, so the bus works again.
    let control = cluster
        .a
        .wait_for(cut_end, CONTROL_LIMIT, 1, location_of(c))
        .await;
    let end = match control {
        Some(at) => (ok_at + MIN_WINDOW).max(at + AFTER_CONTROL),
        None => ok_at + MIN_WINDOW,
    };
    tokio::time::sleep_until(end.into()).await;
    let _ = stop.send(());
    let sent = mover.await.unwrap();
    // Let what was sent last arrive (and be judged) too.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Judge.
    let deadline = ok_at + GRACE;
    let late = |client: &Client, whom: u64| -> Vec<(Instant, Value)> {
        client
            .find(reveals(whom))
            .into_iter()
            .filter(|(at, _)| *at > deadline)
            .collect()
    };
    let late_at_a = late(&cluster.a, b);
    let late_at_b = match revocation {
        Revocation::Unfriend => late(&cluster.b, a),
        // Ghost mode hides B; B may still see A.
        Revocation::Ghost => Vec::new(),
    };
    let count = |client: &Client, pick: &dyn Fn(&Value) -> bool, from: Instant, to: Instant| {
        client
            .find(pick)
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
            .count()
    };
    let far_future = end + Duration::from_secs(3_600);
    let unavailable = |client: &Client| {
        client
            .find(|m| m["type"] == "error" && m["code"] == "unavailable")
            .len()
    };
    let other_errors = |client: &Client| {
        client
            .find(|m| m["type"] == "error" && m["code"] != "unavailable")
            .len()
    };
    let closed = |client: &Client| {
        client
            .find(|m| m["type"] == "(close)" || m["type"] == "(socket error)")
            .len()
    };

    let mut summary = String::new();
    let secs = |at: Instant| signed_secs(at, ok_at);
    let _ = writeln!(
        summary,
        "{name}: {revocation:?} through {} ({:?}), {}",
        cluster.node(via).id(),
        via,
        if cut {
            format!(
                "Redis cut for {CUT:?} at {:+.3}s, until {:+.3}s",
                secs(cut_at),
                secs(cut_end)
            )
        } else {
            "no fault".to_owned()
        }
    );
    let _ = writeln!(
        summary,
        "  times are relative to the {status} (call took {:.3}s, started {:+.3}s); users A={a} (n1) B={b} (n2) C={c} (n2)",
        (ok_at - call_at).as_secs_f64(),
        secs(call_at)
    );
    if cut && ok_at > cut_end {
        let _ = writeln!(
            summary,
            "  note: the {status} came after the cut ended: the pub/sub message may not have been lost"
        );
    }
    let _ = writeln!(
        summary,
        "  control: C's first update at A after the cut {}; observed until {:+.3}s",
        control.map_or_else(
            || format!("NEVER (within {CONTROL_LIMIT:?})"),
            |at| format!("at {:+.3}s", secs(at))
        ),
        secs(end)
    );
    let _ = writeln!(
        summary,
        "  A got B's friend_location: {} before the {status}, {} within the {GRACE:?} grace, {} after it; friend_gone of B: {}",
        count(&cluster.a, &location_of(b), started, ok_at),
        count(&cluster.a, &location_of(b), ok_at, deadline),
        count(&cluster.a, &location_of(b), deadline, far_future),
        cluster
            .a
            .find(|m| m["type"] == "friend_gone" && m["user_id"] == b)
            .iter()
            .map(|(at, _)| format!("{:+.3}s", secs(*at)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        summary,
        "  B got A's friend_location: {} before, {} within the grace, {} after it",
        count(&cluster.b, &location_of(a), started, ok_at),
        count(&cluster.b, &location_of(a), ok_at, deadline),
        count(&cluster.b, &location_of(a), deadline, far_future),
    );
    let _ = writeln!(
        summary,
        "  A got C's friend_location: {} before the cut, {} after it ended",
        count(&cluster.a, &location_of(c), started, cut_at),
        count(&cluster.a, &location_of(c), cut_end, far_future),
    );
    let _ = writeln!(
        summary,
        "  sent (A, B, C): {:?}, failed sends: {:?}; `unavailable` errors A/B/C: {}/{}/{}, other errors: {}/{}/{}, closes: {}/{}/{}",
        sent.count,
        sent.failures,
        unavailable(&cluster.a),
        unavailable(&cluster.b),
        unavailable(&cluster.c),
        other_errors(&cluster.a),
        other_errors(&cluster.b),
        other_errors(&cluster.c),
        closed(&cluster.a),
        closed(&cluster.b),
        closed(&cluster.c),
    );
    if cut {
        let _ = writeln!(
            summary,
            "  proxies: connections refused during the cut n1/n2: {}/{}, piped in all: {}/{}",
            cluster.proxies[0].refused(),
            cluster.proxies[1].refused(),
            cluster.proxies[0].accepted(),
            cluster.proxies[1].accepted(),
        );
    }
    println!("{summary}");
    let details = || {
        format!(
            "A's messages:\n{}\nB's messages:\n{}\nnode logs (in {}):\n{}",
            cluster.a.timeline(ok_at),
            cluster.b.timeline(ok_at),
            cluster.dir.display(),
            cluster.log_warnings()
        )
    };

    let describe = |late: &[(Instant, Value)]| {
        late.iter()
            .map(|(at, m)| format!("{:+.3}s {m}", secs(*at)))
            .collect::<Vec<_>>()
            .join("\n    ")
    };
    assert!(
        late_at_a.is_empty() && late_at_b.is_empty(),
        "LEAK: after the {status} at 0 s, {} message(s) revealing B reached A and {} revealing A reached B later than {GRACE:?}:\n    {}\n    {}\n\n{}",
        late_at_a.len(),
        late_at_b.len(),
        describe(&late_at_a),
        describe(&late_at_b),
        details()
    );
    // Without these the absence above would prove nothing.
    assert!(
        control.is_some(),
        "C's updates never reached A again within {CONTROL_LIMIT:?} of the cut's end: the bus did not recover, so B's silence proves nothing\n{}",
        details()
    );
    assert!(
        sent.failures.is_empty()
            && closed(&cluster.a) + closed(&cluster.b) + closed(&cluster.c) == 0,
        "a session ended during the test, so B's silence proves nothing\n{}",
        details()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfriending_with_no_fault_stops_locations_within_2_s() {
    scenario(
        "unfriend-plain",
        Revocation::Unfriend,
        Via::RevokersNode,
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfriending_while_redis_is_cut_stops_locations_within_2_s() {
    scenario(
        "unfriend-cut",
        Revocation::Unfriend,
        Via::RevokersNode,
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfriending_through_the_other_node_while_redis_is_cut_stops_locations_within_2_s() {
    scenario(
        "unfriend-cut-other",
        Revocation::Unfriend,
        Via::OtherNode,
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghost_mode_while_redis_is_cut_hides_within_2_s() {
    scenario("ghost-cut", Revocation::Ghost, Via::RevokersNode, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghost_mode_through_the_other_node_while_redis_is_cut_hides_within_2_s() {
    scenario("ghost-cut-other", Revocation::Ghost, Via::OtherNode, true).await;
}

/// The proxy itself, against an echo server: what the scenarios rely on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_drops_connections_refuses_during_a_cut_then_recovers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = echo.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (mut socket, _) = echo.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut read, mut write) = socket.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    // Echoes `ping` through a connection: false if it ended or failed instead.
    async fn echoes(stream: &mut TcpStream) -> bool {
        let mut reply = [0_u8; 4];
        stream.write_all(b"ping").await.is_ok()
            && matches!(
                tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut reply)).await,
                Ok(Ok(_))
            )
            && &reply == b"ping"
    }
    // Whether the connection ends (EOF or error) within a second.
    async fn ends(stream: &mut TcpStream) -> bool {
        let mut buf = [0_u8; 16];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    let proxy = TcpProxy::start(target);
    assert_eq!(proxy.url(), format!("redis://{}", proxy.addr()));
    let mut before = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(echoes(&mut before).await);
    assert_eq!(proxy.live(), 1);

    let cut_at = Instant::now();
    proxy.cut(Duration::from_millis(600));
    assert_eq!(proxy.live(), 0, "cut returns once the connections are gone");
    assert!(ends(&mut before).await, "a live connection is dropped");
    let mut during = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(
        ends(&mut during).await,
        "a new connection is closed at once"
    );
    assert!(proxy.refused() >= 1);

    tokio::time::sleep_until((cut_at + Duration::from_millis(700)).into()).await;
    let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(echoes(&mut after).await, "connections are proxied again");

    let addr = proxy.addr();
    drop(proxy);
    assert!(
        ends(&mut after).await,
        "dropping the proxy closes its connections"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "nothing listens after the drop"
    );
    server.abort();
}
