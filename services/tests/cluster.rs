//! Gateway nodes sharded by user id, as real processes: several `nearby serve` sharing a
//! throwaway Redis (see `support/redis.rs`), real WebSocket clients. Friends on different
//! nodes exchange updates; a connection to the wrong node is redirected; a node joining takes
//! its users (4001); SIGTERM drains a node (1012) with nothing lost; a SIGKILLed node's users
//! re-home within the heartbeat TTL.

#![allow(clippy::unwrap_used)]

#[path = "support/redis_cluster.rs"]
mod redis_cluster_support;
#[path = "support/redis.rs"]
mod redis_support;

use futures_util::{SinkExt, StreamExt};
use nearby_services::auth::{Secret, unix_now};
use nearby_ws_gateway::membership::{Member, Members};
use redis_cluster_support::TestRedisCluster;
use redis_support::TestRedis;
use serde_json::{Value, json};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SECRET: &str = "cluster-test-secret-0123456789";
/// Short, so a killed node drops out quickly; nodes poll the membership every 150 ms.
const NODE_TTL_MS: u64 = 1_500;
const PARIS: (f64, f64) = (48.8566, 2.3522);

fn token(user: u64) -> String {
    Secret::new(SECRET.as_bytes().to_vec())
        .unwrap()
        .mint(user, false, 3_600, unix_now())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap()
}

/// The owner of `user` among nodes named `ids` (only the ids matter to the hashing).
fn owner_among(ids: &[&str], user: u64) -> String {
    let members = Members::new(ids.iter().map(|id| Member::new(*id, "http://x")).collect());
    members.owner(user).unwrap().id().to_owned()
}

/// The first user id from `from` that `ids` assign to `node`.
fn user_owned_by(ids: &[&str], node: &str, from: u64) -> u64 {
    (from..)
        .find(|&user| owner_among(ids, user) == node)
        .unwrap()
}

/// A `nearby serve` process.
struct NodeProcess {
    id: String,
    port: u16,
    child: Child,
    log: PathBuf,
}

