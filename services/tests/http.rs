//! The HTTP server itself, over real sockets: slow clients are cut off, oversized heads are
//! refused, and a request in flight finishes across shutdown.

use nearby_services::auth::Secret;
use nearby_services::catalog::Catalog;
use nearby_services::state::Limits;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "support/app.rs"]
mod app_support;

async fn start(
    limits: Limits,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), nearby_services::app::AppError>>,
) {
    let mut config = app_support::config(
        Secret::new(vec![3; 32]).expect("secret"),
        Catalog::default(),
    );
    config.limits = limits;
    let served = app_support::serve(app_support::start(config).await).await;
    (served.addr, served.stop, served.task)
}

/// Reads until the peer closes (or 5 s pass); returns what was read.
async fn read_to_close(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    while started.elapsed() < Duration::from_secs(5) {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let limits = Limits {
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (addr, stop, task) = start(limits).await;
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let (_, waited) = read_to_close(&mut slow).await;
    assert!(waited < Duration::from_secs(3), "closed after {waited:?}");
    // An idle keep-alive connection is closed the same way; a prompt one is served.
    let mut prompt = TcpStream::connect(addr).await.expect("connect");
    prompt
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let (answer, waited) = read_to_close(&mut prompt).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        waited < Duration::from_secs(3),
        "idle connection kept {waited:?}"
    );
    let _ = stop.send(());
    task.await.expect("join").expect("serve");
}

#[tokio::test]
async fn an_oversized_request_head_is_refused() {
    let (addr, stop, task) = start(Limits::default()).await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    let huge = "a".repeat(40 * 1024);
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {huge}\r\n\r\n");
    let _ = client.write_all(request.as_bytes()).await; // the server may close mid-write
    let (answer, _) = read_to_close(&mut client).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    // The server is fine.
    let mut next = TcpStream::connect(addr).await.expect("connect");
    next.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let (answer, _) = read_to_close(&mut next).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(
        answer.contains(r#"{"error":{"code":"not_found""#),
        "{answer}"
    );
    let _ = stop.send(());
    task.await.expect("join").expect("serve");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_closes_idle_connections() {
    let (addr, stop, task) = start(Limits::default()).await;
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buffer = [0_u8; 1024];
    let n = idle.read(&mut buffer).await.expect("read");
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("server stops with an idle keep-alive connection open")
        .expect("join")
        .expect("serve");
    let (_, waited) = read_to_close(&mut idle).await;
    assert!(waited < Duration::from_secs(1));
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}
