//! Nearby friends end to end: real servers (`server::run` on loopback), real WebSocket clients
//! (tokio-tungstenite), the REST friendship and sharing endpoints, in the embedded mode and
//! across two nodes sharing a throwaway Redis (see `support/redis.rs`).

#![allow(clippy::unwrap_used)]

#[path = "support/redis.rs"]
mod redis_support;

use axum::body::Body;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use nearby_services::auth::{Secret, unix_now};
use nearby_services::catalog::Catalog;
use nearby_services::state::{AppState, Limits};
use nearby_services::store::Store;
use nearby_services::{api, server};
use nearby_ws_gateway::friends::FriendStore;
use nearby_ws_gateway::{Backend, Gateway, GatewayConfig};
use redis_support::TestRedis;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use tower::ServiceExt;

#[path = "support/app.rs"]
mod app_support;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const PARIS: (f64, f64) = (48.8566, 2.3522);
const EARTH_RADIUS_M: f64 = 6_371_008.8;

fn secret() -> Secret {
    Secret::new(vec![9; 32]).unwrap()
}

fn token(user: u64) -> String {
    secret().mint(user, false, 3_600, unix_now())
}

/// The gateway's configuration as `nearby serve` derives it from its default flags.
fn gateway_config() -> GatewayConfig {
    app_support::config(secret(), Catalog::default()).gateway
}

/// The point `metres` due north of Paris.
fn north_of_paris(metres: f64) -> (f64, f64) {
    (PARIS.0 + (metres / EARTH_RADIUS_M).to_degrees(), PARIS.1)
}

struct Node {
    addr: SocketAddr,
    state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<Result<(), nearby_services::app::AppError>>,
}

impl Node {
    /// Two nodes sharing one in-memory friend store over Redis: a topology the binary
    /// refuses (it needs PostgreSQL to share friendships), so these are wired by hand.
    async fn start(config: GatewayConfig, friends: FriendStore, backend: Backend) -> Node {
        let state = AppState::new(Store::memory(), secret(), Limits::default());
        state.install_catalog(Catalog::default());
        let gateway = Gateway::start(config, secret(), friends, backend, None)
            .await
            .unwrap();
        state.attach_gateway(gateway);
        let state_for_server = state.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server::run(listener, state_for_server, async move {
                let _ = stopped.await;
            })
            .await
            .map_err(nearby_services::app::AppError::Serve)
        });
        Node {
            addr,
            state,
            stop: Some(stop),
            task,
        }
    }

    /// A node as `nearby serve` assembles it (`App::from_config`), friendships in memory
    /// seeded with `pairs`, the gateway configured by `config` (from [`gateway_config`]).
    async fn embedded(config: GatewayConfig, pairs: &[(u64, u64)]) -> Node {
        let mut app_config = app_support::config(secret(), Catalog::default());
        app_config.gateway = config;
        app_config.friend_pairs = pairs.to_vec();
        let app = app_support::start(app_config).await;
        let state = app.state().clone();
        let served = app_support::serve(app).await;
        Node {
            addr: served.addr,
            state,
            stop: Some(served.stop),
            task: served.task,
        }
    }

    async fn connect(&self, user: u64) -> Ws {
        let url = format!("ws://{}/v1/ws?token={}", self.addr, token(user));
        let (ws, response) = connect_async(url).await.unwrap();
        assert_eq!(response.status(), 101);
        ws
    }

    /// A REST call through the node's router (the same state the server uses).
    async fn call(
        &self,
        method: &str,
        path: &str,
        user: Option<u64>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = axum::http::Request::builder().method(method).uri(path);
        if let Some(user) = user {
            request = request.header("authorization", format!("Bearer {}", token(user)));
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = api::app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, value)
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

/// Asserts that no text message arrives within `wait`. Alone it misses a leak that comes
/// later: follow it with a sentinel (a message the test causes afterwards, checked to be the
/// next one), such as [`error_is_next`].
async fn silent(ws: &mut Ws, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => panic!("expected silence, got {other:?}"),
        }
    }
}

