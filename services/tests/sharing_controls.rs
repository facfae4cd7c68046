//! Sharing controls across two nodes: what one friend may see of a user (`exact`,
//! `approximate`, `hidden`, optionally until a time), the user's default precision, and the
//! narrowing guarantee when the pub/sub messages announcing a change are lost.
//!
//! Real processes, as in `revocation.rs`: two `nearby serve` nodes sharing a throwaway
//! PostgreSQL (friendships, sharing, the audience log) and a throwaway Redis (bus, cache,
//! membership), each node reaching Redis through its own TCP proxy (`support/proxy.rs`) so a
//! test can drop every Redis connection of both nodes for a while. Users: A (the viewer) on
//! node 1; B (who shares) and C (A's friend too, the control) on node 2. B walks 20 m steps
//! back and forth deep inside one H3 resolution-7 cell, an update every 500 ms (and jumps to
//! another cell when a test says so); C walks 3 m steps; A stands still in Paris, so every
//! `distance_m` can be checked exactly. Every location B sends is recorded: an approximate
//! view must be the centre of the cell of one of them (`approximate::{cell_of, centre}`),
//! and never one of B's coordinates; an exact view must be one of them.
//!
//! A message "reveals" B when it is a `friend_location` of B or a snapshot naming B. The
//! guarantee checked: once a narrowing call answered 2xx (or a setting expired), nothing finer
//! than allowed reaches A more than 2 s later, on any node, even with the pub/sub cut.

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
use geo_index::LatLng;
use nearby_ws_gateway::approximate::{SWITCH_DEPTH_M, cell_of, centre, circumradius_m, depth_m};
use nearby_ws_gateway::clock;
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

const NODES: [&str; 2] = ["n1", "n2"];
/// Long enough that no registration expires during a cut (sessions would move otherwise).
const NODE_TTL_MS: &str = "10000";
/// Locations per second the nodes accept: the clients send one every `SEND_EVERY`.
const LOCATION_RATE: &str = "4";
const SEND_EVERY: Duration = Duration::from_millis(500);
/// The guarantee: nothing finer than allowed reaches the viewer later than this after a
/// narrowing.
const GRACE: Duration = Duration::from_secs(2);
/// How long the Redis links stay down, and when (into the cut) the change is made. The call
/// takes 0.2 to 0.8 s during a cut (the node's Redis client tries to publish the hint): it
/// answers well before the cut ends, so the hint is lost (the summary notes it otherwise).
const CUT: Duration = Duration::from_millis(2_000);
const CHANGE_AFTER: Duration = Duration::from_millis(300);
/// How long C's updates may take to reach A again after a cut ends.
const CONTROL_LIMIT: Duration = Duration::from_secs(8);
const PARIS: (f64, f64) = (48.8566, 2.3522);

// ---------------------------------------------------------------------------------------
// Geometry

fn point(lat: f64, lng: f64) -> LatLng {
    LatLng::new(lat, lng).unwrap()
}

/// The point `north` metres north and `east` metres east of `from` (close enough to flat).
fn offset(from: LatLng, north: f64, east: f64) -> LatLng {
    point(
        from.lat() + north / 111_195.0,
        from.lng() + east / (111_195.0 * from.lat().to_radians().cos()),
    )
}

/// `distance_m` as the server rounds it (0.1 m).
fn round_tenth(metres: f64) -> f64 {
    (metres * 10.0).round() / 10.0
}

/// Where everyone is.
#[derive(Clone, Copy)]
struct Geometry {
    /// A stands here.
    a: LatLng,
    /// The centre of B's home cell.
    home: LatLng,
    /// The centre of another cell, B's destination when a test moves B.
    away: LatLng,
    /// C starts here.
    c: LatLng,
}

fn geometry() -> Geometry {
    let a = point(PARIS.0, PARIS.1);
    let home = centre(cell_of(offset(a, 1_500.0, 500.0)));
    let away = centre(cell_of(offset(home, 0.0, 2_500.0)));
    assert_ne!(cell_of(home), cell_of(away), "two different cells");
    assert!(a.distance_m(home) < 5_000.0 && a.distance_m(away) < 6_000.0);
    Geometry {
        a,
        home,
        away,
        c: offset(a, 0.0, 400.0),
    }
}

/// Where B crosses from the cell of `from` into a neighbour, walking straight out of it
/// (`from` is a cell's centre): the first point over the edge, the direction (a unit vector,
/// metres north and east), and the first 50 m step from there that is
/// [`SWITCH_DEPTH_M`] inside the neighbour, every step before it in the neighbour too. Of
/// twelve directions, the first that crosses near the middle of an edge (towards a vertex the
/// walk would enter a third cell before getting deep).
fn edge_crossing(from: LatLng) -> (LatLng, (f64, f64), u32) {
    for degrees in (0..360).step_by(30) {
        let bearing = f64::from(degrees).to_radians();
        let unit = (bearing.cos(), bearing.sin());
        let Some(edge) = (1..1_000)
            .map(|k| {
                offset(
                    from,
                    f64::from(k) * 10.0 * unit.0,
                    f64::from(k) * 10.0 * unit.1,
                )
            })
            .find(|&p| cell_of(p) != cell_of(from))
        else {
            continue;
        };
        let next = cell_of(edge);
        let walk = Walk {
            origin: edge,
            step: (50.0 * unit.0, 50.0 * unit.1),
            span: 20,
        };
        let deep = (0..12).find(|&k| depth_m(next, walk.position(k)) >= SWITCH_DEPTH_M);
        if let Some(deep) = deep
            && (0..=deep).all(|k| cell_of(walk.position(k)) == next)
        {
            return (edge, unit, deep);
        }
    }
    panic!("no straight way out of the cell gets {SWITCH_DEPTH_M} m deep into a neighbour");
}

/// Where a user walks: `step` (metres north, east) at each update, `span` steps, then back,
/// from `origin`.
#[derive(Clone, Copy, Debug)]
struct Walk {
    origin: LatLng,
    step: (f64, f64),
    span: u32,
}

impl Walk {
    fn still(at: LatLng) -> Walk {
        Walk {
            origin: at,
            step: (0.0, 0.0),
            span: 1,
        }
    }

    /// B's walk in the cell centred on `centre`: 20 m steps from 110 m south to 90 m north of
    /// it, 60 m east: about 1 km from every edge, and never on the centre's latitude or
    /// longitude.
    fn in_cell(centre: LatLng) -> Walk {
        Walk {
            origin: offset(centre, -110.0, 60.0),
            step: (20.0, 0.0),
            span: 10,
        }
    }

    fn position(&self, step: u32) -> LatLng {
        let period = 2 * self.span;
        let phase = step % period;
        let steps = if phase <= self.span {
            phase
        } else {
            period - phase
        };
        let steps = f64::from(steps);
        offset(self.origin, steps * self.step.0, steps * self.step.1)
    }
}

// ---------------------------------------------------------------------------------------
// Clients

/// One message a client received, and when.
struct Received {
    at: Instant,
    message: Value,
}

