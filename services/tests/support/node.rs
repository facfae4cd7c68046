//! A `nearby serve` process for one test (the binary Cargo built for the test), on a free
//! loopback port, its log (stderr) in a file; killed on drop. Adapted from `NodeProcess` in
//! `cluster.rs`, with any extra flags (Redis, database, rates) given by the caller and HTTP
//! calls of any method.

use nearby_services::auth::{Secret, unix_now};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The signing secret every node of a test shares.
pub const SECRET: &str = "node-test-secret-0123456789abcdef";

/// A bearer token for `user`, valid for an hour.
///
/// # Panics
/// Never: the secret is long enough.
pub fn token(user: u64) -> String {
    Secret::new(SECRET.as_bytes().to_vec())
        .expect("a valid secret")
        .mint(user, false, 3_600, unix_now())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// A running `nearby serve`.
pub struct NodeProcess {
    id: String,
    port: u16,
    child: Child,
    log: PathBuf,
}

#[allow(dead_code)] // each test file uses part of it
impl NodeProcess {
    /// Starts node `id` (`--node-id`, `--advertise-url` its own address) with `args` added
    /// (`--redis-url ...`, `--database-url ...`, ...); its log goes to `dir/<id>.log`.
    ///
    /// # Panics
    /// When the binary cannot be started.
    pub fn start(id: &str, args: &[String], dir: &Path) -> NodeProcess {
        let port = free_port();
        let log = dir.join(format!("{id}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_nearby"))
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--secret", SECRET])
            .args(["--node-id", id])
            .args(["--advertise-url", &format!("http://127.0.0.1:{port}")])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create the node's log"))
            .spawn()
            .expect("start nearby");
        NodeProcess {
            id: id.to_owned(),
            port,
            child,
            log,
        }
    }

    /// The node's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `ws://127.0.0.1:PORT/v1/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/v1/ws", self.port)
    }

    /// One HTTP/1.1 request on a fresh connection, with `user`'s token (none for `None`) and
    /// a JSON body: the status (0 when the connection fails) and the body as JSON (`Null`
    /// when it is not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        user: Option<u64>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let (status, text) = self.call_text(method, path, user, body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Like [`NodeProcess::call`], the body as text.
    pub async fn call_text(
        &self,
        method: &str,
        path: &str,
        user: Option<u64>,
        body: Option<&Value>,
    ) -> (u16, String) {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)).await else {
            return (0, String::new());
        };
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(user) = user {
            request.push_str(&format!("Authorization: Bearer {}\r\n", token(user)));
        }
        if !body.is_empty() {
            request.push_str("Content-Type: application/json\r\n");
        }
        request.push_str("\r\n");
        request.push_str(&body);
        if stream.write_all(request.as_bytes()).await.is_err() {
            return (0, String::new());
        }
        let mut response = Vec::new();
        if stream.read_to_end(&mut response).await.is_err() || response.len() < 12 {
            return (0, String::new());
        }
        let text = String::from_utf8_lossy(&response);
        let status = text[9..12].parse().unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        (status, body.to_owned())
    }

    /// Waits until `/readyz` answers 200 (the catalog is loaded and the bus is up).
    ///
    /// # Panics
    /// When the process exits or is not ready within 30 s (with its log).
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("node {} exited ({status}): {}", self.id, self.log_text());
            }
            if self.call("GET", "/readyz", None, None).await.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node {} not ready: {}", self.id, self.log_text());
    }

    /// Waits until this node sends `user` to the node `owner` (`GET /v1/gateway`).
    ///
    /// # Panics
    /// When it still names another node after `limit`.
    pub async fn wait_owner(&self, user: u64, owner: &str, limit: Duration) {
        let started = Instant::now();
        loop {
            let (status, body) = self.call("GET", "/v1/gateway", Some(user), None).await;
            assert_eq!(status, 200, "GET /v1/gateway on {}: {body}", self.id);
            if body["node_id"] == owner {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "node {} still sends user {user} to {body}, not {owner}",
                self.id
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