impl NodeProcess {
    /// Starts node `id` on the Redis given by `redis` (`--redis-url ...` or
    /// `--redis-cluster ...`).
    fn start(id: &str, redis: &[String], dir: &Path) -> NodeProcess {
        let port = free_port();
        let log = dir.join(format!("{id}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_nearby"))
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--secret", SECRET])
            .args(redis)
            .args(["--node-id", id])
            .args(["--advertise-url", &format!("http://127.0.0.1:{port}")])
            .args(["--node-ttl-ms", &NODE_TTL_MS.to_string()])
            .arg("--places")
            .arg(dir.join("places.csv"))
            .arg("--friends")
            .arg(dir.join("friends.csv"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        NodeProcess {
            id: id.to_owned(),
            port,
            child,
            log,
        }
    }

    fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/v1/ws", self.port)
    }

    /// GET `path` with the user's token: status and JSON body.
    async fn get(&self, path: &str, user: u64) -> (u16, Value) {
        let (status, body) = self.get_text(path, user).await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// GET `path` with the user's token: status and body.
    async fn get_text(&self, path: &str, user: u64) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            token(user)
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8_lossy(&response);
        let status = text[9..12].parse().unwrap();
        let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        (status, body.to_owned())
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("node {} exited ({status}): {}", self.id, self.log_text());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok()
                && self.get("/readyz", 0).await.0 == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node {} not ready: {}", self.id, self.log_text());
    }

    /// Waits until this node sends `user` to the node `owner`.
    async fn wait_owner(&self, user: u64, owner: &str, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let (status, body) = self.get("/v1/gateway", user).await;
            assert_eq!(status, 200, "{body}");
            if body["node_id"] == owner {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "node {} still sends user {user} to {body}, not {owner}",
                self.id
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn connect(&self, user: u64) -> Ws {
        connect_to(&self.ws_url(), user).await
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; its exit status.
    async fn exited(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "node {} still running: {}",
                self.id,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The flags that point a node at a Redis server.
fn single(redis: &TestRedis) -> Vec<String> {
    vec!["--redis-url".to_owned(), redis.url()]
}

/// The flags that point a node at a Redis Cluster.
fn sharded(cluster: &TestRedisCluster) -> Vec<String> {
    vec!["--redis-cluster".to_owned(), cluster.seeds()]
}

/// A temp dir with a one-place file and the friendships of the test.
fn workdir(name: &str, pairs: &[(u64, u64)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nearby-cluster-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("places.csv"),
        "id,name,latitude,longitude\np1,Somewhere,48.85,2.35\n",
    )
    .unwrap();
    let mut friends = std::fs::File::create(dir.join("friends.csv")).unwrap();
    for (a, b) in pairs {
        writeln!(friends, "{a},{b}").unwrap();
    }
    dir
}

/// Opens `url` for `user` (token in the query), expecting the upgrade.
async fn connect_to(url: &str, user: u64) -> Ws {
    let (ws, response) = connect_async(format!("{url}?token={}", token(user)))
        .await
        .unwrap_or_else(|err| panic!("connect {url} as {user}: {err}"));
    assert_eq!(response.status(), 101);
    ws
}

/// Opens `url` for `user` expecting a redirect; its `Location`.
async fn redirected(url: &str, user: u64) -> String {
    match connect_async(format!("{url}?token={}", token(user))).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 307);
            response.headers()["location"].to_str().unwrap().to_owned()
        }
        Err(err) => panic!("expected a redirect, got {err}"),
        Ok(_) => panic!("expected a redirect, got an upgrade"),
    }
}

async fn send_location(ws: &mut Ws, (latitude, longitude): (f64, f64)) {
    let text =
        json!({"type": "location", "latitude": latitude, "longitude": longitude}).to_string();
    ws.send(Message::text(text)).await.unwrap();
}

/// The next text message, within 5 s.
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s")
            .expect("the socket is open")
            .expect("a valid frame");
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// The close frame the server sends next (skipping other messages): code and reason.
async fn closed_with(ws: &mut Ws, limit: Duration) -> (CloseCode, String) {
    loop {
        let message = tokio::time::timeout(limit, ws.next())
            .await
            .expect("a close frame in time");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (frame.code, frame.reason.as_str().to_owned());
            }
            Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => {}
            Some(Err(err)) => panic!("socket error before the close frame: {err}"),
        }
    }
}

/// Sends a first location and returns the snapshot's friend ids.
async fn locate(ws: &mut Ws, at: (f64, f64)) -> Vec<u64> {
    send_location(ws, at).await;
    let snapshot = recv(ws).await;
    assert_eq!(snapshot["type"], "nearby_friends", "{snapshot}");
    snapshot["friends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["user_id"].as_u64().unwrap())
        .collect()
}

/// Waits for a `friend_location` of `user` at `latitude`, skipping other messages (over
/// Redis an update published just before a snapshot may also arrive after it, a harmless
/// duplicate of an older position).
async fn expect_location(ws: &mut Ws, user: u64, latitude: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let message = recv(ws).await;
        if message["type"] == "friend_location"
            && message["user_id"] == user
            && (message["latitude"].as_f64().unwrap() - latitude).abs() < 1e-9
        {
            return;
        }
        seen.push(message);
    }
    panic!("no location {latitude} of {user}; saw {seen:?}");
}

fn north(metres: f64) -> (f64, f64) {
    (PARIS.0 + metres / 111_195.0, PARIS.1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friends_on_two_nodes_meet_through_redirects_and_both_devices_hear() {
    let ids = ["n1", "n2"];
    let alice = user_owned_by(&ids, "n1", 1);
    let bob = user_owned_by(&ids, "n2", 1);
    let dir = workdir("redirect", &[(alice, bob)]);
    let redis = TestRedis::start();
    let redis = single(&redis);
    let mut n1 = NodeProcess::start("n1", &redis, &dir);
    let mut n2 = NodeProcess::start("n2", &redis, &dir);
    n1.wait_ready().await;
    n2.wait_ready().await;
    // Both nodes agree on both owners once each has seen the other.
    for node in [&n1, &n2] {
        node.wait_owner(alice, "n1", Duration::from_secs(5)).await;
        node.wait_owner(bob, "n2", Duration::from_secs(5)).await;
    }
    let (status, body) = n2.get("/v1/gateway", alice).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"node_id": "n1", "url": n1.ws_url()}));