/// A WebSocket client: a task reads every message as it arrives and stamps it.
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

    async fn send_location(&mut self, at: LatLng) {
        let text = json!({"type": "location", "latitude": at.lat(), "longitude": at.lng()});
        self.sink
            .as_mut()
            .unwrap()
            .send(Message::text(text.to_string()))
            .await
            .unwrap();
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

    /// What this client was shown of `user`: each `friend_location` of them and each snapshot
    /// entry naming them, with its arrival.
    fn views_of(&self, user: u64) -> Vec<(Instant, Value)> {
        let mut views = Vec::new();
        for (at, m) in self.find(|_| true) {
            if m["type"] == "friend_location" && m["user_id"] == user {
                views.push((at, m));
            } else if m["type"] == "nearby_friends" {
                for entry in m["friends"].as_array().into_iter().flatten() {
                    if entry["user_id"] == user {
                        views.push((at, entry.clone()));
                    }
                }
            }
        }
        views
    }

    /// Sessions that ended (close frames, socket errors).
    fn closes(&self) -> usize {
        self.find(|m| m["type"] == "(close)" || m["type"] == "(socket error)")
            .len()
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

/// A `friend_location` of `user` with `precision`.
fn location_with(user: u64, precision: &'static str) -> impl Fn(&Value) -> bool {
    move |m: &Value| location_of(user)(m) && m["precision"] == precision
}

/// A `friend_location` of `user` at exactly `at` (a cell's centre).
fn location_at(user: u64, at: LatLng) -> impl Fn(&Value) -> bool {
    move |m: &Value| {
        location_of(user)(m)
            && m["latitude"].as_f64() == Some(at.lat())
            && m["longitude"].as_f64() == Some(at.lng())
    }
}

/// A `friend_gone` of `user`.
fn gone_of(user: u64) -> impl Fn(&Value) -> bool {
    move |m: &Value| m["type"] == "friend_gone" && m["user_id"] == user
}

// ---------------------------------------------------------------------------------------
// Checking a view against the truth

/// What B really sent, and where A stands: what every view of B is checked against.
struct Truth {
    a: LatLng,
    /// Every location B sent, with when.
    sent: Vec<(Instant, LatLng)>,
}

/// How far back "a recent update" of B goes for a view that arrived at some instant.
const RECENT: Duration = Duration::from_secs(15);

impl Truth {
    fn recent(&self, at: Instant) -> impl Iterator<Item = LatLng> + '_ {
        self.sent
            .iter()
            .filter(move |(sent, _)| *sent <= at && at.duration_since(*sent) <= RECENT)
            .map(|(_, position)| *position)
    }

    fn shown_at(view: &Value) -> Result<LatLng, String> {
        match (view["latitude"].as_f64(), view["longitude"].as_f64()) {
            (Some(lat), Some(lng)) => LatLng::new(lat, lng).map_err(|err| format!("{err}")),
            _ => Err("no coordinates".to_owned()),
        }
    }

    fn check_distance(&self, view: &Value, shown: LatLng) -> Result<(), String> {
        let expected = round_tenth(self.a.distance_m(shown));
        match view["distance_m"].as_f64() {
            Some(d) if (d - expected).abs() <= 0.1 => Ok(()),
            other => Err(format!(
                "distance_m {other:?}, but A is {expected} m from the point shown"
            )),
        }
    }

    /// An exact view: one of B's recent positions, no accuracy.
    fn check_exact(&self, view: &Value, at: Instant) -> Result<(), String> {
        if view["precision"] != "exact" {
            return Err("precision is not \"exact\"".to_owned());
        }
        if view.get("accuracy_m").is_some() {
            return Err("an exact view carries accuracy_m".to_owned());
        }
        let shown = Self::shown_at(view)?;
        if !self.recent(at).any(|sent| sent == shown) {
            return Err("not one of B's recent positions".to_owned());
        }
        self.check_distance(view, shown)
    }

    /// An approximate view: the centre of the cell of one of B's recent positions, with the
    /// cell's circumradius as its accuracy, and never any coordinate B ever sent.
    fn check_approximate(&self, view: &Value, at: Instant) -> Result<(), String> {
        if view["precision"] != "approximate" {
            return Err("precision is not \"approximate\"".to_owned());
        }
        let shown = Self::shown_at(view)?;
        if self
            .sent
            .iter()
            .any(|(_, sent)| sent.lat() == shown.lat() || sent.lng() == shown.lng())
        {
            return Err("LEAK: a coordinate B sent".to_owned());
        }
        let Some(cell) = self
            .recent(at)
            .map(cell_of)
            .find(|&cell| centre(cell) == shown)
        else {
            return Err("not the centre of the cell of any of B's recent positions".to_owned());
        };
        let accuracy = circumradius_m(cell).round();
        if view["accuracy_m"].as_f64() != Some(accuracy) {
            return Err(format!(
                "accuracy_m is not the cell's circumradius {accuracy}"
            ));
        }
        self.check_distance(view, shown)
    }

    /// Checks each view; the failures, one line each, times relative to `origin`.
    fn failures(
        &self,
        views: &[(Instant, Value)],
        check: impl Fn(&Self, &Value, Instant) -> Result<(), String>,
        origin: Instant,
    ) -> Vec<String> {
        views
            .iter()
            .filter_map(|(at, view)| {
                check(self, view, *at)
                    .err()
                    .map(|why| format!("{:+.3}s {view}: {why}", signed_secs(*at, origin)))
            })
            .collect()
    }
}

/// Views that arrived in `[from, to)`.
fn between(views: &[(Instant, Value)], from: Instant, to: Instant) -> Vec<(Instant, Value)> {
    views
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------
// The cluster

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

#[derive(Clone, Copy)]
struct Users {
    /// The viewer, on node 1.
    a: u64,
    /// The sharer, on node 2.
    b: u64,
    /// The control, A's friend on node 2.
    c: u64,
    /// A stranger to B (on node 1).
    d: u64,
}

/// Both nodes, their Redis and database; A↔B and A↔C are friends.
struct Cluster {
    // Fields drop in declaration order: nodes, then proxies, Redis and the database.
    users: Users,
    n1: NodeProcess,
    n2: NodeProcess,
    proxies: [TcpProxy; 2],
    _redis: TestRedis,
    _postgres: TestPostgres,
    dir: PathBuf,
}

impl Cluster {
    async fn start(name: &str) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "nearby-sharing-controls-{name}-{}",
            std::process::id()
        ));
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
        let d = user_owned_by("n1", a + 1);
        for node in [&n1, &n2] {
            for (user, owner) in [(a, "n1"), (b, "n2"), (c, "n2")] {
                node.wait_owner(user, owner, Duration::from_secs(10)).await;
            }
        }
        befriend((&n1, a), (&n2, b)).await;
        befriend((&n1, a), (&n2, c)).await;
        Cluster {
            users: Users { a, b, c, d },
            n1,
            n2,
            proxies,
            _redis: redis,
            _postgres: postgres,
            dir,
        }
    }

    fn node(&self, via: Via) -> &NodeProcess {
        match via {
            Via::ViewersNode => &self.n1,
            Via::SharersNode => &self.n2,
        }
    }

    /// A call that must answer `expected`; its body.
    async fn expect(
        &self,
        via: Via,
        method: &str,
        path: &str,
        user: u64,
        body: Option<Value>,
        expected: u16,
    ) -> Value {
        let node = self.node(via);
        let (status, answer) = node.call(method, path, Some(user), body.as_ref()).await;
        assert_eq!(
            status,
            expected,
            "{method} {path} {} as {user} through {}: {answer}",
            body.map(|b| b.to_string()).unwrap_or_default(),
            node.id()
        );
        answer
    }

    /// Cuts both nodes' Redis links for `duration`; when the cut ends.
    fn cut(&self, duration: Duration) -> Instant {
        let at = Instant::now();
        for proxy in &self.proxies {
            proxy.cut(duration);
        }
        at + duration
    }

    /// The nodes' warnings and errors, for failure messages.
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

