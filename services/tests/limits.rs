//! Per-user limits of the nearby-friends gateway, end to end: how many WebSocket sessions a
//! user may hold (a newer one closes the oldest, 4002), how often a user may connect (429 with
//! `Retry-After`), how many locations a user may send whatever the session, and that a location
//! implying an impossible speed is refused without being shown to anyone.
//!
//! In-process nodes (`server::run` on loopback, the gateway with its default limits) and real
//! WebSocket clients, as in `friends.rs`. The defaults are what is tested: 5 sessions, connects
//! in bursts of 10 (one more every 2 s), locations in bursts of 5 (one more a second), moves
//! over 20 km refused above 1,200 km/h.

#![allow(clippy::unwrap_used)]

use futures_util::{SinkExt, StreamExt};
use nearby_services::auth::{Secret, unix_now};
use nearby_services::catalog::Catalog;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

#[path = "support/app.rs"]
mod app_support;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const PARIS: (f64, f64) = (48.8566, 2.3522);
const LYON: (f64, f64) = (45.764, 4.8357);
const EARTH_RADIUS_M: f64 = 6_371_008.8;
/// The close code of a session replaced by a newer one of the same user.
const CLOSE_REPLACED: u16 = 4002;

fn secret() -> Secret {
    Secret::new(vec![9; 32]).unwrap()
}

fn token(user: u64) -> String {
    secret().mint(user, false, 3_600, unix_now())
}

/// The point `metres` due north of `from`.
fn north_of((lat, lng): (f64, f64), metres: f64) -> (f64, f64) {
    (lat + (metres / EARTH_RADIUS_M).to_degrees(), lng)
}

struct Node {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<Result<(), nearby_services::app::AppError>>,
}

impl Node {
    /// A node as `nearby serve` configures it (the gateway's default limits), friendships in
    /// memory seeded with `pairs`.
    async fn start(pairs: &[(u64, u64)]) -> Node {
        let mut config = app_support::config(secret(), Catalog::default());
        config.friend_pairs = pairs.to_vec();
        let served = app_support::serve(app_support::start(config).await).await;
        Node {
            addr: served.addr,
            stop: Some(served.stop),
            task: served.task,
        }
    }

    /// Opens a session for `user` and waits until it runs (see [`ready`]).
    async fn connect(&self, user: u64) -> Ws {
        let url = format!("ws://{}/v1/ws?token={}", self.addr, token(user));
        let (mut ws, response) = connect_async(url)
            .await
            .unwrap_or_else(|err| panic!("connect user {user}: {err}"));
        assert_eq!(response.status(), 101);
        ready(&mut ws).await;
        ws
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(15), &mut self.task)
            .await
            .expect("server stops")
            .unwrap()
            .unwrap();
    }
}

/// Waits until the session behind `ws` answers a message. The 101 is sent before the session
/// task starts (and registers with the user's limits), so without this the order in which
/// sessions of one user register, hence which one is "oldest", would be a race.
async fn ready(ws: &mut Ws) {
    // An unknown type is answered with an error and spends no location token.
    ws.send(Message::text(r#"{"type":"hello"}"#)).await.unwrap();
    let answer = recv(ws).await;
    assert_eq!(answer["code"], "unknown_type", "{answer}");
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

/// Asserts that nothing (no message, no close) arrives within `wait`.
async fn silent(ws: &mut Ws, wait: Duration, what: &str) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => panic!("{what}: expected silence, got {other:?}"),
        }
    }
}

/// The code of the close frame the server sends next (skipping other messages).
async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a close within 5 s");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => {}
            Some(Err(err)) => panic!("socket error before the close frame: {err}"),
        }
    }
}

fn assert_error(message: &Value, code: &str) {
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(message["code"], code, "{message}");
}

fn assert_location(message: &Value, user: u64) {
    assert_eq!(message["type"], "friend_location", "{message}");
    assert_eq!(message["user_id"], user, "{message}");
}

