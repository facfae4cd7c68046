//! The `--friends` seed file, with real `nearby serve` processes.
//!
//! Without a database, each node holds friendships in memory: nodes sharing a Redis would
//! diverge as soon as one of them changed a friendship (an unfriend on one node unknown to the
//! other, which would keep showing the friend). So such nodes serve the file read-only (409
//! `read_only`), and a node with a different file refuses to join them. With PostgreSQL, the
//! file is applied once: a friendship ended through the API is not re-created at the next
//! start, while a pair new to the file is.

#![allow(clippy::unwrap_used)]

#[path = "support/node.rs"]
mod node_support;
#[path = "support/postgres.rs"]
#[allow(dead_code)] // stop and restart serve other test files
mod postgres_support;
#[path = "support/redis.rs"]
mod redis_support;

use futures_util::{SinkExt, StreamExt};
use nearby_ws_gateway::membership::{Member, Members};
use node_support::{NodeProcess, SECRET, token};
use postgres_support::TestPostgres;
use redis_support::TestRedis;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

/// A scratch directory for one test (nodes' logs, friends files), removed unless it failed.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("nearby-seeding-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes a friends file `name` with `pairs`; its path as a flag value.
    fn friends_file(&self, name: &str, pairs: &[(u64, u64)]) -> String {
        let mut text = String::from("user_id,friend_id\n");
        for (a, b) in pairs {
            text.push_str(&format!("{a},{b}\n"));
        }
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Kept when the test fails: the nodes' logs are there.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn flags(pairs: &[&str]) -> Vec<String> {
    pairs.iter().map(|flag| (*flag).to_owned()).collect()
}

async fn friends_of(node: &NodeProcess, user: u64) -> Value {
    let (status, body) = node.call("GET", "/v1/me/friends", Some(user), None).await;
    assert_eq!(
        status,
        200,
        "GET /v1/me/friends as {user} on {}: {body}",
        node.id()
    );
    body["friends"].clone()
}

/// Asserts a 409 `read_only` whose message says why (the nodes share Redis without a
/// database) and what to do (set DATABASE_URL).
fn assert_read_only(status: u16, body: &Value, what: &str) {
    assert_eq!(status, 409, "{what}: {body}");
    assert_eq!(body["error"]["code"], "read_only", "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("read-only") && message.contains("DATABASE_URL"),
        "{what}: the message should say why: {body}"
    );
}

/// Runs `nearby serve` with `args` until it exits (at most 30 s): its exit code and stderr.
/// Killed, and the test failed, if it is still running then.
fn run_to_exit(args: &[String], log: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nearby"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--secret", SECRET])
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start nearby");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the node was expected to refuse to start but still runs after 30 s: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.code(),
        std::fs::read_to_string(log).unwrap_or_default(),
    )
}

#[tokio::test]
async fn nodes_sharing_redis_without_a_database_serve_the_seed_read_only() {
    let scratch = Scratch::new("read-only");
    let redis = TestRedis::start();
    let file = scratch.friends_file("friends.csv", &[(1, 2)]);
    let args = flags(&["--redis-url", &redis.url(), "--friends", &file]);
    let mut n1 = NodeProcess::start("n1", &args, &scratch.0);
    n1.wait_ready().await;
    let mut n2 = NodeProcess::start("n2", &args, &scratch.0);
    n2.wait_ready().await;

    // An unfriend through either node, by either friend, is refused...
    for (node, user, other) in [(&n1, 1, 2), (&n2, 1, 2), (&n1, 2, 1), (&n2, 2, 1)] {
        let (status, body) = node
            .call(
                "DELETE",
                &format!("/v1/me/friends/{other}"),
                Some(user),
                None,
            )
            .await;
        assert_read_only(
            status,
            &body,
            &format!("DELETE /v1/me/friends/{other} as {user} on {}", node.id()),
        );
    }
    // ...and so is ghost mode.
    for node in [&n1, &n2] {
        let (status, body) = node
            .call(
                "PUT",
                "/v1/me/sharing",
                Some(1),
                Some(&json!({"enabled": false})),
            )
            .await;
        assert_read_only(
            status,
            &body,
            &format!("PUT /v1/me/sharing on {}", node.id()),
        );
        let (status, body) = node.call("GET", "/v1/me/sharing", Some(1), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["enabled"], true, "{body}");
    }
    // Both nodes still agree on the friendship.
    for node in [&n1, &n2] {
        assert_eq!(friends_of(node, 1).await, json!([2]), "on {}", node.id());
        assert_eq!(friends_of(node, 2).await, json!([1]), "on {}", node.id());
    }

    // A node with another file would hold friendships the others do not: it refuses to start.
    let other = scratch.friends_file("other.csv", &[(1, 2), (1, 3)]);
    let (code, stderr) = run_to_exit(
        &flags(&[
            "--redis-url",
            &redis.url(),
            "--friends",
            &other,
            "--node-id",
            "n3",
        ]),
        &scratch.0.join("n3.log"),
    );
    assert!(
        code.is_some_and(|code| code != 0),
        "exit code {code:?}: {stderr}"
    );
    assert!(
        stderr.contains("different --friends file") && stderr.contains("DATABASE_URL"),
        "stderr should explain the refusal: {stderr}"
    );
    // The two others are unaffected.
    assert!(n1.is_running() && n2.is_running());
    assert_eq!(friends_of(&n1, 1).await, json!([2]));
}