/// Which node takes a REST call.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// Node 1, which holds A's session (and not B's).
    ViewersNode,
    /// Node 2, which holds B's session.
    SharersNode,
}

/// `line` without its terminal colour codes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
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

// ---------------------------------------------------------------------------------------
// Moving the users

/// Sends each walker's next position every `SEND_EVERY`; records every location sent.
struct Mover {
    walks: Arc<Mutex<Vec<(Walk, u32)>>>,
    sent: Arc<Mutex<Vec<(Instant, u64, LatLng)>>>,
    failures: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Mover {
    fn start(walkers: Vec<(&'static str, u64, SplitSink<Ws, Message>, Walk)>) -> Mover {
        let walks = Arc::new(Mutex::new(
            walkers
                .iter()
                .map(|(_, _, _, walk)| (*walk, 0_u32))
                .collect::<Vec<_>>(),
        ));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let mut sinks: Vec<(&'static str, u64, SplitSink<Ws, Message>)> = walkers
            .into_iter()
            .map(|(name, user, sink, _)| (name, user, sink))
            .collect();
        let task = tokio::spawn({
            let (walks, sent, failures) =
                (Arc::clone(&walks), Arc::clone(&sent), Arc::clone(&failures));
            async move {
                let mut ticker = tokio::time::interval(SEND_EVERY);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    for (index, (name, user, sink)) in sinks.iter_mut().enumerate() {
                        let position = {
                            let mut walks = walks.lock().unwrap();
                            let (walk, step) = &mut walks[index];
                            *step += 1;
                            walk.position(*step - 1)
                        };
                        let text = json!({
                            "type": "location",
                            "latitude": position.lat(),
                            "longitude": position.lng(),
                        })
                        .to_string();
                        sent.lock().unwrap().push((Instant::now(), *user, position));
                        if let Err(err) = sink.send(Message::text(text)).await {
                            failures.lock().unwrap().push(format!("{name}: {err}"));
                        }
                    }
                }
            }
        });
        Mover {
            walks,
            sent,
            failures,
            task,
        }
    }

    /// Walker `index` walks `walk` from its next update on.
    fn set(&self, index: usize, walk: Walk) {
        self.walks.lock().unwrap()[index] = (walk, 0);
    }

    fn sent_by(&self, user: u64) -> Vec<(Instant, LatLng)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, who, _)| *who == user)
            .map(|&(at, _, position)| (at, position))
            .collect()
    }

    fn count_by(&self, user: u64, from: Instant, to: Instant) -> usize {
        self.sent_by(user)
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
            .count()
    }

    fn failures(&self) -> Vec<String> {
        self.failures.lock().unwrap().clone()
    }
}

impl Drop for Mover {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const WALKER_B: usize = 1;

/// The cluster with A, B and C connected and moving, each having heard the others.
struct Live {
    // Fields drop in declaration order: the mover and clients before the cluster.
    mover: Mover,
    a: Client,
    b: Client,
    c: Client,
    cluster: Cluster,
    geo: Geometry,
    started: Instant,
}

impl Live {
    async fn start(name: &str) -> Live {
        let cluster = Cluster::start(name).await;
        let Users { a, b, c, .. } = cluster.users;
        let geo = geometry();
        let mut client_a = Client::connect("A", &cluster.n1, a).await;
        let mut client_b = Client::connect("B", &cluster.n2, b).await;
        let mut client_c = Client::connect("C", &cluster.n2, c).await;
        let mover = Mover::start(vec![
            ("A", a, client_a.sink.take().unwrap(), Walk::still(geo.a)),
            (
                "B",
                b,
                client_b.sink.take().unwrap(),
                Walk::in_cell(geo.home),
            ),
            (
                "C",
                c,
                client_c.sink.take().unwrap(),
                Walk {
                    origin: geo.c,
                    step: (3.0, 0.0),
                    span: 50,
                },
            ),
        ]);
        let live = Live {
            mover,
            a: client_a,
            b: client_b,
            c: client_c,
            cluster,
            geo,
            started: Instant::now(),
        };
        // The path works before any change: A hears B and C (exactly, by default).
        for (friend, friend_name) in [(b, "B"), (c, "C")] {
            assert!(
                live.a
                    .wait_for(
                        live.started,
                        Duration::from_secs(10),
                        2,
                        location_of(friend)
                    )
                    .await
                    .is_some(),
                "A did not hear twice from {friend_name} before any change\n{}",
                live.details(live.started, &[])
            );
        }
        live
    }

    fn truth(&self) -> Truth {
        Truth {
            a: self.geo.a,
            sent: self.mover.sent_by(self.cluster.users.b),
        }
    }

    /// A second session of A (node 1): sends A's position, returns it with its snapshot.
    async fn second_session_of_a(&self) -> (Client, Value, Instant) {
        let mut a2 = Client::connect("A2", &self.cluster.n1, self.cluster.users.a).await;
        a2.send_location(self.geo.a).await;
        let at = a2
            .wait_for(self.started, Duration::from_secs(5), 1, |m| {
                m["type"] == "nearby_friends"
            })
            .await;
        assert!(
            at.is_some(),
            "A's second session got no snapshot\n{}",
            self.details(self.started, &[&a2])
        );
        let snapshot = a2.find(|m| m["type"] == "nearby_friends").remove(0).1;
        (a2, snapshot, at.unwrap())
    }

    /// `/v1/me/friends/{A}/sharing`: what B lets A see (with B's token).
    fn sharing_path(&self) -> String {
        format!("/v1/me/friends/{}/sharing", self.cluster.users.a)
    }

    /// B sets what A may see; the instants the call started and answered 200.
    async fn set_for_a(&self, via: Via, body: Value) -> (Instant, Instant) {
        let call_at = Instant::now();
        let answer = self
            .cluster
            .expect(
                via,
                "PUT",
                &self.sharing_path(),
                self.cluster.users.b,
                Some(body.clone()),
                200,
            )
            .await;
        let ok_at = Instant::now();
        assert_eq!(answer["user_id"], self.cluster.users.a, "{answer}");
        assert_eq!(answer["precision"], body["precision"], "{answer}");
        (call_at, ok_at)
    }

    /// Nothing ended a session, and every send went through (else silences prove nothing).
    fn assert_sessions_intact(&self, extra: &[&Client]) {
        let closes: usize = [&self.a, &self.b, &self.c]
            .into_iter()
            .chain(extra.iter().copied())
            .map(Client::closes)
            .sum();
        assert!(
            closes == 0 && self.mover.failures().is_empty(),
            "a session ended during the test (failed sends: {:?})\n{}",
            self.mover.failures(),
            self.details(self.started, extra)
        );
    }