    // Alice's phone asks the wrong node: 307 to n1, the query string (token) kept.
    let location = redirected(&n2.ws_url(), alice).await;
    assert_eq!(location, format!("{}?token={}", n1.ws_url(), token(alice)));
    let (mut phone, _) = connect_async(location).await.unwrap();
    let mut tablet = n1.connect(alice).await;
    let mut bob_ws = n2.connect(bob).await;

    assert!(locate(&mut phone, PARIS).await.is_empty());
    assert!(locate(&mut tablet, PARIS).await.is_empty());
    assert_eq!(locate(&mut bob_ws, north(500.0)).await, [alice]);
    // Bob's update crosses from n2 to n1 and reaches both of Alice's devices.
    expect_location(&mut phone, bob, north(500.0).0).await;
    expect_location(&mut tablet, bob, north(500.0).0).await;
    send_location(&mut phone, north(100.0)).await;
    expect_location(&mut bob_ws, alice, north(100.0).0).await;
    let (_, metrics) = n2.get_text("/metrics", 0).await;
    assert!(metrics.contains("\nnearby_gateway_nodes 2\n"), "{metrics}");
    assert!(
        metrics.contains("\nnearby_ws_redirected_total 1\n"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_takes_its_users_with_4001_and_they_carry_on() {
    let two = ["n1", "n2"];
    let three = ["n1", "n2", "n3"];
    // Carol moves to n3 when it joins; Dave stays where he is.
    let carol = (1..)
        .find(|&user| owner_among(&three, user) == "n3")
        .unwrap();
    let dave = (1..)
        .find(|&user| owner_among(&three, user) == owner_among(&two, user))
        .unwrap();
    let dir = workdir("join", &[(carol, dave)]);
    let redis = TestRedis::start();
    let redis = single(&redis);
    let mut n1 = NodeProcess::start("n1", &redis, &dir);
    let mut n2 = NodeProcess::start("n2", &redis, &dir);
    n1.wait_ready().await;
    n2.wait_ready().await;
    let nodes = [&n1, &n2];
    let home = |user: u64| {
        let id = owner_among(&two, user);
        nodes.iter().find(|n| n.id == id).copied().unwrap()
    };
    for node in nodes {
        node.wait_owner(carol, &owner_among(&two, carol), Duration::from_secs(5))
            .await;
        node.wait_owner(dave, &owner_among(&two, dave), Duration::from_secs(5))
            .await;
    }
    let mut carol_ws = home(carol).connect(carol).await;
    let mut dave_ws = home(dave).connect(dave).await;
    assert!(locate(&mut carol_ws, PARIS).await.is_empty());
    assert_eq!(locate(&mut dave_ws, north(300.0)).await, [carol]);
    expect_location(&mut carol_ws, dave, north(300.0).0).await;

    let mut n3 = NodeProcess::start("n3", &redis, &dir);
    n3.wait_ready().await;
    let (code, reason) = closed_with(&mut carol_ws, Duration::from_secs(5)).await;
    assert_eq!(u16::from(code), 4001);
    assert_eq!(reason, n3.ws_url());
    // Carol reconnects where she was told; her snapshot has Dave, and Dave hears her move.
    let mut carol_ws = connect_to(&reason, carol).await;
    assert_eq!(locate(&mut carol_ws, north(50.0)).await, [dave]);
    expect_location(&mut dave_ws, carol, north(50.0).0).await;
    send_location(&mut dave_ws, north(250.0)).await;
    expect_location(&mut carol_ws, dave, north(250.0).0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_node_its_users_move_and_nothing_is_lost() {
    let ids = ["n1", "n2"];
    let erin = user_owned_by(&ids, "n1", 1);
    let frank = user_owned_by(&ids, "n2", 1);
    let dir = workdir("drain", &[(erin, frank)]);
    let redis = TestRedis::start();
    let redis = single(&redis);
    let mut n1 = NodeProcess::start("n1", &redis, &dir);
    let mut n2 = NodeProcess::start("n2", &redis, &dir);
    n1.wait_ready().await;
    n2.wait_ready().await;
    n2.wait_owner(erin, "n1", Duration::from_secs(5)).await;
    n1.wait_owner(frank, "n2", Duration::from_secs(5)).await;
    let mut erin_ws = n1.connect(erin).await;
    let mut frank_ws = n2.connect(frank).await;
    assert!(locate(&mut erin_ws, PARIS).await.is_empty());
    assert_eq!(locate(&mut frank_ws, north(200.0)).await, [erin]);
    expect_location(&mut erin_ws, frank, north(200.0).0).await;

    let started = Instant::now();
    n1.signal("-TERM");
    let (code, reason) = closed_with(&mut erin_ws, Duration::from_secs(5)).await;
    assert_eq!(u16::from(code), 1012);
    assert_eq!(reason, n2.ws_url());
    assert!(
        n1.exited(Duration::from_secs(20)).await.success(),
        "{}",
        n1.log_text()
    );
    let drained = started.elapsed();
    // Frank moves while Erin is between nodes: her snapshot on n2 has his latest position.
    send_location(&mut frank_ws, north(150.0)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // n2 already knows n1 left: no redirect back.
    let mut erin_ws = connect_to(&reason, erin).await;
    send_location(&mut erin_ws, north(10.0)).await;
    let snapshot = recv(&mut erin_ws).await;
    assert_eq!(snapshot["type"], "nearby_friends", "{snapshot}");
    assert_eq!(snapshot["friends"][0]["user_id"], frank, "{snapshot}");
    assert!((snapshot["friends"][0]["latitude"].as_f64().unwrap() - north(150.0).0).abs() < 1e-9);
    expect_location(&mut frank_ws, erin, north(10.0).0).await;
    send_location(&mut frank_ws, north(120.0)).await;
    expect_location(&mut erin_ws, frank, north(120.0).0).await;
    assert!(drained < Duration::from_secs(15), "drain took {drained:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_users_rehome_within_the_heartbeat_ttl() {
    let ids = ["n1", "n2"];
    let grace = user_owned_by(&ids, "n1", 1);
    let heidi = user_owned_by(&ids, "n2", 1);
    let dir = workdir("kill", &[(grace, heidi)]);
    let redis = TestRedis::start();
    let redis = single(&redis);
    let mut n1 = NodeProcess::start("n1", &redis, &dir);
    let mut n2 = NodeProcess::start("n2", &redis, &dir);
    n1.wait_ready().await;
    n2.wait_ready().await;
    n2.wait_owner(grace, "n1", Duration::from_secs(5)).await;
    let mut grace_ws = n1.connect(grace).await;
    let mut heidi_ws = n2.connect(heidi).await;
    assert!(locate(&mut grace_ws, PARIS).await.is_empty());
    assert_eq!(locate(&mut heidi_ws, north(400.0)).await, [grace]);

    n1.signal("-KILL");
    let _ = n1.exited(Duration::from_secs(5)).await;
    drop(grace_ws);
    // Grace's app asks the survivor where to go until it names itself.
    let rehomed = n2
        .wait_owner(grace, "n2", Duration::from_millis(NODE_TTL_MS + 3_000))
        .await;
    let mut grace_ws = n2.connect(grace).await;
    assert_eq!(locate(&mut grace_ws, north(20.0)).await, [heidi]);
    expect_location(&mut heidi_ws, grace, north(20.0).0).await;
    assert!(
        rehomed <= Duration::from_millis(NODE_TTL_MS + 1_000),
        "re-homed after {rehomed:?}"
    );
}

/// Users `count` owned one by each of `nodes`, whose channels live on distinct shards of
/// `cluster` where the shards allow it.
fn spread_users(cluster: &TestRedisCluster, nodes: &[&str]) -> Vec<u64> {
    let mut chosen: Vec<u64> = Vec::new();
    let mut shards: Vec<u16> = Vec::new();
    for node in nodes {
        let user = (1..)
            .find(|&user| {
                owner_among(nodes, user) == *node
                    && !chosen.contains(&user)
                    && !shards.contains(&cluster.owner_of(cluster.slot(&format!("{{{user}}}"))))
            })
            .unwrap();
        shards.push(cluster.owner_of(cluster.slot(&format!("{{{user}}}"))));
        chosen.push(user);
    }
    chosen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_friends_on_three_nodes_and_three_shards_meet() {
    let cluster = tokio::task::block_in_place(|| TestRedisCluster::start(3));
    let ids = ["n1", "n2", "n3"];
    let users = tokio::task::block_in_place(|| spread_users(&cluster, &ids));
    let (u1, u2, u3) = (users[0], users[1], users[2]);
    let dir = workdir("sharded", &[(u1, u2), (u1, u3), (u2, u3)]);
    let redis = sharded(&cluster);
    let mut nodes = Vec::new();
    for id in ids {
        nodes.push(NodeProcess::start(id, &redis, &dir));
    }
    for node in &mut nodes {
        node.wait_ready().await;
    }
    for node in &nodes {
        for (user, owner) in [(u1, "n1"), (u2, "n2"), (u3, "n3")] {
            node.wait_owner(user, owner, Duration::from_secs(5)).await;
        }
    }
    let location = redirected(&nodes[0].ws_url(), u3).await;
    assert!(location.starts_with(&nodes[2].ws_url()), "{location}");
    let mut ws1 = nodes[0].connect(u1).await;
    let mut ws2 = nodes[1].connect(u2).await;
    let mut ws3 = connect_to(&nodes[2].ws_url(), u3).await;
    assert!(locate(&mut ws1, PARIS).await.is_empty());
    assert_eq!(locate(&mut ws2, north(100.0)).await, [u1]);
    // One snapshot reads cached locations living on two different shards.
    assert_eq!(locate(&mut ws3, north(200.0)).await, [u2, u1]);
    send_location(&mut ws1, north(50.0)).await;
    expect_location(&mut ws2, u1, north(50.0).0).await;
    expect_location(&mut ws3, u1, north(50.0).0).await;
    send_location(&mut ws3, north(60.0)).await;
    expect_location(&mut ws1, u3, north(60.0).0).await;
    expect_location(&mut ws2, u3, north(60.0).0).await;
    // Sharded pub/sub: each channel is subscribed on its own shard, once per node.
    let channel = format!("nearby:loc:{{{u1}}}");
    let shard = cluster.owner_of(cluster.slot(&channel));
    let numsub = cluster.cli(shard, &["PUBSUB", "SHARDNUMSUB", &channel]);
    assert_eq!(
        numsub.lines().collect::<Vec<_>>(),
        [channel.as_str(), "2"],
        "{numsub}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_subscription_follows_its_slot_to_another_shard() {
    let cluster = tokio::task::block_in_place(|| TestRedisCluster::start(3));
    let ids = ["n1", "n2"];
    let users = tokio::task::block_in_place(|| spread_users(&cluster, &ids));
    let (mover, watcher) = (users[0], users[1]);
    let dir = workdir("slot-move", &[(mover, watcher)]);
    let redis = sharded(&cluster);
    let mut n1 = NodeProcess::start("n1", &redis, &dir);
    let mut n2 = NodeProcess::start("n2", &redis, &dir);
    n1.wait_ready().await;
    n2.wait_ready().await;
    n1.wait_owner(watcher, "n2", Duration::from_secs(5)).await;
    n2.wait_owner(mover, "n1", Duration::from_secs(5)).await;
    let mut mover_ws = n1.connect(mover).await;
    let mut watcher_ws = n2.connect(watcher).await;
    assert!(locate(&mut mover_ws, PARIS).await.is_empty());
    assert_eq!(locate(&mut watcher_ws, north(100.0)).await, [mover]);

    // Move the slot of the mover's channel (and cached location) to another shard.
    let channel = format!("nearby:loc:{{{mover}}}");
    let slot = cluster.slot(&channel);
    let from = cluster.owner_of(slot);
    let to = *cluster.ports().iter().find(|&&port| port != from).unwrap();
    tokio::task::block_in_place(|| cluster.move_slot(slot, to));
    assert_eq!(cluster.owner_of(slot), to);
    // The watcher's node subscribes again on the new shard, and updates flow through it.
    let started = Instant::now();
    loop {
        let numsub = cluster.cli(to, &["PUBSUB", "SHARDNUMSUB", &channel]);
        if numsub.lines().nth(1) == Some("1") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no subscription on the new shard: {numsub}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    send_location(&mut mover_ws, north(30.0)).await;
    expect_location(&mut watcher_ws, mover, north(30.0).0).await;
    send_location(&mut watcher_ws, north(90.0)).await;
    expect_location(&mut mover_ws, watcher, north(90.0).0).await;
    // A late joiner's snapshot reads the cached location from its new shard.
    drop(watcher_ws);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut watcher_ws = n2.connect(watcher).await;
    send_location(&mut watcher_ws, north(80.0)).await;
    let snapshot = recv(&mut watcher_ws).await;
    assert_eq!(snapshot["friends"][0]["user_id"], mover, "{snapshot}");
    assert!((snapshot["friends"][0]["latitude"].as_f64().unwrap() - north(30.0).0).abs() < 1e-9);
}

/// Whether a `friend_location` of `user` at `latitude` arrives within `limit`.
async fn location_within(ws: &mut Ws, user: u64, latitude: f64, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return false,
            Ok(Some(Ok(Message::Text(text)))) => {
                let message: Value = serde_json::from_str(text.as_str()).unwrap();
                if message["type"] == "friend_location"
                    && message["user_id"] == user
                    && (message["latitude"].as_f64().unwrap() - latitude).abs() < 1e-9
                {
                    return true;
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("socket ended: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_pub_sub_survives_a_master_failing_over_to_its_replica() {
    let mut cluster = tokio::task::block_in_place(|| TestRedisCluster::start_with_replicas(3, 1));
    let ids = ["n1", "n2"];
    let users = tokio::task::block_in_place(|| spread_users(&cluster, &ids));
    let (mover, watcher) = (users[0], users[1]);
    let dir = workdir("failover", &[(mover, watcher)]);
    let redis = sharded(&cluster);
    let mut n1 = NodeProcess::start("n1", &redis, &dir);
    let mut n2 = NodeProcess::start("n2", &redis, &dir);
    n1.wait_ready().await;
    n2.wait_ready().await;
    n1.wait_owner(watcher, "n2", Duration::from_secs(5)).await;
    n2.wait_owner(mover, "n1", Duration::from_secs(5)).await;
    let mut mover_ws = n1.connect(mover).await;
    let mut watcher_ws = n2.connect(watcher).await;
    assert!(locate(&mut mover_ws, PARIS).await.is_empty());
    assert_eq!(locate(&mut watcher_ws, north(100.0)).await, [mover]);

    // Kill the master of the mover's channel; its replica takes over.
    let channel = format!("nearby:loc:{{{mover}}}");
    let slot = cluster.slot(&channel);
    let master = cluster.owner_of(slot);
    let killed_at = Instant::now();
    tokio::task::block_in_place(|| cluster.kill(master));
    let promoted =
        tokio::task::block_in_place(|| cluster.wait_healthy(slot, master, Duration::from_secs(20)));
    let failed_over = killed_at.elapsed();
    // The gateway resubscribes on the promoted replica and updates flow again: the app
    // keeps sending (an update during the outage is answered with `unavailable`).
    let mut delivered = None;
    for step in 0..20 {
        let at = north(30.0 + f64::from(step));
        send_location(&mut mover_ws, at).await;
        if location_within(&mut watcher_ws, mover, at.0, Duration::from_millis(1_100)).await {
            delivered = Some((killed_at.elapsed(), at));
            break;
        }
    }
    let (delivered, last_at) = delivered.unwrap_or_else(|| {
        panic!(
            "updates never flowed again after the failover (failed over in {failed_over:?}); \
             subscribers on the new master: {}; n1: {}; n2: {}",
            cluster.cli(promoted, &["PUBSUB", "SHARDNUMSUB", &channel]),
            n1.log_text(),
            n2.log_text()
        )
    });
    let numsub = cluster.cli(promoted, &["PUBSUB", "SHARDNUMSUB", &channel]);
    assert_eq!(numsub.lines().nth(1), Some("1"), "{numsub}");
    assert!(
        delivered < failed_over + Duration::from_secs(5),
        "failover took {failed_over:?}, updates resumed after {delivered:?}"
    );
    // A late joiner's snapshot reads the mover's cached location from the promoted replica.
    drop(watcher_ws);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut watcher_ws = n2.connect(watcher).await;
    send_location(&mut watcher_ws, north(80.0)).await;
    let snapshot = recv(&mut watcher_ws).await;
    assert_eq!(snapshot["friends"][0]["user_id"], mover, "{snapshot}");
    assert!((snapshot["friends"][0]["latitude"].as_f64().unwrap() - last_at.0).abs() < 1e-9);
}
