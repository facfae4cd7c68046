//! A throwaway PostgreSQL 15 + PostGIS server for one test: its own data directory under the
//! system temp dir, listening on 127.0.0.1 on a free port with its unix socket in that
//! directory; stopped and deleted on drop.
//!
//! The binaries are looked up under /usr/lib/postgresql/15/bin (override with
//! `NEARBY_TEST_PG_BIN`). When they are missing the test fails, saying how to install them:
//! the database tests are part of the suite, not optional.
//!
//! `initdb` refuses to run as root, so when the tests run as root every server command runs
//! as the `postgres` user (`runuser -u postgres --`), which owns the directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";
const INSTALL_HINT: &str =
    "install them with: apt-get install -y postgresql-15 postgresql-15-postgis-3";

/// A running (or stopped) throwaway server.
pub struct TestPostgres {
    root: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres_user: bool,
    running: bool,
}

impl TestPostgres {
    /// Creates a cluster, starts it and creates the database `nearby`.
    ///
    /// # Panics
    /// When the binaries or PostGIS are missing, or the server does not start.
    pub fn start() -> Self {
        let bin = PathBuf::from(
            std::env::var("NEARBY_TEST_PG_BIN").unwrap_or_else(|_| DEFAULT_BIN.to_owned()),
        );
        for tool in ["initdb", "pg_ctl", "createdb", "pg_config"] {
            assert!(
                bin.join(tool).is_file(),
                "PostgreSQL 15 is required by the database tests but {} is missing; {INSTALL_HINT}",
                bin.join(tool).display()
            );
        }
        let share = String::from_utf8_lossy(
            &run(Command::new(bin.join("pg_config")).arg("--sharedir")).stdout,
        )
        .trim()
        .to_owned();
        let postgis = Path::new(&share).join("extension/postgis.control");
        assert!(
            postgis.is_file(),
            "PostGIS for PostgreSQL 15 is required by the database tests but {} is missing; {INSTALL_HINT}",
            postgis.display()
        );

        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "nearby-pg-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create the server's temp dir");
        let as_postgres_user = is_root();
        let mut server = TestPostgres {
            root,
            bin,
            port: 0,
            as_postgres_user,
            running: false,
        };
        if as_postgres_user {
            run(Command::new("chown").arg("postgres:").arg(&server.root));
        }
        let data = server.data_dir();
        let mut initdb = server.command("initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        run(&mut initdb);

        // Another process may take the free port between the probe and the server's bind:
        // try a few.
        for attempt in 1..=3 {
            server.port = free_port();
            if server.try_start() {
                break;
            }
            assert!(attempt < 3, "PostgreSQL did not start:\n{}", server.log());
        }
        let mut createdb = server.command("createdb");
        createdb.args([
            "-h",
            "127.0.0.1",
            "-p",
            &server.port.to_string(),
            "-U",
            "postgres",
            "nearby",
        ]);
        run(&mut createdb);
        server
    }

    /// `postgres://postgres@127.0.0.1:PORT/nearby`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/nearby", self.port)
    }

    /// Stops the server (fast shutdown: connections are closed), keeping its data.
    pub fn stop(&mut self) {
        if self.running {
            let data = self.data_dir();
            let mut stop = self.command("pg_ctl");
            stop.arg("-D").arg(&data).args(["-m", "fast", "-w", "stop"]);
            run(&mut stop);
            self.running = false;
        }
    }

    /// Starts the stopped server again on the same port.
    ///
    /// # Panics
    /// If it does not start (for instance, another process took the port meanwhile).
    pub fn restart(&mut self) {
        assert!(
            self.try_start(),
            "PostgreSQL did not restart:\n{}",
            self.log()
        );
    }

    fn try_start(&mut self) -> bool {
        let data = self.data_dir();
        let log = self.root.join("server.log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c shared_buffers=32MB -c max_connections=60",
            self.port,
            self.root.display()
        );
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        self.running = start.output().is_ok_and(|out| out.status.success());
        self.running
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
    }

    /// A server command, as the `postgres` user when the tests run as root.
    fn command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if self.running {
            let data = self.data_dir();
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port on 127.0.0.1")
}
