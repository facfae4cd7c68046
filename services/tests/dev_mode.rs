//! Development mode (no `--secret`): the real `nearby` binary refuses it beyond loopback and
//! refuses a development secret file others could read; the router hides `/v1/dev/token`
//! outside it.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use nearby_services::auth::{Secret, unix_now};
use nearby_services::catalog::Catalog;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tower::ServiceExt;

#[path = "support/app.rs"]
mod app_support;

/// How long the binary gets to refuse (or to say where it listens) before the test gives up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh directory for one test's `XDG_DATA_HOME` and `HOME`, removed on drop, so the
/// binary never reads or creates the real development secret.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "nearby-dev-mode-{name}-{}-{}",
            std::process::id(),
            unix_now()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("home")).unwrap();
        TempDir(dir)
    }

    fn data_home(&self) -> PathBuf {
        self.0.join("data")
    }

    fn dev_secret(&self) -> PathBuf {
        self.data_home().join("nearby").join("dev-secret")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `nearby <args>` with no secret from the environment and its data directory in `dir`.
fn nearby(dir: &TempDir, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_nearby"))
        .args(args)
        .env_remove("NEARBY_SECRET")
        .env_remove("NEARBY_LISTEN")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER")
        .env("XDG_DATA_HOME", dir.data_home())
        .env("HOME", dir.0.join("home"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` to exit; a child still running after [`START_TIMEOUT`] is killed and
/// fails the test with `what`.
fn exit_status_and_stderr(mut child: Child, what: &str) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stderr)
}

#[test]
fn serve_refuses_the_development_secret_beyond_loopback() {
    // The check comes before binding, so addresses this machine does not have are refused
    // the same way.
    for listen in ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"] {
        let dir = TempDir::new("refused");
        let child = nearby(&dir, &["serve", "--listen", listen]);
        let (status, stderr) = exit_status_and_stderr(
            child,
            &format!("nearby served on {listen} with the development secret"),
        );
        assert!(!status.success(), "{listen}: {status}");
        assert!(stderr.contains("NEARBY_SECRET"), "{listen}: {stderr}");
        assert!(
            stderr.contains(&format!("refusing to serve on {listen} ")),
            "{listen}: {stderr}"
        );
        // Refused before the development secret was even read or created.
        assert!(!dir.dev_secret().exists(), "{listen}");
    }
}

#[test]
fn serve_runs_in_development_mode_on_loopback() {
    let dir = TempDir::new("loopback");
    let mut child = nearby(&dir, &["serve", "--listen", "127.0.0.1:0"]);
    let stdout = child.stdout.take().unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let address = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match line_rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(address) = line.strip_prefix("nearby listening on http://") {
                    break address.to_owned();
                }
            }
            Err(err) => {
                let _ = child.kill();
                let (status, stderr) = exit_status_and_stderr(child, "nearby did not stop");
                panic!("nearby did not start on loopback ({err}, {status}): {stderr}");
            }
        }
    };

    // The development token endpoint answers there.
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(
            b"POST /v1/dev/token?user=42 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\
              Connection: close\r\n\r\n",
        )
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains(r#""user_id":42"#), "{reply}");

    // The secret was created where the test pointed the binary, private to its user.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.dev_secret())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_development_secret_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("loose");
    let path = dir.dev_secret();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "0123456789abcdef0123456789abcdef").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    // `token` prints a token locally and may use the development secret, but not this one.
    let child = nearby(&dir, &["token", "--user", "1"]);
    let (status, stderr) = exit_status_and_stderr(child, "nearby token did not exit");
    assert!(!status.success(), "{status}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("not trusted"), "{stderr}");
    assert!(stderr.contains("0644"), "{stderr}");
    // Left as it was: refused, not repaired.
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
}

fn secret() -> Secret {
    Secret::new(b"dev-mode-test-secret".to_vec()).unwrap()
}

async fn send(app: &Router, method: Method, uri: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}

#[tokio::test]
async fn the_dev_token_route_does_not_exist_outside_development_mode() {
    let app = app_support::start(app_support::config(secret(), Catalog::default())).await;
    let state = app.state().clone();
    let app = app.router();

    // With a secret (the default): a 404 like any unknown route, whatever the method, and no
    // `Allow` header hinting at the route.
    for method in [
        Method::POST,
        Method::GET,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
    ] {
        let (status, headers, body) = send(&app, method.clone(), "/v1/dev/token?user=42").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
        assert!(headers.get(header::ALLOW).is_none(), "{method}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{method}");
        assert!(body["error"]["message"].is_string(), "{method}");
    }

    // In development mode: a token for POST, 405 naming POST for the rest.
    state.set_development_mode(true);
    let (status, _, body) = send(&app, Method::POST, "/v1/dev/token?user=42").await;
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_slice(&body).unwrap();
    let claims = secret()
        .verify(body["token"].as_str().unwrap(), unix_now())
        .unwrap();
    assert_eq!((claims.sub, claims.adm), (42, false));
    let (status, headers, body) = send(&app, Method::GET, "/v1/dev/token?user=42").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers.get(header::ALLOW).unwrap(), "POST");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}