/// The sentinel after a silent window: asks the server for an error (an unknown message
/// type) and asserts that the error is the next message, so anything pushed before it —
/// however long after the window — fails the test.
async fn error_is_next(ws: &mut Ws) {
    ws.send(Message::text(r#"{"type":"sentinel"}"#))
        .await
        .unwrap();
    let next = recv(ws).await;
    assert_eq!(
        next["type"], "error",
        "expected the sentinel error, got {next}"
    );
    assert_eq!(next["code"], "unknown_type", "{next}");
}

/// The close frame the server sends next (skipping other messages).
async fn closed_with(ws: &mut Ws) -> CloseCode {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a close within 5 s");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code,
            Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => {}
            Some(Err(err)) => panic!("socket error before the close frame: {err}"),
        }
    }
}

fn friend_ids(snapshot: &Value) -> Vec<u64> {
    assert_eq!(snapshot["type"], "nearby_friends", "{snapshot}");
    snapshot["friends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["user_id"].as_u64().unwrap())
        .collect()
}

fn assert_location(message: &Value, user: u64) {
    assert_eq!(message["type"], "friend_location", "{message}");
    assert_eq!(message["user_id"], user, "{message}");
}

fn assert_gone(message: &Value, user: u64) {
    assert_eq!(message["type"], "friend_gone", "{message}");
    assert_eq!(message["user_id"], user, "{message}");
}

#[tokio::test]
async fn friends_receive_updates_and_strangers_never_do() {
    let node = Node::embedded(gateway_config(), &[(1, 2), (3, 4)]).await;
    let mut alice = node.connect(1).await;
    let mut bob = node.connect(2).await;
    let mut carol = node.connect(3).await; // a friend of 4, not of 1 or 2

    send_location(&mut alice, PARIS).await;
    assert_eq!(friend_ids(&recv(&mut alice).await), Vec::<u64>::new());
    // Bob joins later: his snapshot comes from the cache and shows Alice, 1.1 km away.
    send_location(&mut bob, north_of_paris(1_100.0)).await;
    let snapshot = recv(&mut bob).await;
    assert_eq!(friend_ids(&snapshot), vec![1]);
    let distance = snapshot["friends"][0]["distance_m"].as_f64().unwrap();
    assert!((distance - 1_100.0).abs() < 0.2, "{distance}");
    // Alice, already located, is pushed Bob.
    let pushed = recv(&mut alice).await;
    assert_location(&pushed, 2);
    assert!((pushed["latitude"].as_f64().unwrap() - north_of_paris(1_100.0).0).abs() < 1e-12);

    send_location(&mut carol, PARIS).await;
    assert_eq!(friend_ids(&recv(&mut carol).await), Vec::<u64>::new());
    send_location(&mut alice, north_of_paris(10.0)).await;
    assert_location(&recv(&mut bob).await, 1);
    send_location(&mut bob, north_of_paris(20.0)).await;
    assert_location(&recv(&mut alice).await, 2);
    silent(&mut carol, Duration::from_millis(300)).await;
    // Dave, Carol's friend, moves after everything above: through the same bus and mailbox,
    // his location is the next thing Carol hears, or a late leak came first.
    let mut dave = node.connect(4).await;
    send_location(&mut dave, north_of_paris(30.0)).await;
    assert_eq!(friend_ids(&recv(&mut dave).await), vec![3]);
    assert_location(&recv(&mut carol).await, 4);
    silent(&mut carol, Duration::from_millis(50)).await;
    node.stop().await;
}

#[tokio::test]
async fn leaving_the_radius_with_hysteresis_and_coming_back() {
    // More moves than the default rate limit allows in a second.
    let config = GatewayConfig {
        location_burst: 20,
        ..gateway_config()
    };
    let (radius, hysteresis) = (config.radius_m, config.hysteresis_m);
    let node = Node::embedded(config, &[(1, 2)]).await;
    let mut alice = node.connect(1).await;
    let mut bob = node.connect(2).await;
    send_location(&mut alice, PARIS).await;
    recv(&mut alice).await;
    send_location(&mut bob, north_of_paris(radius - 50.0)).await;
    assert_eq!(friend_ids(&recv(&mut bob).await), vec![1]);
    assert_location(&recv(&mut alice).await, 2);
    // Just past the edge but within the hysteresis: still shown.
    send_location(&mut bob, north_of_paris(radius + hysteresis / 2.0)).await;
    let update = recv(&mut alice).await;
    assert_location(&update, 2);
    assert!(update["distance_m"].as_f64().unwrap() > radius);
    // Past the hysteresis: gone; further moves outside: nothing.
    send_location(&mut bob, north_of_paris(radius + hysteresis + 100.0)).await;
    assert_gone(&recv(&mut alice).await, 2);
    send_location(&mut bob, north_of_paris(radius + 20_000.0)).await;
    silent(&mut alice, Duration::from_millis(300)).await;
    // Back within the radius (not merely within the hysteresis): shown again.
    send_location(&mut bob, north_of_paris(radius + hysteresis / 2.0)).await;
    silent(&mut alice, Duration::from_millis(300)).await;
    send_location(&mut bob, north_of_paris(100.0)).await;
    // The sentinel: the next message is this move (100 m), not one of the two before it.
    let back = recv(&mut alice).await;
    assert_location(&back, 2);
    assert!(
        (back["distance_m"].as_f64().unwrap() - 100.0).abs() < 0.2,
        "{back}"
    );
    // When Alice herself moves away, Bob is told that Alice left.
    send_location(&mut alice, north_of_paris(-(radius + hysteresis + 1_000.0))).await;
    assert_gone(&recv(&mut alice).await, 2);
    assert_gone(&recv(&mut bob).await, 1);
    node.stop().await;
}

#[tokio::test]
async fn disconnect_and_silence_past_the_ttl_hide_a_friend() {
    let config = GatewayConfig {
        location_ttl: Duration::from_millis(1_500),
        ..gateway_config()
    };
    let node = Node::embedded(config, &[(1, 2)]).await;
    let mut alice = node.connect(1).await;
    send_location(&mut alice, PARIS).await;
    recv(&mut alice).await;

    let mut bob = node.connect(2).await;
    send_location(&mut bob, PARIS).await;
    recv(&mut bob).await;
    assert_location(&recv(&mut alice).await, 2);
    bob.close(None).await.unwrap();
    // The server answers the close handshake (no abnormal 1006 on the client side).
    let reply = tokio::time::timeout(Duration::from_secs(5), bob.next())
        .await
        .unwrap();
    assert!(matches!(reply, Some(Ok(Message::Close(_)))), "{reply:?}");
    assert_gone(&recv(&mut alice).await, 2);

    // Connected but silent: gone after the TTL, and absent from a late snapshot.
    let mut bob = node.connect(2).await;
    send_location(&mut bob, PARIS).await;
    recv(&mut bob).await;
    assert_location(&recv(&mut alice).await, 2);
    let started = tokio::time::Instant::now();
    assert_gone(&recv(&mut alice).await, 2);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1_000), "{waited:?}");
    let mut alice_again = node.connect(1).await;
    send_location(&mut alice_again, PARIS).await;
    assert_eq!(friend_ids(&recv(&mut alice_again).await), Vec::<u64>::new());
    node.stop().await;
}