    /// A's (and `extra` clients') timelines, B's errors and the nodes' warnings.
    fn details(&self, origin: Instant, extra: &[&Client]) -> String {
        let mut out = format!(
            "times relative to {:+.3}s after the start; users A={} (n1) B={} (n2) C={} (n2)\n",
            signed_secs(origin, self.started),
            self.cluster.users.a,
            self.cluster.users.b,
            self.cluster.users.c
        );
        out.push_str(&self.a.timeline(origin));
        for client in extra {
            out.push_str(&client.timeline(origin));
        }
        let errors = self.b.find(|m| m["type"] == "error");
        let _ = writeln!(out, "  B got {} error(s)", errors.len());
        let _ = write!(
            out,
            "node logs (in {}):\n{}",
            self.cluster.dir.display(),
            self.cluster.log_warnings()
        );
        out
    }
}

fn describe(lines: &[String]) -> String {
    lines.join("\n    ")
}

// ---------------------------------------------------------------------------------------
// 1. The API

/// PUT/GET/DELETE `/v1/me/friends/{id}/sharing` and the default precision of
/// `PUT /v1/me/sharing`: bodies exactly as documented, set through one node and read through
/// the other; 422 naming `precision` or `until` (and nothing changed); 404 for a non-friend;
/// DELETE 204 back to the default; unfriending removes both sides' settings and befriending
/// again starts from the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_friend_sharing_api_answers_as_documented() {
    let cluster = Cluster::start("api").await;
    let Users { a, b, d, .. } = cluster.users;
    use Via::{SharersNode as N2, ViewersNode as N1};
    let path = format!("/v1/me/friends/{a}/sharing");

    // Nothing set: the default (exact), from either node.
    for via in [N1, N2] {
        let got = cluster.expect(via, "GET", &path, b, None, 200).await;
        assert_eq!(
            got,
            json!({"user_id": a, "precision": "exact", "source": "default"})
        );
    }

    // Each precision, set through one node and read through the other.
    for (precision, set_via, get_via) in [
        ("approximate", N2, N1),
        ("hidden", N1, N2),
        ("exact", N2, N1),
    ] {
        let body = json!({"precision": precision});
        let set = cluster
            .expect(set_via, "PUT", &path, b, Some(body), 200)
            .await;
        assert_eq!(set, json!({"user_id": a, "precision": precision}));
        let got = cluster.expect(get_via, "GET", &path, b, None, 200).await;
        assert_eq!(
            got,
            json!({"user_id": a, "precision": precision, "source": "friend"})
        );
    }

    // With an end: answered and read back as UTC with milliseconds.
    let until = clock::format_rfc3339(clock::now_ms() + 3_600_000);
    let set = cluster
        .expect(
            N1,
            "PUT",
            &path,
            b,
            Some(json!({"precision": "approximate", "until": until})),
            200,
        )
        .await;
    assert_eq!(
        set,
        json!({"user_id": a, "precision": "approximate", "until": until})
    );
    let got = cluster.expect(N2, "GET", &path, b, None, 200).await;
    assert_eq!(
        got,
        json!({"user_id": a, "precision": "approximate", "until": until, "source": "friend"})
    );
    // Another offset is the same instant.
    let in_paris = clock::format_rfc3339(clock::now_ms() + 3 * 3_600_000).replace('Z', "+01:00");
    let set = cluster
        .expect(
            N2,
            "PUT",
            &path,
            b,
            Some(json!({"precision": "approximate", "until": in_paris})),
            200,
        )
        .await;
    assert_eq!(
        clock::parse_rfc3339(set["until"].as_str().unwrap()),
        clock::parse_rfc3339(&in_paris),
        "{set}"
    );
    // About a year ahead is accepted.
    let in_365_days = clock::format_rfc3339(clock::now_ms() + 365 * 86_400_000);
    cluster
        .expect(
            N1,
            "PUT",
            &path,
            b,
            Some(json!({"precision": "exact", "until": in_365_days})),
            200,
        )
        .await;

    // 422, naming the field; nothing changes.
    let past = clock::format_rfc3339(clock::now_ms() - 60_000);
    let too_far = clock::format_rfc3339(clock::now_ms() + 367 * 86_400_000);
    for (body, field) in [
        (json!({"precision": "blurry"}), "precision"),
        (json!({"precision": "Exact"}), "precision"),
        (json!({"precision": null}), "precision"),
        (json!({}), "precision"),
        (json!({"until": until}), "precision"),
        (json!({"precision": "exact", "until": "tomorrow"}), "until"),
        (
            json!({"precision": "exact", "until": "2030-02-30T00:00:00Z"}),
            "until",
        ),
        (json!({"precision": "exact", "until": past}), "until"),
        (json!({"precision": "hidden", "until": too_far}), "until"),
    ] {
        for via in [N1, N2] {
            let error = cluster
                .expect(via, "PUT", &path, b, Some(body.clone()), 422)
                .await;
            assert_eq!(error["error"]["code"], "invalid_field", "{body}: {error}");
            assert_eq!(error["error"]["field"], field, "{body}: {error}");
        }
    }
    let got = cluster.expect(N2, "GET", &path, b, None, 200).await;
    assert_eq!(
        got,
        json!({"user_id": a, "precision": "exact", "until": in_365_days, "source": "friend"}),
        "a refused PUT changed nothing"
    );

    // Not a friend: 404 for every method, through either node; a bad id is 400; no token 401.
    let stranger = format!("/v1/me/friends/{d}/sharing");
    for via in [N1, N2] {
        let body = json!({"precision": "exact"});
        for (method, body) in [("PUT", Some(body)), ("GET", None), ("DELETE", None)] {
            let error = cluster.expect(via, method, &stranger, b, body, 404).await;
            assert_eq!(error["error"]["code"], "not_found", "{error}");
        }
    }
    let error = cluster
        .expect(
            N1,
            "PUT",
            "/v1/me/friends/abc/sharing",
            b,
            Some(json!({"precision": "exact"})),
            400,
        )
        .await;
    assert_eq!(error["error"]["field"], "user_id", "{error}");
    let (status, _) = cluster.n1.call("GET", &path, None, None).await;
    assert_eq!(status, 401);

    // DELETE: 204 with no body, back to the default; again: still 204.
    for via in [N1, N2] {
        let (status, text) = cluster
            .node(via)
            .call_text("DELETE", &path, Some(b), None)
            .await;
        assert_eq!(status, 204, "DELETE {path}: {text}");
        assert!(text.is_empty(), "a 204 has no body: {text:?}");
        let got = cluster.expect(via, "GET", &path, b, None, 200).await;
        assert_eq!(
            got,
            json!({"user_id": a, "precision": "exact", "source": "default"})
        );
    }