#[tokio::test]
async fn with_a_database_the_seed_file_is_applied_once() {
    let scratch = Scratch::new("once");
    let postgres = TestPostgres::start();
    let file = scratch.friends_file("friends.csv", &[(1, 2)]);
    let args = flags(&["--database-url", &postgres.url(), "--friends", &file]);
    let mut node = NodeProcess::start("first", &args, &scratch.0);
    node.wait_ready().await;
    assert_eq!(friends_of(&node, 1).await, json!([2]), "seeded");
    let (status, body) = node.call("DELETE", "/v1/me/friends/2", Some(1), None).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(friends_of(&node, 1).await, json!([]));
    drop(node);

    // The same file at the next start, with a new pair: the ended friendship stays ended, the
    // new pair is applied.
    scratch.friends_file("friends.csv", &[(1, 2), (3, 4)]);
    let mut node = NodeProcess::start("second", &args, &scratch.0);
    node.wait_ready().await;
    assert_eq!(
        friends_of(&node, 1).await,
        json!([]),
        "user 1 after the restart"
    );
    assert_eq!(
        friends_of(&node, 2).await,
        json!([]),
        "user 2 after the restart"
    );
    assert_eq!(friends_of(&node, 3).await, json!([4]), "the new pair");
    assert_eq!(friends_of(&node, 4).await, json!([3]), "the new pair");
}

#[tokio::test]
async fn an_upgraded_database_does_not_resurrect_friendships_ended_before_the_upgrade() {
    let scratch = Scratch::new("legacy");
    let postgres = TestPostgres::start();
    let file = scratch.friends_file("friends.csv", &[(1, 2)]);
    let args = flags(&["--database-url", &postgres.url(), "--friends", &file]);
    let mut node = NodeProcess::start("before", &args, &scratch.0);
    node.wait_ready().await;
    let (status, body) = node.call("DELETE", "/v1/me/friends/2", Some(1), None).await;
    assert_eq!(status, 204, "{body}");
    drop(node);
    // What a database seeded by a version that did not record seeded pairs looks like: no
    // record of (1, 2) having been applied, and (as the migration sets for a database that
    // holds friendships) the legacy marker.
    let pool = sqlx::PgPool::connect(&postgres.url()).await.unwrap();
    sqlx::query("DELETE FROM friend_seeds")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO friend_seeds_legacy (singleton) VALUES (true)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let mut node = NodeProcess::start("after", &args, &scratch.0);
    node.wait_ready().await;
    assert_eq!(
        friends_of(&node, 1).await,
        json!([]),
        "ended before the upgrade"
    );
    drop(node);
    // From then on the file's pairs are recorded: a restart still does not re-create (1, 2),
    // and a pair added later is applied.
    scratch.friends_file("friends.csv", &[(1, 2), (5, 6)]);
    let mut node = NodeProcess::start("later", &args, &scratch.0);
    node.wait_ready().await;
    assert_eq!(friends_of(&node, 1).await, json!([]));
    assert_eq!(friends_of(&node, 5).await, json!([6]));
}

/// The first user id that rendezvous hashing over `nodes` gives to `node`.
fn user_owned_by(node: &str, nodes: &[&str]) -> u64 {
    let members = Members::new(
        nodes
            .iter()
            .map(|id| Member::new(*id, "http://x"))
            .collect(),
    );
    (1..)
        .find(|&user| members.owner(user).unwrap().id() == node)
        .unwrap()
}

#[tokio::test]
async fn a_node_refused_for_its_seed_file_never_joins_the_others() {
    let scratch = Scratch::new("refused");
    let redis = TestRedis::start();
    let file = scratch.friends_file("friends.csv", &[(1, 2)]);
    let args = flags(&["--redis-url", &redis.url(), "--friends", &file]);
    let mut n1 = NodeProcess::start("n1", &args, &scratch.0);
    n1.wait_ready().await;
    let mut n2 = NodeProcess::start("n2", &args, &scratch.0);
    n2.wait_ready().await;
    // A user the refused node would own if it counted as a member, with a session on the node
    // that owns them meanwhile.
    let user = user_owned_by("n3", &["n1", "n2", "n3"]);
    let owner = Members::new(vec![Member::new("n1", "x"), Member::new("n2", "x")])
        .owner(user)
        .unwrap()
        .id()
        .to_owned();
    let owner = if owner == "n1" { &n1 } else { &n2 };
    n1.wait_owner(user, owner.id(), Duration::from_secs(10))
        .await;
    n2.wait_owner(user, owner.id(), Duration::from_secs(10))
        .await;
    let (mut ws, _) = connect_async(format!("{}?token={}", owner.ws_url(), token(user)))
        .await
        .unwrap();
    ws.send(Message::text(
        r#"{"type":"location","latitude":48.85,"longitude":2.35}"#,
    ))
    .await
    .unwrap();
    let snapshot = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    assert!(
        matches!(&snapshot, Ok(Some(Ok(Message::Text(_))))),
        "{snapshot:?}"
    );

    let other = scratch.friends_file("other.csv", &[(1, 3)]);
    let (code, stderr) = run_to_exit(
        &flags(&[
            "--redis-url",
            &redis.url(),
            "--friends",
            &other,
            "--node-id",
            "n3",
        ]),
        &scratch.0.join("n3.log"),
    );
    assert!(code.is_some_and(|code| code != 0), "{code:?}: {stderr}");
    // For longer than a heartbeat TTL (5 s): the user is never sent to the refused node, and
    // their session is not moved there (4001).
    let watch_until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < watch_until {
        for node in [&n1, &n2] {
            let (status, body) = node.call("GET", "/v1/gateway", Some(user), None).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(
                body["node_id"],
                owner.id(),
                "{} sends user {user} to the refused node",
                node.id()
            );
        }
        if let Ok(message) = tokio::time::timeout(Duration::from_millis(100), ws.next()).await {
            panic!("the session was told {message:?}");
        }
    }
}