#[tokio::test]
async fn consent_flow_takes_effect_in_live_sessions() {
    let node = Node::embedded(gateway_config(), &[]).await;
    let mut alice = node.connect(1).await;
    let mut bob = node.connect(2).await;
    send_location(&mut alice, PARIS).await;
    recv(&mut alice).await;
    send_location(&mut bob, north_of_paris(500.0)).await;
    assert_eq!(friend_ids(&recv(&mut bob).await), Vec::<u64>::new());
    silent(&mut alice, Duration::from_millis(200)).await;
    error_is_next(&mut alice).await;

    // Refusals.
    assert_eq!(
        node.call("POST", "/v1/me/friend-requests/2", None, None)
            .await
            .0,
        401
    );
    let (status, body) = node
        .call("POST", "/v1/me/friend-requests/1", Some(1), None)
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("user_id"))
    );
    let (status, body) = node
        .call("POST", "/v1/me/friend-requests/abc", Some(1), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_parameter"))
    );

    // A request alone shares nothing.
    let (status, body) = node
        .call("POST", "/v1/me/friend-requests/2", Some(1), None)
        .await;
    assert_eq!((status, body), (202, json!({"status": "pending"})));
    let (_, requests) = node
        .call("GET", "/v1/me/friend-requests", Some(2), None)
        .await;
    assert_eq!(requests, json!({"incoming": [1], "outgoing": []}));
    send_location(&mut bob, north_of_paris(400.0)).await;
    silent(&mut alice, Duration::from_millis(300)).await;
    error_is_next(&mut alice).await;
    // Only the asked side accepts.
    assert_eq!(
        node.call("PUT", "/v1/me/friends/2", Some(1), None).await.0,
        404
    );
    assert_eq!(
        node.call("PUT", "/v1/me/friends/1", Some(3), None).await.0,
        404
    );
    let (status, body) = node.call("PUT", "/v1/me/friends/1", Some(2), None).await;
    assert_eq!((status, body), (200, json!({"status": "friends"})));
    // Both live sessions show the new friend at once (already nearby).
    assert_location(&recv(&mut alice).await, 2);
    assert_location(&recv(&mut bob).await, 1);
    let (_, friends) = node.call("GET", "/v1/me/friends", Some(1), None).await;
    assert_eq!(friends, json!({"friends": [2]}));
    send_location(&mut bob, north_of_paris(300.0)).await;
    assert_location(&recv(&mut alice).await, 2);

    // Either side ends it: both are told, and nothing flows any more.
    assert_eq!(
        node.call("DELETE", "/v1/me/friends/1", Some(2), None)
            .await
            .0,
        204
    );
    assert_gone(&recv(&mut alice).await, 2);
    assert_gone(&recv(&mut bob).await, 1);
    send_location(&mut bob, north_of_paris(200.0)).await;
    silent(&mut alice, Duration::from_millis(300)).await;
    error_is_next(&mut alice).await;
    assert_eq!(
        node.call("DELETE", "/v1/me/friends/1", Some(2), None)
            .await
            .0,
        404
    );
    node.stop().await;
}