    // The default precision: PUT /v1/me/sharing round-trips it, absent leaves it alone, a
    // friend without a setting gets it, `hidden` is no default (ghost mode is).
    let sharing = cluster
        .expect(
            N2,
            "PUT",
            "/v1/me/sharing",
            b,
            Some(json!({"enabled": true, "precision": "approximate"})),
            200,
        )
        .await;
    assert_eq!(
        sharing,
        json!({"enabled": true, "sharing_now": true, "precision": "approximate"})
    );
    for via in [N1, N2] {
        let got = cluster
            .expect(via, "GET", "/v1/me/sharing", b, None, 200)
            .await;
        assert_eq!(got, sharing);
        let got = cluster.expect(via, "GET", &path, b, None, 200).await;
        assert_eq!(
            got,
            json!({"user_id": a, "precision": "approximate", "source": "default"})
        );
    }
    let unchanged = cluster
        .expect(
            N1,
            "PUT",
            "/v1/me/sharing",
            b,
            Some(json!({"enabled": true})),
            200,
        )
        .await;
    assert_eq!(unchanged["precision"], "approximate", "{unchanged}");
    for precision in ["hidden", "blurry"] {
        let error = cluster
            .expect(
                N2,
                "PUT",
                "/v1/me/sharing",
                b,
                Some(json!({"enabled": true, "precision": precision})),
                422,
            )
            .await;
        assert_eq!(error["error"]["field"], "precision", "{error}");
    }
    let got = cluster
        .expect(N1, "GET", "/v1/me/sharing", b, None, 200)
        .await;
    assert_eq!(
        got["precision"], "approximate",
        "a refused PUT changed nothing: {got}"
    );
    // A friend's own setting wins over the default.
    cluster
        .expect(
            N1,
            "PUT",
            &path,
            b,
            Some(json!({"precision": "exact"})),
            200,
        )
        .await;
    let got = cluster.expect(N2, "GET", &path, b, None, 200).await;
    assert_eq!(
        got,
        json!({"user_id": a, "precision": "exact", "source": "friend"})
    );
    let sharing = cluster
        .expect(
            N2,
            "PUT",
            "/v1/me/sharing",
            b,
            Some(json!({"enabled": true, "precision": "exact"})),
            200,
        )
        .await;
    assert_eq!(sharing["precision"], "exact", "{sharing}");