/// An HTTP response read off a raw connection.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A WebSocket upgrade request for `user` written by hand, so a refusal's headers and whole
/// JSON body can be read (tungstenite keeps only the part of the body that came with the
/// headers). An upgrade that succeeds is answered 101 with no body and the connection dropped.
async fn raw_upgrade(addr: SocketAddr, user: u64) -> RawResponse {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /v1/ws?token={} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            token(user)
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut received = Vec::new();
        let mut chunk = [0_u8; 4_096];
        let head_end = loop {
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let read = stream.read(&mut chunk).await.unwrap();
            assert!(read > 0, "connection closed before the response's headers");
            received.extend_from_slice(&chunk[..read]);
        };
        let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap()[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, value)| value.parse().unwrap());
        let mut body = received[head_end + 4..].to_vec();
        while body.len() < length {
            let read = stream.read(&mut chunk).await.unwrap();
            assert!(read > 0, "connection closed before the response's body");
            body.extend_from_slice(&chunk[..read]);
        }
        RawResponse {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .expect("an answer to the upgrade within 5 s")
}

#[tokio::test]
async fn a_sixth_session_closes_the_oldest_and_the_other_five_keep_working() {
    let node = Node::start(&[(1, 2)]).await;
    let mut sessions = Vec::new();
    for _ in 0..6 {
        sessions.push(node.connect(1).await);
    }
    // The newest device wins: the first one opened is told it was replaced.
    assert_eq!(close_code(&mut sessions[0]).await, CLOSE_REPLACED);
    // The five others stay open, including past a late close: none may be closed (or told
    // anything) afterwards.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for (index, session) in sessions.iter_mut().enumerate().skip(1) {
        silent(
            session,
            Duration::from_millis(50),
            &format!("session {index}"),
        )
        .await;
    }
    // And they work: each shares a location (five together: the user's location burst), gets
    // its snapshot, and is pushed the friend who shows up next to it.
    for session in &mut sessions[1..] {
        send_location(session, PARIS).await;
        assert_eq!(recv(session).await["type"], "nearby_friends");
    }
    let mut friend = node.connect(2).await;
    send_location(&mut friend, north_of(PARIS, 500.0)).await;
    let snapshot = recv(&mut friend).await;
    assert_eq!(snapshot["friends"][0]["user_id"], 1, "{snapshot}");
    for session in &mut sessions[1..] {
        assert_location(&recv(session).await, 2);
    }
    node.stop().await;
}

#[tokio::test]
async fn connection_attempts_are_limited_per_user_with_retry_after() {
    let node = Node::start(&[]).await;
    let started = Instant::now();
    // The burst: ten upgrades at once. Past five sessions the oldest are replaced (4002), but
    // each of them was an attempt all the same.
    let mut sessions = Vec::new();
    for attempt in 1..=10 {
        let url = format!("ws://{}/v1/ws?token={}", node.addr, token(7));
        let (ws, response) = connect_async(url)
            .await
            .unwrap_or_else(|err| panic!("attempt {attempt}: {err}"));
        assert_eq!(response.status(), 101);
        sessions.push(ws);
    }
    let refused = raw_upgrade(node.addr, 7).await;
    // One attempt more comes back every 2 s: this only holds if the burst took less.
    let elapsed = started.elapsed();
    assert_eq!(
        refused.status, 429,
        "the 11th attempt, {elapsed:?} after the first: {} {:?}",
        refused.body, refused.headers
    );
    let retry_after: u64 = refused
        .header("retry-after")
        .expect("a Retry-After header")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(retry_after >= 1, "Retry-After: {retry_after}");
    let body: Value = serde_json::from_str(&refused.body)
        .unwrap_or_else(|err| panic!("a JSON body ({err}): {}", refused.body));
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    // Another user is not affected.
    let mut other = node.connect(8).await;
    send_location(&mut other, PARIS).await;
    assert_eq!(recv(&mut other).await["type"], "nearby_friends");
    // Retry-After tells the truth: after waiting that long, the user gets in again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let again = raw_upgrade(node.addr, 7).await;
    assert_eq!(again.status, 101, "after Retry-After: {}", again.body);
    drop(sessions);
    node.stop().await;
}