#[tokio::test]
async fn ghost_mode_hides_a_user_until_they_share_again() {
    let node = Node::embedded(gateway_config(), &[(1, 2), (2, 3)]).await;
    let mut alice = node.connect(1).await;
    let mut bob = node.connect(2).await;
    send_location(&mut alice, PARIS).await;
    recv(&mut alice).await;
    send_location(&mut bob, north_of_paris(100.0)).await;
    recv(&mut bob).await;
    assert_location(&recv(&mut alice).await, 2);

    let (status, body) = node
        .call(
            "PUT",
            "/v1/me/sharing",
            Some(2),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!((status, body["sharing_now"].as_bool()), (200, Some(false)));
    assert_gone(&recv(&mut alice).await, 2);
    send_location(&mut bob, north_of_paris(150.0)).await;
    silent(&mut alice, Duration::from_millis(300)).await;
    error_is_next(&mut alice).await;
    // Ghost mode hides Bob, it does not blind him.
    send_location(&mut alice, north_of_paris(10.0)).await;
    assert_location(&recv(&mut bob).await, 1);
    // A late joiner does not see him either.
    let mut carol = node.connect(3).await;
    send_location(&mut carol, PARIS).await;
    assert_eq!(friend_ids(&recv(&mut carol).await), Vec::<u64>::new());

    // Bad settings are refused.
    for body in [
        json!({"enabled": true, "until": "2001-01-01T00:00:00Z"}),
        json!({"enabled": true, "until": "tomorrow"}),
        json!({"enabled": "yes"}),
        json!({"enabled": true, "colour": "red"}),
    ] {
        let (status, reply) = node
            .call("PUT", "/v1/me/sharing", Some(2), Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body} -> {reply}");
        assert!(reply["error"]["code"].is_string(), "{reply}");
    }

    // Sharing again shows his last location at once.
    let (status, _) = node
        .call(
            "PUT",
            "/v1/me/sharing",
            Some(2),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200);
    let mut seen = [recv(&mut alice).await, recv(&mut carol).await];
    seen.sort_by_key(|m| m["user_id"].as_u64());
    assert_location(&seen[0], 2);
    assert_location(&seen[1], 2);

    // Hidden for a moment: hidden now, shown again when `until` passes, with no other call.
    let until =
        nearby_ws_gateway::clock::format_rfc3339(nearby_ws_gateway::clock::now_ms() + 1_200);
    let (status, body) = node
        .call(
            "PUT",
            "/v1/me/sharing",
            Some(2),
            Some(json!({"enabled": false, "until": until})),
        )
        .await;
    assert_eq!(
        (status, body["until"].as_str()),
        (200, Some(until.as_str()))
    );
    assert_gone(&recv(&mut alice).await, 2);
    assert_gone(&recv(&mut carol).await, 2);
    let hidden_at = tokio::time::Instant::now();
    // When `until` passes, Bob's session shows him again by itself.
    assert_location(&recv(&mut alice).await, 2);
    assert_location(&recv(&mut carol).await, 2);
    assert!(
        hidden_at.elapsed() >= Duration::from_millis(900),
        "{:?}",
        hidden_at.elapsed()
    );
    node.stop().await;
}

#[tokio::test]
async fn bad_messages_get_errors_and_abuse_closes_the_socket() {
    let node = Node::embedded(gateway_config(), &[]).await;
    let mut client = node.connect(1).await;
    for (text, code) in [
        ("not json", "malformed"),
        (
            r#"{"type":"location","latitude":95,"longitude":0}"#,
            "invalid_field",
        ),
        (r#"{"type":"location","latitude":1}"#, "missing_field"),
        (r#"{"type":"teleport"}"#, "unknown_type"),
    ] {
        client.send(Message::text(text)).await.unwrap();
        let error = recv(&mut client).await;
        assert_eq!(
            (error["type"].as_str(), error["code"].as_str()),
            (Some("error"), Some(code)),
            "{text}"
        );
    }
    client.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(recv(&mut client).await["code"], "unsupported_frame");
    // Still open and working.
    send_location(&mut client, PARIS).await;
    assert_eq!(recv(&mut client).await["type"], "nearby_friends");
    // Past the location rate (1/s, burst 5): errors, not a disconnect.
    for _ in 0..8 {
        send_location(&mut client, PARIS).await;
    }
    let mut limited = 0;
    while let Ok(Some(Ok(Message::Text(text)))) =
        tokio::time::timeout(Duration::from_millis(300), client.next()).await
    {
        let message: Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(message["code"], "rate_limited", "{message}");
        limited += 1;
    }
    assert!((3..=8).contains(&limited), "{limited}");

    // A frame over 4 KiB closes with 1009.
    let mut big = node.connect(2).await;
    big.send(Message::text("x".repeat(5_000))).await.unwrap();
    assert_eq!(closed_with(&mut big).await, CloseCode::Size);
    // A flood of frames closes with 1008.
    let mut flood = node.connect(3).await;
    for _ in 0..80 {
        if flood.send(Message::text("{}")).await.is_err() {
            break;
        }
    }
    assert_eq!(closed_with(&mut flood).await, CloseCode::Policy);
    // A text frame that is not UTF-8 closes with 1007.
    let mut garbled = node.connect(4).await;
    let frame = tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
        vec![b'{', 0xff, 0xfe, b'}'],
        tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
            tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
        ),
        true,
    );
    garbled.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(closed_with(&mut garbled).await, CloseCode::Invalid);
    node.stop().await;
}

#[tokio::test]
async fn upgrades_need_a_valid_token() {
    let node = Node::embedded(gateway_config(), &[]).await;
    let forged = Secret::new(vec![1; 32])
        .unwrap()
        .mint(1, false, 3_600, unix_now());
    let expired = secret().mint(1, false, 1, unix_now() - 10);
    for url in [
        format!("ws://{}/v1/ws", node.addr),
        format!("ws://{}/v1/ws?token=garbage", node.addr),
        format!("ws://{}/v1/ws?token={forged}", node.addr),
        format!("ws://{}/v1/ws?token={expired}", node.addr),
    ] {
        match connect_async(url.as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401, "{url}");
            }
            other => panic!("{url}: expected HTTP 401, got {other:?}"),
        }
    }
    // The header works as well as the query parameter.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{}/v1/ws",
            node.addr
        ))
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", token(5)).parse().unwrap(),
    );
    let (mut ws, _) = connect_async(request).await.unwrap();
    send_location(&mut ws, PARIS).await;
    assert_eq!(recv(&mut ws).await["type"], "nearby_friends");
    // A plain GET with a token is told to upgrade.
    let (status, body) = node.call("GET", "/v1/ws", Some(5), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("not_websocket"))
    );
    node.stop().await;
}