    // Unfriending removes both sides' settings; befriending again starts from the default.
    cluster
        .expect(
            N2,
            "PUT",
            &path,
            b,
            Some(json!({"precision": "hidden"})),
            200,
        )
        .await;
    let a_path = format!("/v1/me/friends/{b}/sharing");
    cluster
        .expect(
            N1,
            "PUT",
            &a_path,
            a,
            Some(json!({"precision": "approximate", "until": until})),
            200,
        )
        .await;
    let (status, text) = cluster
        .n1
        .call_text("DELETE", &format!("/v1/me/friends/{a}"), Some(b), None)
        .await;
    assert_eq!(status, 204, "unfriend: {text}");
    for via in [N1, N2] {
        cluster.expect(via, "GET", &path, b, None, 404).await;
        cluster.expect(via, "GET", &a_path, a, None, 404).await;
        cluster
            .expect(
                via,
                "PUT",
                &path,
                b,
                Some(json!({"precision": "exact"})),
                404,
            )
            .await;
    }
    befriend((&cluster.n2, b), (&cluster.n1, a)).await;
    for via in [N1, N2] {
        let got = cluster.expect(via, "GET", &path, b, None, 200).await;
        assert_eq!(
            got,
            json!({"user_id": a, "precision": "exact", "source": "default"}),
            "befriending again starts from the default"
        );
        let got = cluster.expect(via, "GET", &a_path, a, None, 200).await;
        assert_eq!(
            got,
            json!({"user_id": b, "precision": "exact", "source": "default"}),
            "befriending again starts from the default (A's side)"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 2. Approximate

/// B shares approximately with A: every view after the change is the centre of the cell of a
/// recent position of B, with the cell's circumradius and the distance from that centre,
/// never a coordinate B sent; a new session's snapshot too. Moving inside a cell sends nothing,
/// a move into another cell sends one view; zig-zagging across an edge (never 300 m in) sends
/// nothing, and walking in switches at the first position 300 m inside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approximate_friend_sees_only_cell_centres_and_only_changes_of_cell() {
    let live = Live::start("approximate").await;
    let Users { b, c, .. } = live.cluster.users;

    let (call_at, ok_at) = live
        .set_for_a(Via::SharersNode, json!({"precision": "approximate"}))
        .await;
    let first = live
        .a
        .wait_for(call_at, GRACE, 1, location_with(b, "approximate"))
        .await;
    assert!(
        first.is_some(),
        "A was not shown B approximately within {GRACE:?} of the 200\n{}",
        live.details(ok_at, &[])
    );
    let first = first.unwrap();

    // B walks 20 m steps inside its cell: nothing new for A.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let quiet_end = Instant::now();

    // A new session of A: its snapshot shows B approximately (and C exactly).
    let (a2, snapshot, snapshot_at) = live.second_session_of_a().await;

    // B crosses into another cell: one new view, its centre, to both sessions.
    let jump_at = Instant::now();
    live.mover.set(WALKER_B, Walk::in_cell(live.geo.away));
    let moved = live
        .a
        .wait_for(
            jump_at,
            Duration::from_secs(3),
            1,
            location_at(b, live.geo.away),
        )
        .await;
    let moved2 = a2
        .wait_for(
            jump_at,
            Duration::from_secs(3),
            1,
            location_at(b, live.geo.away),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(2_000)).await;

    // Along an edge: B zig-zags up to 150 m into a neighbouring cell: nothing. Then B walks
    // in, 50 m a step: the view switches at the first position 300 m inside, not before.
    let (edge, unit, deep_step) = edge_crossing(live.geo.away);
    let next = cell_of(edge);
    assert!(
        live.geo.a.distance_m(centre(next)) < 7_000.0,
        "within A's radius"
    );
    let zigzag_at = Instant::now();
    live.mover.set(
        WALKER_B,
        Walk {
            origin: offset(edge, -150.0 * unit.0, -150.0 * unit.1),
            step: (60.0 * unit.0, 60.0 * unit.1),
            span: 5,
        },
    );
    tokio::time::sleep(Duration::from_millis(5_000)).await;
    let walk_in = Walk {
        origin: edge,
        step: (50.0 * unit.0, 50.0 * unit.1),
        span: 20,
    };
    let walk_in_at = Instant::now();
    live.mover.set(WALKER_B, walk_in);
    let limit = SEND_EVERY * (deep_step + 4);
    let switched = live
        .a
        .wait_for(walk_in_at, limit, 1, location_at(b, centre(next)))
        .await;
    live.mover.set(WALKER_B, Walk::in_cell(centre(next)));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let end = Instant::now();

    // Judge.
    let truth = live.truth();
    let views = live.a.views_of(b);
    let views2 = a2.views_of(b);
    let sent_b = live.mover.sent_by(b);
    let zigzag_in_next = sent_b
        .iter()
        .filter(|(at, p)| *at >= zigzag_at && *at < walk_in_at && cell_of(*p) == next)
        .count();
    let zigzag_views = between(&views, zigzag_at, walk_in_at);
    // When B sent the first position 300 m inside, and the views before it.
    let deep_sent = sent_b
        .iter()
        .find(|(at, p)| *at >= walk_in_at && *p == walk_in.position(deep_step))
        .map(|(at, _)| *at);
    let too_early = between(&views, walk_in_at, deep_sent.unwrap_or(end));
    let walk_in_views = between(&views, walk_in_at, end);
    let exact_before = live.truth().failures(
        &between(&views, live.started, call_at),
        Truth::check_exact,
        ok_at,
    );
    let after_first: Vec<(Instant, Value)> = between(&views, first, end);
    let not_approximate: Vec<String> = truth
        .failures(&after_first, Truth::check_approximate, ok_at)
        .into_iter()
        .chain(truth.failures(&views2, Truth::check_approximate, ok_at))
        .collect();
    let late = truth.failures(
        &between(&views, ok_at + GRACE, end),
        Truth::check_approximate,
        ok_at,
    );
    let in_cell = between(&views, first + Duration::from_millis(1), jump_at);
    let after_jump = between(&views, jump_at, zigzag_at);
    let snapshot_b: Vec<&Value> = snapshot["friends"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["user_id"] == b)
        .collect();
    let snapshot_c = snapshot["friends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["user_id"] == c)
        .cloned();
    let b_in_cell = live.mover.count_by(b, first, quiet_end);
    println!(
        "approximate: first approximate view {:+.3}s after the 200; B sent {b_in_cell} updates in its cell, A got {} view(s) of B meanwhile; after the jump A got {} (first at {:?}), A2 {:?}; zig-zag across an edge: {zigzag_in_next} positions in the next cell, {} view(s); walking in: 300 m deep at step {deep_step} (sent {:?}), switched {:?}, {} view(s); {} view(s) of B in all",
        signed_secs(first, ok_at),
        in_cell.len(),
        after_jump.len(),
        moved.map(|at| signed_secs(at, jump_at)),
        moved2.map(|at| signed_secs(at, jump_at)),
        zigzag_views.len(),
        deep_sent.map(|at| signed_secs(at, walk_in_at)),
        switched.map(|at| signed_secs(at, walk_in_at)),
        walk_in_views.len(),
        views.len()
    );
    let details = || live.details(ok_at, &[&a2]);
    assert!(
        exact_before.is_empty(),
        "before the change, A's views of B were not B's exact positions:\n    {}\n{}",
        describe(&exact_before),
        details()
    );
    assert!(
        late.is_empty() && not_approximate.is_empty(),
        "after the change A was shown B other than at the centre of B's cell:\n    {}\n    {}\n{}",
        describe(&late),
        describe(&not_approximate),
        details()
    );
    assert!(
        b_in_cell >= 5 && in_cell.is_empty(),
        "B moved {b_in_cell} times inside one cell and A got {} new view(s) of B (expected none)\n{}",
        in_cell.len(),
        details()
    );
    assert_eq!(
        snapshot_b.len(),
        1,
        "the new session's snapshot has B once: {snapshot}\n{}",
        details()
    );
    if let Err(why) = truth.check_approximate(snapshot_b[0], snapshot_at) {
        panic!("the new session's snapshot shows B wrongly: {why}: {snapshot}");
    }
    match snapshot_c {
        Some(view) => assert_eq!(view["precision"], "exact", "C shares exactly: {snapshot}"),
        None => panic!("the snapshot misses C: {snapshot}"),
    }
    assert!(
        moved.is_some() && moved2.is_some(),
        "B moved into another cell and A's sessions were not shown its centre (A: {moved:?}, A2: {moved2:?})\n{}",
        details()
    );
    assert_eq!(
        after_jump.len(),
        1,
        "one view per change of cell, not one per update\n{}",
        details()
    );
    assert!(
        zigzag_in_next >= 2 && zigzag_views.is_empty(),
        "B crossed an edge {zigzag_in_next} time(s), never 300 m in, and A got {} view(s) of B (expected none)\n{}",
        zigzag_views.len(),
        details()
    );
    assert!(
        switched.is_some() && deep_sent.is_some() && too_early.is_empty(),
        "walking into the next cell, the view must switch at the first position {SWITCH_DEPTH_M} m inside (step {deep_step}, sent {:?}); switched {:?}; views before it: {}\n{}",
        deep_sent.map(|at| signed_secs(at, walk_in_at)),
        switched.map(|at| signed_secs(at, walk_in_at)),
        too_early.len(),
        details()
    );
    assert_eq!(
        walk_in_views.len(),
        1,
        "one view for the walk into the next cell\n{}",
        details()
    );
    live.assert_sessions_intact(&[&a2]);
}

// ---------------------------------------------------------------------------------------
// 3. Hidden

/// B hides from A: `friend_gone`, then nothing of B for 4.5 s of B's updates (while C's keep
/// coming and B still sees A), none in a new session's snapshot; widened back to exact, A sees
/// B exactly at B's next update; then ghost mode hides B despite the per-friend `exact`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_friend_gets_friend_gone_then_nothing_until_widened() {
    let live = Live::start("hidden").await;
    let Users { a, b, c, .. } = live.cluster.users;

    let (call_at, ok_at) = live
        .set_for_a(Via::SharersNode, json!({"precision": "hidden"}))
        .await;
    let gone = live.a.wait_for(call_at, GRACE, 1, gone_of(b)).await;
    assert!(
        gone.is_some(),
        "A got no friend_gone of B within {GRACE:?}\n{}",
        live.details(ok_at, &[])
    );
    let gone = gone.unwrap();
    // B keeps walking (every update would be shown exactly before).
    tokio::time::sleep_until((gone + Duration::from_millis(4_500)).into()).await;

    // A new session of A: C in its snapshot, B not.
    let (a2, snapshot, _) = live.second_session_of_a().await;
    let hidden_end = Instant::now();

    // Widening back to exact: shown at B's next update (the 200 through A's node).
    let (widen_call, widen_ok) = live
        .set_for_a(Via::ViewersNode, json!({"precision": "exact"}))
        .await;
    let limit = SEND_EVERY + Duration::from_millis(1_000);
    let shown = live
        .a
        .wait_for(widen_call, limit, 1, location_with(b, "exact"))
        .await;
    let shown2 = a2
        .wait_for(widen_call, limit, 1, location_with(b, "exact"))
        .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    // Ghost mode hides B whatever the per-friend setting (exact).
    let ghost_call = Instant::now();
    let ghost = live
        .cluster
        .expect(
            Via::SharersNode,
            "PUT",
            "/v1/me/sharing",
            b,
            Some(json!({"enabled": false})),
            200,
        )
        .await;
    let ghost_ok = Instant::now();
    assert_eq!(ghost["sharing_now"], false, "{ghost}");
    let ghost_gone = live.a.wait_for(ghost_call, GRACE, 1, gone_of(b)).await;
    let ghost_gone2 = a2.wait_for(ghost_call, GRACE, 1, gone_of(b)).await;
    tokio::time::sleep_until((ghost_ok + Duration::from_millis(3_500)).into()).await;
    let end = Instant::now();

    // Judge.
    let truth = live.truth();
    let views = live.a.views_of(b);
    let views2 = a2.views_of(b);
    // `gone` came within the grace: nothing of B after it, nor in A2 before the widening.
    let while_hidden: Vec<String> = between(&views, gone, widen_call)
        .iter()
        .chain(between(&views2, live.started, widen_call).iter())
        .map(|(at, m)| format!("{:+.3}s {m}", signed_secs(*at, ok_at)))
        .collect();
    let c_while_hidden = between(&live.a.find(location_of(c)), gone, hidden_end).len();
    let b_while_hidden = live.mover.count_by(b, gone, hidden_end);
    // Hiding is one way: B still sees A.
    let a_at_b_while_hidden = between(&live.b.find(location_of(a)), gone, hidden_end).len();
    let widened = between(&views, widen_call, ghost_call);
    let widened_wrong = truth
        .failures(&widened, Truth::check_exact, ok_at)
        .into_iter()
        .chain(truth.failures(
            &between(&views2, widen_call, ghost_call),
            Truth::check_exact,
            ok_at,
        ))
        .collect::<Vec<_>>();
    // Nothing of B after its friend_gone (which came within the grace, or the test fails).
    let after_ghost: Vec<String> = between(&views, ghost_gone.unwrap_or(ghost_ok + GRACE), end)
        .iter()
        .chain(between(&views2, ghost_gone2.unwrap_or(ghost_ok + GRACE), end).iter())
        .map(|(at, m)| format!("{:+.3}s {m}", signed_secs(*at, ok_at)))
        .collect();
    println!(
        "hidden: friend_gone {:+.3}s after the 200; while hidden B sent {b_while_hidden}, A got {c_while_hidden} of C's and {} of B's, B got {a_at_b_while_hidden} of A's; widened: first exact view {:?} s after the 200 (A2 {:?}); ghost: friend_gone {:?} s after its 200 (A2 {:?}), {} view(s) of B after it",
        signed_secs(gone, ok_at),
        while_hidden.len(),
        shown.map(|at| signed_secs(at, widen_ok)),
        shown2.map(|at| signed_secs(at, widen_ok)),
        ghost_gone.map(|at| signed_secs(at, ghost_ok)),
        ghost_gone2.map(|at| signed_secs(at, ghost_ok)),
        after_ghost.len()
    );
    let details = || live.details(ok_at, &[&a2]);
    assert!(
        while_hidden.is_empty(),
        "LEAK: A was shown B while hidden:\n    {}\n{}",
        describe(&while_hidden),
        details()
    );
    assert!(
        b_while_hidden >= 8 && c_while_hidden >= 4,
        "the hidden window proves nothing: B sent {b_while_hidden} updates, A got {c_while_hidden} of C's\n{}",
        details()
    );
    assert!(
        a_at_b_while_hidden >= 4,
        "hiding from A is one way, yet B got only {a_at_b_while_hidden} of A's locations meanwhile\n{}",
        details()
    );
    let friends = snapshot["friends"].as_array().unwrap();
    assert!(
        friends.iter().any(|f| f["user_id"] == c) && !friends.iter().any(|f| f["user_id"] == b),
        "a new session's snapshot must have C and not B: {snapshot}\n{}",
        details()
    );
    assert!(
        shown.is_some() && shown2.is_some(),
        "widened to exact, A's sessions did not see B within {limit:?} (A: {shown:?}, A2: {shown2:?})\n{}",
        details()
    );
    assert!(
        widened_wrong.is_empty(),
        "widened views of B are not B's exact positions:\n    {}\n{}",
        describe(&widened_wrong),
        details()
    );
    assert!(
        ghost_gone.is_some() && ghost_gone2.is_some() && after_ghost.is_empty(),
        "ghost mode with a per-friend `exact`: friend_gone {ghost_gone:?}/{ghost_gone2:?}, views after it:\n    {}\n{}",
        describe(&after_ghost),
        details()
    );
    live.assert_sessions_intact(&[&a2]);
}

// ---------------------------------------------------------------------------------------
// 4. Expiry

/// B's `exact` for A expires into B's `approximate` default while both nodes' Redis links are
/// cut (no message at all): A sees B exactly before, only approximately from `until` + 2 s
/// on; GET then says `source: default`, and a new session's snapshot is approximate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_setting_expiring_into_an_approximate_default_narrows_with_redis_cut() {
    let live = Live::start("expiry").await;
    let Users { a, b, c, .. } = live.cluster.users;

    // Exact for A until now + 3 s; approximate for friends without a setting.
    let until_ms = clock::now_ms() + 3_000;
    let until_at = Instant::now() + Duration::from_millis(3_000);
    let until = clock::format_rfc3339(until_ms);
    let (call_at, _) = live
        .set_for_a(
            Via::SharersNode,
            json!({"precision": "exact", "until": until}),
        )
        .await;
    let sharing = live
        .cluster
        .expect(
            Via::SharersNode,
            "PUT",
            "/v1/me/sharing",
            b,
            Some(json!({"enabled": true, "precision": "approximate"})),
            200,
        )
        .await;
    assert_eq!(sharing["precision"], "approximate", "{sharing}");
    let set_at = Instant::now();

    // Across the expiry instant no pub/sub at all: the cut begins a second before it.
    tokio::time::sleep_until((until_at - Duration::from_secs(1)).into()).await;
    let cut_end = live.cluster.cut(Duration::from_millis(2_500));
    let control = live
        .a
        .wait_for(cut_end, CONTROL_LIMIT, 1, location_of(c))
        .await;
    let narrowed = live
        .a
        .wait_for(
            until_at,
            (cut_end + CONTROL_LIMIT).saturating_duration_since(Instant::now()),
            1,
            location_with(b, "approximate"),
        )
        .await;
    // B's updates keep flowing (exact ones would each be shown); then B changes cell.
    tokio::time::sleep_until((control.unwrap_or(cut_end) + Duration::from_secs(2)).into()).await;
    let jump_at = Instant::now();
    live.mover.set(WALKER_B, Walk::in_cell(live.geo.away));
    let moved = live
        .a
        .wait_for(
            jump_at,
            Duration::from_secs(3),
            1,
            location_at(b, live.geo.away),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let got = live
        .cluster
        .expect(Via::ViewersNode, "GET", &live.sharing_path(), b, None, 200)
        .await;
    let (a2, snapshot, snapshot_at) = live.second_session_of_a().await;
    let end = Instant::now();

    // Judge.
    let truth = live.truth();
    let views = live.a.views_of(b);
    let exact_before = between(&views, set_at, until_at - Duration::from_secs(1));
    let before_wrong = truth.failures(
        &between(&views, live.started, until_at - Duration::from_millis(200)),
        Truth::check_exact,
        until_at,
    );
    let after = between(&views, until_at + GRACE, end);
    let after_wrong = truth.failures(&after, Truth::check_approximate, until_at);
    let snapshot_b: Vec<(Instant, Value)> = snapshot["friends"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["user_id"] == b)
        .map(|f| (snapshot_at, f.clone()))
        .collect();
    let snapshot_wrong = truth.failures(&snapshot_b, Truth::check_approximate, until_at);
    println!(
        "expiry: until {:+.3}s after the PUTs; Redis cut {:+.3}s..{:+.3}s (relative to until); exact views between the PUTs and the cut: {}; first approximate view {:?} s after until; C back {:?} s after the cut; {} view(s) from until+2s, jump seen {:?} s after it; GET: {got}",
        signed_secs(until_at, call_at),
        signed_secs(cut_end - Duration::from_millis(2_500), until_at),
        signed_secs(cut_end, until_at),
        exact_before.len(),
        narrowed.map(|at| signed_secs(at, until_at)),
        control.map(|at| signed_secs(at, cut_end)),
        after.len(),
        moved.map(|at| signed_secs(at, jump_at)),
    );
    let details = || live.details(until_at, &[&a2]);
    assert!(
        !exact_before.is_empty() && before_wrong.is_empty(),
        "before `until` A must see B exactly ({} view(s) after the PUTs; wrong:\n    {})\n{}",
        exact_before.len(),
        describe(&before_wrong),
        details()
    );
    assert!(
        after_wrong.is_empty(),
        "from until + {GRACE:?} A must see B only approximately:\n    {}\n{}",
        describe(&after_wrong),
        details()
    );
    assert!(
        control.is_some(),
        "C's updates never reached A again after the cut: the bus did not recover\n{}",
        details()
    );
    assert!(
        narrowed.is_some() && moved.is_some(),
        "A was never shown B approximately after `until` (narrowed: {narrowed:?}, after the jump: {moved:?})\n{}",
        details()
    );
    assert_eq!(
        got,
        json!({"user_id": a, "precision": "approximate", "source": "default"}),
        "an expired setting reads as the default"
    );
    assert!(
        snapshot_b.len() == 1 && snapshot_wrong.is_empty(),
        "a new session's snapshot must show B approximately: {snapshot}\n    {}",
        describe(&snapshot_wrong)
    );
    live.assert_sessions_intact(&[&a2]);
}

// ---------------------------------------------------------------------------------------
// 5. Narrowing while the pub/sub messages are lost

/// Exact → approximate, then approximate → hidden, each made during its own 2 s cut of both
/// nodes' Redis links (so the hint of each is lost), through `via`. Two cuts rather than one,
/// so the approximate phase is observed with the bus working again: B's updates keep flowing
/// (C's reaching A proves the bus is back) and any exact one would be shown; B then changes
/// cell, which an approximate viewer is told of. In the hidden phase B changes cell again, so
/// even an approximate leak would show.
async fn narrowing_under_message_loss(name: &str, via: Via) {
    let live = Live::start(name).await;
    let Users { b, c, .. } = live.cluster.users;

    // Exact → approximate during a cut.
    let cut1_end = live.cluster.cut(CUT);
    tokio::time::sleep(CHANGE_AFTER).await;
    let (call1, ok1) = live
        .set_for_a(via, json!({"precision": "approximate"}))
        .await;
    let control1 = live
        .a
        .wait_for(cut1_end, CONTROL_LIMIT, 1, location_of(c))
        .await;
    // B's updates flow again and are shown approximately: B changes cell.
    tokio::time::sleep_until((control1.unwrap_or(cut1_end).max(ok1 + GRACE)).into()).await;
    let jump1 = Instant::now();
    live.mover.set(WALKER_B, Walk::in_cell(live.geo.away));
    let moved = live
        .a
        .wait_for(
            jump1,
            Duration::from_secs(3),
            1,
            location_at(b, live.geo.away),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;

    // Approximate → hidden during another cut.
    let cut2_start = Instant::now();
    let cut2_end = live.cluster.cut(CUT);
    tokio::time::sleep(CHANGE_AFTER).await;
    let (call2, ok2) = live.set_for_a(via, json!({"precision": "hidden"})).await;
    let control2 = live
        .a
        .wait_for(cut2_end, CONTROL_LIMIT, 1, location_of(c))
        .await;
    // B changes cell again, past the grace: even an approximate viewer would be told.
    tokio::time::sleep_until((control2.unwrap_or(cut2_end).max(ok2 + GRACE)).into()).await;
    let jump2 = Instant::now();
    live.mover.set(WALKER_B, Walk::in_cell(live.geo.home));
    let end =
        (ok2 + Duration::from_secs(6)).max(control2.unwrap_or(cut2_end) + Duration::from_secs(4));
    tokio::time::sleep_until(end.into()).await;

    // Judge.
    let truth = live.truth();
    let views = live.a.views_of(b);
    let approximate_phase = between(&views, ok1 + GRACE, ok2 + GRACE);
    let too_fine = truth.failures(&approximate_phase, Truth::check_approximate, ok1);
    let approximate_views = between(&views, call1, ok2)
        .into_iter()
        .filter(|(_, m)| m["precision"] == "approximate")
        .count();
    let after_hidden: Vec<String> = between(&views, ok2 + GRACE, end + Duration::from_secs(3_600))
        .iter()
        .map(|(at, m)| format!("{:+.3}s {m}", signed_secs(*at, ok1)))
        .collect();
    let gone = live.a.find(gone_of(b));
    let gone_after = gone.iter().find(|(at, _)| *at >= call2).map(|(at, _)| *at);
    let b_after = live.mover.count_by(b, cut2_end, end);
    let b_back_home = live
        .mover
        .sent_by(b)
        .iter()
        .filter(|(at, p)| *at >= jump2 && cell_of(*p) == cell_of(live.geo.home))
        .count();
    let secs = |at: Instant| signed_secs(at, ok1);
    println!(
        "{name}: through {} ({via:?}); times relative to the first 200\n  cut 1 {:+.3}s..{:+.3}s, approximate: call {:+.3}s..{:+.3}s, C back {:?}, first approximate view {:?}, {} approximate view(s), B's new cell seen {:?}\n  cut 2 {:+.3}s..{:+.3}s, hidden: call {:+.3}s..{:+.3}s, friend_gone {:?}, C back {:?}, B sent {b_after} after the cut, {} view(s) of B after the grace; observed until {:+.3}s",
        live.cluster.node(via).id(),
        secs(cut1_end - CUT),
        secs(cut1_end),
        secs(call1),
        secs(ok1),
        control1.map(secs),
        views
            .iter()
            .find(|(at, m)| *at >= call1 && m["precision"] == "approximate")
            .map(|(at, _)| secs(*at)),
        approximate_views,
        moved.map(secs),
        secs(cut2_start),
        secs(cut2_end),
        secs(call2),
        secs(ok2),
        gone_after.map(secs),
        control2.map(secs),
        after_hidden.len(),
        secs(end),
    );
    let details = || live.details(ok1, &[]);
    if ok1 > cut1_end || ok2 > cut2_end {
        println!("  note: a 200 came after its cut ended: the hint may not have been lost");
    }
    assert!(
        too_fine.is_empty(),
        "LEAK: more than {GRACE:?} after `approximate` answered, A was shown B more precisely:\n    {}\n{}",
        describe(&too_fine),
        details()
    );
    assert!(
        after_hidden.is_empty(),
        "LEAK: more than {GRACE:?} after `hidden` answered, A was shown B:\n    {}\n{}",
        describe(&after_hidden),
        details()
    );
    // Without these the checks above would prove nothing.
    assert!(
        control1.is_some() && control2.is_some(),
        "C's updates did not reach A again after a cut (1: {control1:?}, 2: {control2:?}): the bus did not recover\n{}",
        details()
    );
    assert!(
        moved.is_some() && approximate_views >= 1,
        "A was not shown B approximately between the changes (views: {approximate_views}, B's new cell: {moved:?})\n{}",
        details()
    );
    assert!(
        gone_after.is_some() && b_after >= 6 && b_back_home >= 4,
        "hidden: friend_gone {gone_after:?}, B sent {b_after} updates after the cut, {b_back_home} back in its first cell\n{}",
        details()
    );
    live.assert_sessions_intact(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrowing_through_the_sharers_node_while_redis_is_cut_holds_within_2_s() {
    narrowing_under_message_loss("narrow-sharers-node", Via::SharersNode).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrowing_through_the_viewers_node_while_redis_is_cut_holds_within_2_s() {
    narrowing_under_message_loss("narrow-viewers-node", Via::ViewersNode).await;
}
