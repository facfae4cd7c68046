//! A throwaway Redis Cluster for one test: N masters (no replicas) on loopback, free ports,
//! one temp dir, no persistence, made with `redis-cli --cluster create`; killed and deleted
//! on drop. Needs `redis-server` and `redis-cli` (Debian's `redis-server` package, 7.0 or
//! later for sharded pub/sub).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A running cluster.
pub struct TestRedisCluster {
    children: Vec<Child>,
    ports: Vec<u16>,
    dir: PathBuf,
}

fn free_port() -> u16 {
    // Cluster nodes also listen on port + 10000 (the cluster bus): pick ports whose bus
    // port is free too.
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free loopback port");
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|err| {
        panic!("cannot run {command:?}: {err}; apt-get install -y redis-server")
    });
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

impl TestRedisCluster {
    /// Starts `masters` nodes and joins them into a cluster covering every slot.
    ///
    /// # Panics
    /// When the servers or the cluster do not come up.
    pub fn start(masters: usize) -> Self {
        Self::start_with_replicas(masters, 0)
    }

    /// Starts `masters` masters with `replicas` replicas each.
    ///
    /// # Panics
    /// When the servers or the cluster do not come up.
    pub fn start_with_replicas(masters: usize, replicas: usize) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "nearby-redis-cluster-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the cluster's temp dir");
        let mut cluster = TestRedisCluster {
            children: Vec::new(),
            ports: Vec::new(),
            dir,
        };
        for _ in 0..masters * (1 + replicas) {
            let port = free_port();
            let node_dir = cluster.dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).expect("create a node dir");
            let child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", "1000"])
                .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                .arg("--dir")
                .arg(&node_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|err| {
                    panic!("the Redis Cluster tests need redis-server ({err}); apt-get install -y redis-server")
                });
            cluster.children.push(child);
            cluster.ports.push(port);
        }
        for &port in &cluster.ports {
            cluster.wait_for(port, "PONG", &["PING"]);
        }
        let addresses: Vec<String> = cluster
            .ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        run(Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]));
        for &port in &cluster.ports {
            cluster.wait_for(port, "cluster_state:ok", &["CLUSTER", "INFO"]);
        }
        if replicas > 0 {
            // Replicas must have synced before a failover can promote them.
            for &port in &cluster.ports {
                let role = cluster.cli(port, &["ROLE"]);
                if role.starts_with("slave") {
                    cluster.wait_for(port, "master_link_status:up", &["INFO", "replication"]);
                }
            }
        }
        cluster
    }

    /// Kills the server on `port` (SIGKILL), as if its machine died.
    #[allow(dead_code)] // used by some test files only
    pub fn kill(&mut self, port: u16) {
        if let Some(index) = self.ports.iter().position(|&p| p == port) {
            let _ = self.children[index].kill();
            let _ = self.children[index].wait();
        }
    }

    /// Waits until a live node reports the cluster healthy again, and returns the port of
    /// the master now serving `slot`.
    #[allow(dead_code)] // used by some test files only
    pub fn wait_healthy(&self, slot: u16, dead: u16, limit: Duration) -> u16 {
        let live = self
            .ports
            .iter()
            .copied()
            .find(|&p| p != dead)
            .expect("a live node");
        let deadline = Instant::now() + limit;
        loop {
            let info = self.cli(live, &["CLUSTER", "INFO"]);
            if info.contains("cluster_state:ok")
                && let Some(owner) = self.serving(live, slot)
                && owner != dead
            {
                return owner;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not fail over: {info}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for(&self, port: u16, expected: &str, command: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(output) = Command::new("redis-cli")
                .args(["-p", &port.to_string()])
                .args(command)
                .output()
                && String::from_utf8_lossy(&output.stdout).contains(expected)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis node {port} never answered {expected} to {command:?}");
    }

    /// `host:port` of every master, comma-separated (the `--redis-cluster` value).
    pub fn seeds(&self) -> String {
        self.ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `redis://127.0.0.1:PORT` of every master.
    #[allow(dead_code)] // used by some test files only
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// Runs `redis-cli -p PORT args...` and returns its output.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let output = run(Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The slot of a key or channel name.
    pub fn slot(&self, name: &str) -> u16 {
        self.cli(self.ports[0], &["CLUSTER", "KEYSLOT", name])
            .parse()
            .expect("a slot number")
    }

    /// The port of the master serving `slot`.
    pub fn owner_of(&self, slot: u16) -> u16 {
        self.serving(self.ports[0], slot)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// The port of the healthy master serving `slot`, as the node on `port` sees it.
    pub fn serving(&self, port: u16, slot: u16) -> Option<u16> {
        let nodes = self.cli(port, &["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(2).is_some_and(|flags| flags.contains("fail")) {
                continue;
            }
            let Some(address) = fields.get(1) else {
                continue;
            };
            let port: u16 = address
                .split(['@', ':'])
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            for range in fields.iter().skip(8) {
                let (low, high) = match range.split_once('-') {
                    Some((low, high)) => (low.parse().unwrap_or(1), high.parse().unwrap_or(0)),
                    None => {
                        let single = range.parse().unwrap_or(u16::MAX);
                        (single, single)
                    }
                };
                if (low..=high).contains(&slot) {
                    return Some(port);
                }
            }
        }
        None
    }

    /// Moves `slot` (and its keys) to the master on port `to`, the way `redis-cli --cluster
    /// reshard` does: IMPORTING / MIGRATING, MIGRATE the keys, then SETSLOT NODE everywhere.
    pub fn move_slot(&self, slot: u16, to: u16) {
        let from = self.owner_of(slot);
        assert_ne!(from, to, "slot {slot} is already on {to}");
        let from_id = self.cli(from, &["CLUSTER", "MYID"]);
        let to_id = self.cli(to, &["CLUSTER", "MYID"]);
        let slot_text = slot.to_string();
        self.cli(
            to,
            &["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &from_id],
        );
        self.cli(
            from,
            &["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &to_id],
        );
        loop {
            let keys = self.cli(from, &["CLUSTER", "GETKEYSINSLOT", &slot_text, "100"]);
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let to_text = to.to_string();
            let mut args = vec!["MIGRATE", "127.0.0.1", &to_text, "", "0", "5000", "KEYS"];
            args.extend(keys);
            self.cli(from, &args);
        }
        for &port in &[to, from] {
            self.cli(port, &["CLUSTER", "SETSLOT", &slot_text, "NODE", &to_id]);
        }
        for &port in &self.ports {
            if port != to && port != from {
                self.cli(port, &["CLUSTER", "SETSLOT", &slot_text, "NODE", &to_id]);
            }
        }
    }

    /// The masters' ports.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }
}

impl Drop for TestRedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