#[tokio::test]
async fn the_location_rate_is_per_user_across_sessions() {
    let node = Node::start(&[]).await;
    let mut phone = node.connect(1).await;
    let mut laptop = node.connect(1).await;
    let started = Instant::now();
    // Five locations from the two sessions together, the user's burst: each session's first
    // is answered with its snapshot, the others with nothing. Each is followed by a round
    // trip on its session, so they are taken in this order (the sessions run concurrently)
    // and none was refused (an error would come before the round trip's answer).
    send_location(&mut phone, PARIS).await;
    assert_eq!(recv(&mut phone).await["type"], "nearby_friends");
    send_location(&mut laptop, north_of(PARIS, 10.0)).await;
    assert_eq!(recv(&mut laptop).await["type"], "nearby_friends");
    send_location(&mut phone, north_of(PARIS, 20.0)).await;
    ready(&mut phone).await;
    send_location(&mut laptop, north_of(PARIS, 30.0)).await;
    ready(&mut laptop).await;
    send_location(&mut phone, north_of(PARIS, 40.0)).await;
    ready(&mut phone).await;
    // The sixth, the laptop's third: refused although the laptop sent only two so far.
    send_location(&mut laptop, north_of(PARIS, 50.0)).await;
    let answer = recv(&mut laptop).await;
    let elapsed = started.elapsed();
    assert_error(&answer, "rate_limited");
    // And the phone's fourth too.
    send_location(&mut phone, north_of(PARIS, 60.0)).await;
    assert_error(&recv(&mut phone).await, "rate_limited");
    // One more token a second: the count above only holds if it all took less.
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    silent(&mut phone, Duration::from_millis(200), "phone").await;
    silent(&mut laptop, Duration::from_millis(200), "laptop").await;
    node.stop().await;
}

#[tokio::test]
async fn an_impossible_move_is_refused_and_shown_to_no_one() {
    // Alice (1) in Paris, her friends Bob (2) near Lyon and Carol (3) near Paris.
    let node = Node::start(&[(1, 2), (1, 3)]).await;
    let mut carol = node.connect(3).await;
    send_location(&mut carol, north_of(PARIS, 3_000.0)).await;
    assert_eq!(recv(&mut carol).await["friends"], json!([]));
    let mut bob = node.connect(2).await;
    send_location(&mut bob, north_of(LYON, 1_000.0)).await;
    assert_eq!(recv(&mut bob).await["friends"], json!([]));
    let mut alice = node.connect(1).await;
    send_location(&mut alice, PARIS).await;
    let snapshot = recv(&mut alice).await;
    assert_eq!(snapshot["friends"][0]["user_id"], 3, "{snapshot}");
    assert_location(&recv(&mut carol).await, 1);

    // 390 km in about a second and a half.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    send_location(&mut alice, LYON).await;
    let refused = recv(&mut alice).await;
    assert_error(&refused, "implausible_movement");
    // Her previous location stands: Bob, 1 km from where she claimed to be, is not shown to
    // her; Bob is not told she is there; Carol is not told she left.
    silent(&mut alice, Duration::from_secs(2), "alice after the jump").await;
    silent(
        &mut bob,
        Duration::from_millis(200),
        "bob after alice's jump",
    )
    .await;
    silent(
        &mut carol,
        Duration::from_millis(200),
        "carol after alice's jump",
    )
    .await;

    // The session stays open and a plausible location is taken as usual...
    let next = north_of(PARIS, 1_000.0);
    send_location(&mut alice, next).await;
    let update = recv(&mut carol).await;
    assert_location(&update, 1);
    assert!(
        (update["latitude"].as_f64().unwrap() - next.0).abs() < 1e-9,
        "{update}"
    );
    // ...and so is any move under 20 km, however fast: 19 km at once takes Alice 17 km from
    // Carol; each is told the other left (Alice rather than an error).
    send_location(&mut alice, north_of(PARIS, 20_000.0)).await;
    let gone = recv(&mut carol).await;
    assert_eq!(gone["type"], "friend_gone", "{gone}");
    assert_eq!(gone["user_id"], 1, "{gone}");
    let gone = recv(&mut alice).await;
    assert_eq!(gone["type"], "friend_gone", "{gone}");
    assert_eq!(gone["user_id"], 3, "{gone}");
    silent(
        &mut alice,
        Duration::from_millis(300),
        "alice after the short moves",
    )
    .await;
    silent(&mut bob, Duration::from_millis(100), "bob").await;
    node.stop().await;
}
