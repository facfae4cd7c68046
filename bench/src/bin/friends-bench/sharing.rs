//! Sharing precisions, set over plain HTTP/1.1 before any WebSocket opens.

use crate::circles::approximate_sharer;
use crate::session::{bound_socket, io_kind, short};
use crate::shared::Shared;
use nearby_services::auth::unix_now;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

// --- sharing precisions -------------------------------------------------------------------

/// Sets every user's default precision (`PUT /v1/me/sharing` with their own token):
/// `approximate` for the users [`approximate_sharer`] picks, `exact` for the others, over a
/// few keep-alive connections. Any refusal ends the run: the mix would not be the one asked.
pub(crate) async fn set_precisions(shared: &Arc<Shared>) -> Result<(), String> {
    let args = &shared.args;
    let started = Instant::now();
    let approximate_users = (1..=args.users)
        .filter(|&user| approximate_sharer(user, args.approximate_share))
        .count();
    eprintln!(
        "friends-bench: setting the sharing precision of {} users ({approximate_users} approximate)",
        args.users
    );
    let next = Arc::new(AtomicU64::new(1));
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..args.connect_concurrency.clamp(1, 16) {
        let shared = Arc::clone(shared);
        let next = Arc::clone(&next);
        workers.spawn(async move { precision_worker(&shared, &next, worker).await });
    }
    while let Some(outcome) = workers.join_next().await {
        if let Err(err) = outcome.map_err(|err| err.to_string()).and_then(|done| done) {
            workers.abort_all();
            return Err(err);
        }
    }
    eprintln!(
        "friends-bench: sharing precisions set in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One of `set_precisions`' workers: takes the next user until none is left and sets its
/// precision over a keep-alive connection (once more on a fresh one if the server closed it).
async fn precision_worker(shared: &Shared, next: &AtomicU64, worker: usize) -> Result<(), String> {
    let mut connection: Option<BufReader<TcpStream>> = None;
    loop {
        let user = next.fetch_add(1, Ordering::Relaxed);
        if user > shared.args.users {
            return Ok(());
        }
        let precision = if approximate_sharer(user, shared.args.approximate_share) {
            "approximate"
        } else {
            "exact"
        };
        let mut retried = false;
        let (status, body) = loop {
            let outcome = match connection.as_mut() {
                Some(stream) => put_sharing(shared, stream, user, precision).await,
                None => match http_connect(shared, worker).await {
                    Ok(stream) => {
                        let stream = connection.insert(stream);
                        put_sharing(shared, stream, user, precision).await
                    }
                    Err(err) => Err(err),
                },
            };
            match outcome {
                Ok((status, body, keep)) => {
                    if !keep {
                        connection = None;
                    }
                    break (status, body);
                }
                // The server may close a keep-alive connection between requests:
                // once more on a fresh one.
                Err(_) if !retried => {
                    retried = true;
                    connection = None;
                }
                Err(err) => {
                    return Err(format!("PUT /v1/me/sharing for user {user}: {err}"));
                }
            }
        };
        check_sharing_answer(user, precision, status, &body)?;
    }
}

/// Whether the server took the precision: `200` with it in the answer.
pub(crate) fn check_sharing_answer(
    user: u64,
    precision: &str,
    status: u16,
    body: &str,
) -> Result<(), String> {
    if status == 409 && body.contains("read_only") {
        return Err(
            "the server answers 409 read_only to PUT /v1/me/sharing: friendships and sharing are \
             read-only with Redis and no database; --approximate-share needs the embedded mode \
             (no Redis) or a database"
                .to_owned(),
        );
    }
    if status != 200 {
        return Err(format!(
            "PUT /v1/me/sharing for user {user}: HTTP {status}: {}",
            short(body)
        ));
    }
    let answer: serde_json::Value = serde_json::from_str(body).map_err(|_| {
        format!(
            "PUT /v1/me/sharing for user {user}: not JSON: {}",
            short(body)
        )
    })?;
    if answer.get("precision").and_then(|p| p.as_str()) != Some(precision) {
        return Err(format!(
            "PUT /v1/me/sharing for user {user} asked for {precision}, the answer says {}",
            short(body)
        ));
    }
    Ok(())
}

/// A plain HTTP/1.1 connection to the server, from a source address picked by `worker`.
pub(crate) async fn http_connect(
    shared: &Shared,
    worker: usize,
) -> Result<BufReader<TcpStream>, String> {
    let ips = &shared.args.source_ips;
    let source = ips[worker % ips.len()];
    let socket = bound_socket(source)?;
    let stream = tokio::time::timeout(Duration::from_secs(10), socket.connect(shared.target))
        .await
        .map_err(|_| "connect: timeout".to_owned())?
        .map_err(|err| format!("connect: {}", io_kind(&err)))?;
    Ok(BufReader::new(stream))
}

/// `PUT /v1/me/sharing {"enabled":true,"precision":...}` as `user`: the status, the body,
/// and whether the connection may be used again.
pub(crate) async fn put_sharing(
    shared: &Shared,
    stream: &mut BufReader<TcpStream>,
    user: u64,
    precision: &str,
) -> Result<(u16, String, bool), String> {
    let uri = shared.request.uri();
    let authority = uri.authority().map_or("127.0.0.1", |a| a.as_str());
    let token = shared.secret.mint(user, false, 3_600, unix_now());
    let body = format!(r#"{{"enabled":true,"precision":"{precision}"}}"#);
    let request = format!(
        "PUT /v1/me/sharing HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .map_err(|err| format!("write: {}", io_kind(&err)))?;
        let mut line = String::new();
        let read = stream
            .read_line(&mut line)
            .await
            .map_err(|err| format!("read: {}", io_kind(&err)))?;
        if read == 0 {
            return Err("closed before answering".to_owned());
        }
        // "HTTP/1.1 200 OK"
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("not an HTTP status line: {}", short(line.trim_end())))?;
        let mut length: Option<usize> = None;
        let mut keep = true;
        loop {
            line.clear();
            stream
                .read_line(&mut line)
                .await
                .map_err(|err| format!("read: {}", io_kind(&err)))?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().ok();
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close")
            {
                keep = false;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(format!("unexpected transfer-encoding {value}"));
            }
        }
        let mut body = Vec::new();
        match length {
            Some(length) if length <= 64 * 1024 => {
                body.resize(length, 0);
                stream
                    .read_exact(&mut body)
                    .await
                    .map_err(|err| format!("read: {}", io_kind(&err)))?;
            }
            Some(length) => return Err(format!("a {length}-byte answer")),
            None => {
                // No length: the body runs to the end of the connection.
                keep = false;
                (&mut *stream)
                    .take(64 * 1024)
                    .read_to_end(&mut body)
                    .await
                    .map_err(|err| format!("read: {}", io_kind(&err)))?;
            }
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned(), keep))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "no answer within 10 s".to_owned())?
}