#[tokio::test]
async fn shutdown_closes_sessions_with_going_away() {
    let node = Node::embedded(gateway_config(), &[]).await;
    let mut client = node.connect(1).await;
    send_location(&mut client, PARIS).await;
    recv(&mut client).await;
    let Node { stop, task, .. } = node;
    let _ = stop.unwrap().send(());
    assert_eq!(closed_with(&mut client).await, CloseCode::Away);
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn two_nodes_share_one_redis() {
    let redis = TestRedis::start();
    let friends = FriendStore::memory();
    friends.seed(&[(1, 2), (1, 3)]).await.unwrap();
    let backend = Backend::Redis(redis.url());
    let one = Node::start(gateway_config(), friends.clone(), backend.clone()).await;
    let two = Node::start(gateway_config(), friends.clone(), backend).await;

    let mut alice = one.connect(1).await;
    let mut bob = two.connect(2).await;
    let mut carol = two.connect(3).await;
    send_location(&mut alice, PARIS).await;
    recv(&mut alice).await;
    // Let Alice's publish cross Redis first, so Bob's snapshot is his first message.
    tokio::time::sleep(Duration::from_millis(100)).await;
    send_location(&mut bob, north_of_paris(300.0)).await;
    // The snapshot is read from Redis: Alice is on the other node.
    assert_eq!(friend_ids(&recv(&mut bob).await), vec![1]);
    assert_location(&recv(&mut alice).await, 2);
    send_location(&mut carol, north_of_paris(600.0)).await;
    assert_eq!(friend_ids(&recv(&mut carol).await), vec![1]);
    assert_location(&recv(&mut alice).await, 3);
    send_location(&mut alice, north_of_paris(50.0)).await;
    assert_location(&recv(&mut bob).await, 1);
    assert_location(&recv(&mut carol).await, 1);
    // Bob and Carol are not friends: neither hears of the other.
    silent(&mut bob, Duration::from_millis(200)).await;
    error_is_next(&mut bob).await;

    // One Redis subscription per channel per node, however many local sessions need it.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let counts: Vec<(String, u64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("nearby:loc:{1}")
        .arg("nearby:loc:{2}")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(
        counts,
        vec![
            ("nearby:loc:{1}".to_owned(), 1),
            ("nearby:loc:{2}".to_owned(), 1)
        ]
    );

    // A friendship made through one node reaches live sessions on both.
    let mut dave = two.connect(4).await;
    send_location(&mut dave, north_of_paris(900.0)).await;
    assert_eq!(friend_ids(&recv(&mut dave).await), Vec::<u64>::new());
    assert_eq!(
        two.call("POST", "/v1/me/friend-requests/1", Some(4), None)
            .await
            .0,
        202
    );
    assert_eq!(
        one.call("PUT", "/v1/me/friends/4", Some(1), None).await.0,
        200
    );
    assert_location(&recv(&mut alice).await, 4);
    assert_location(&recv(&mut dave).await, 1);

    // Disconnecting on one node is seen on the other.
    alice.close(None).await.unwrap();
    let mut gone = [
        recv(&mut bob).await,
        recv(&mut carol).await,
        recv(&mut dave).await,
    ];
    gone.sort_by_key(|m| m["type"].as_str().map(str::to_owned));
    for message in &gone {
        assert_gone(message, 1);
    }
    let (status, metrics) = one.call("GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap();
    assert!(metrics.contains("nearby_bus_up 1"), "{metrics}");
    assert!(metrics.contains("nearby_ws_sessions "), "{metrics}");
    one.stop().await;
    two.stop().await;
}

#[tokio::test]
async fn sessions_survive_a_redis_restart() {
    let mut redis = TestRedis::start();
    let friends = FriendStore::memory();
    friends.seed(&[(1, 2)]).await.unwrap();
    let backend = Backend::Redis(redis.url());
    let one = Node::start(gateway_config(), friends.clone(), backend.clone()).await;
    let two = Node::start(gateway_config(), friends, backend).await;
    let mut alice = one.connect(1).await;
    let mut bob = two.connect(2).await;
    send_location(&mut alice, PARIS).await;
    recv(&mut alice).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    send_location(&mut bob, north_of_paris(100.0)).await;
    recv(&mut bob).await;
    assert_location(&recv(&mut alice).await, 2);

    redis.kill();
    // The outage shows in /readyz and /metrics; the sockets stay open.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _) = one.call("GET", "/readyz", None, None).await;
        if status == 503 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never reported the outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, metrics) = one.call("GET", "/metrics", None, None).await;
    assert!(metrics.as_str().unwrap().contains("nearby_bus_up 0"));
    tokio::time::sleep(Duration::from_millis(1_100)).await; // let the rate limit refill
    send_location(&mut bob, north_of_paris(200.0)).await;
    // (Alice's first update may still reach Bob: over Redis it can land after his snapshot.)
    let refused = loop {
        let message = recv(&mut bob).await;
        if message["type"] != "friend_location" {
            break message;
        }
    };
    assert_eq!(refused["code"], "unavailable", "{refused}");

    redis.restart();
    let restarted = tokio::time::Instant::now();
    // Both nodes reconnect and resubscribe; updates flow again within 2 s of Redis returning.
    loop {
        let ready = [
            one.call("GET", "/readyz", None, None).await.0,
            two.call("GET", "/readyz", None, None).await.0,
        ];
        if ready == [200, 200] {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(5),
            "not ready again: {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut delivered = false;
    while restarted.elapsed() < Duration::from_secs(2) && !delivered {
        send_location(&mut bob, north_of_paris(300.0)).await;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(400);
        while let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout_at(deadline, alice.next()).await
        {
            let message: Value = serde_json::from_str(text.as_str()).unwrap();
            if message["type"] == "friend_location" {
                delivered = true;
                break;
            }
        }
        // Drain Bob's answers (errors while the publisher reconnects).
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(10), bob.next()).await {}
    }
    assert!(
        delivered,
        "no update delivered within 2 s of Redis returning"
    );
    one.stop().await;
    two.stop().await;
}
