//! One user's WebSocket session: connect, send updates, check and time what arrives.

use crate::circles::{
    self, CIRCLE_SPREAD_M, Offset, STEP_M, approximate_sharer, circle_centre, circle_of, step,
};
use crate::shared::{Incoming, Phase, Shared, Shown, remember};
use futures_util::{SinkExt, StreamExt};
use nearby_services::auth::unix_now;
use nearby_ws_gateway::approximate;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, http};

// --- checking what is shown ------------------------------------------------------------------

/// Checks what a push or snapshot entry shows of `friend` against what the friend shares
/// (see the module comment), counting each violation; returns whether it announces itself
/// as approximate.
pub(crate) fn check_shown(shared: &Shared, friend: u64, shown: &Shown<'_>) -> bool {
    let args = &shared.args;
    let violation = |kind: &str| {
        shared.counters.violations.fetch_add(1, Ordering::Relaxed);
        shared.violation_kinds.add(kind);
    };
    let sharer_approximate = approximate_sharer(friend, args.approximate_share);
    match shown.precision {
        Some("exact") => {
            if sharer_approximate {
                violation("exact from an approximate sharer");
            }
            if shown.accuracy_m.is_some() {
                violation("exact with accuracy_m");
            }
            false
        }
        Some("approximate") => {
            if !sharer_approximate {
                violation("approximate from an exact sharer");
            }
            let accuracy = shown
                .accuracy_m
                .filter(|a| a.is_finite() && *a > 0.0 && *a <= 10_000.0);
            if accuracy.is_none() {
                violation("approximate without a plausible accuracy_m");
            }
            let (Some(lat), Some(lng)) = (shown.latitude, shown.longitude) else {
                violation("approximate without coordinates");
                return true;
            };
            let own = shared
                .recent
                .get((friend - 1) as usize)
                .is_some_and(|recent| match recent.lock() {
                    Ok(recent) => recent.holds(lat, lng),
                    Err(poisoned) => poisoned.into_inner().holds(lat, lng),
                });
            if own {
                violation("approximate carrying the sender's coordinates");
            }
            let Ok(point) = geo_index::LatLng::new(lat, lng) else {
                violation("approximate with invalid coordinates");
                return true;
            };
            if approximate::centre(approximate::cell_of(point)).distance_m(point) > 1.0 {
                violation("approximate not on a cell centre");
            }
            // The shown cell held the sender once, and the sender never leaves its circle's
            // disc: its centre is within the cell's circumradius of that disc.
            let (index, _, _) = circle_of(friend, args.circle, args.users);
            let (clat, clng) = circle_centre(args.seed, index).lat_lng();
            if let (Some(accuracy), Ok(centre)) = (accuracy, geo_index::LatLng::new(clat, clng))
                && centre.distance_m(point) > accuracy + CIRCLE_SPREAD_M + 2.0 * STEP_M + 50.0
            {
                violation("approximate too far from the sender's circle");
            }
            true
        }
        Some(_) => {
            violation("unknown precision");
            false
        }
        None => {
            violation("no precision");
            false
        }
    }
}

/// Counts a snapshot and checks its entries.
pub(crate) fn on_snapshot(shared: &Shared, user: u64, friends: Option<&[Shown<'_>]>) {
    let c = &shared.counters;
    c.snapshots.fetch_add(1, Ordering::Relaxed);
    let friends = friends.unwrap_or_default();
    c.snapshot_friends
        .fetch_add(friends.len() as u64, Ordering::Relaxed);
    let circle = circle_of(user, shared.args.circle, shared.args.users).0;
    for entry in friends {
        let Some(friend) = entry.user_id else {
            shared.errors.add("(bad snapshot entry)");
            continue;
        };
        if friend == 0
            || friend > shared.args.users
            || circle_of(friend, shared.args.circle, shared.args.users).0 != circle
        {
            c.strangers.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if check_shown(shared, friend, entry) {
            c.snapshot_approximate.fetch_add(1, Ordering::Relaxed);
        } else {
            c.snapshot_exact.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub(crate) type Socket = WebSocketStream<TcpStream>;

/// Opens one connection: TCP from the next source address, the upgrade, and unless idle
/// without --idle-locate, the first location and its snapshot.
pub(crate) async fn connect(
    shared: &Shared,
    user: u64,
    position: Offset,
) -> Result<Socket, String> {
    let args = &shared.args;
    let source =
        args.source_ips[shared.next_source.fetch_add(1, Ordering::Relaxed) % args.source_ips.len()];
    let socket = bound_socket(source)?;
    let stream = socket
        .connect(shared.target)
        .await
        .map_err(|err| format!("connect: {}", io_kind(&err)))?;
    // Pushes are small and latency is what is measured.
    stream
        .set_nodelay(true)
        .map_err(|err| format!("nodelay: {}", io_kind(&err)))?;
    let mut request = shared.request.clone();
    let token = shared.secret.mint(user, false, 86_400, unix_now());
    let header = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "token is not a header value".to_owned())?;
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, header);
    // Small buffers: the client holds tens of thousands of sockets and reads tiny frames.
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|err| match err {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                format!("http {}", response.status().as_u16())
            }
            other => format!("upgrade: {}", short(&other.to_string())),
        })?;
    if args.idle && !args.idle_locate {
        return Ok(ws);
    }
    let now_us = shared.clock.micros();
    let timestamp_ms = shared.clock.unix_ms_at(now_us);
    remember(shared, user, timestamp_ms, position);
    ws.send(location(position, timestamp_ms))
        .await
        .map_err(|err| format!("send: {}", short(&err.to_string())))?;
    // Wait for the snapshot; pushes about friends that located first may come before it.
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                if let Ok(message) = serde_json::from_str::<Incoming<'_>>(text.as_str()) {
                    match message.kind {
                        "nearby_friends" => {
                            on_snapshot(shared, user, message.friends.as_deref());
                            return Ok(ws);
                        }
                        "error" => {
                            shared.errors.add(message.code.unwrap_or("(none)"));
                            return Err(format!("error {}", message.code.unwrap_or("(none)")));
                        }
                        _ => on_message(shared, user, &message),
                    }
                }
            }
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                shared.closes.add(&code.to_string());
                return Err(format!("closed {code} before the snapshot"));
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(format!("read: {}", short(&err.to_string()))),
            None => return Err("closed before the snapshot".to_owned()),
        }
    }
}

/// A TCP socket bound to `source` (one of the loopback source addresses the clients spread
/// over, so more connections fit than one address's ports allow), not yet connected.
pub(crate) fn bound_socket(source: std::net::IpAddr) -> Result<TcpSocket, String> {
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|err| format!("socket: {}", io_kind(&err)))?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|err| format!("bind: {}", io_kind(&err)))?;
    Ok(socket)
}

pub(crate) fn io_kind(err: &std::io::Error) -> String {
    // The kind (not the text) keeps the failure tally to a few entries.
    format!("{:?}", err.kind())
}

pub(crate) fn short(text: &str) -> String {
    text.chars().take(60).collect()
}

pub(crate) fn location(position: Offset, timestamp_ms: u64) -> Message {
    let (lat, lng) = position.lat_lng();
    Message::text(format!(
        r#"{{"type":"location","latitude":{lat:.7},"longitude":{lng:.7},"timestamp":{timestamp_ms}}}"#
    ))
}

/// Counts one server message received after the snapshot.
pub(crate) fn on_message(shared: &Shared, user: u64, message: &Incoming<'_>) {
    let c = &shared.counters;
    match message.kind {
        "friend_location" => {
            let (Some(friend), Some(timestamp)) = (message.user_id, message.timestamp) else {
                shared.errors.add("(bad friend_location)");
                return;
            };
            let circle = shared.args.circle;
            if friend == 0
                || friend > shared.args.users
                || circle_of(friend, circle, shared.args.users).0
                    != circle_of(user, circle, shared.args.users).0
            {
                c.strangers.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let approximate = check_shown(shared, friend, &message.shown());
            if timestamp < shared.run_start_unix_ms.load(Ordering::Acquire) {
                c.early_deliveries.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if approximate {
                c.approximate_deliveries.fetch_add(1, Ordering::Relaxed);
            } else {
                c.deliveries.fetch_add(1, Ordering::Relaxed);
            }
            let now_us = shared.clock.micros();
            // The friend's latest send instant times this push to the microsecond if it is
            // the one this push carries; otherwise (a newer update overtook it) fall back to
            // the message's millisecond timestamp.
            let sent_us = shared
                .sent_at
                .get((friend - 1) as usize)
                .map_or(0, |at| at.load(Ordering::Acquire));
            let latency_us = if sent_us > 0 && shared.clock.unix_ms_at(sent_us) == timestamp {
                now_us.saturating_sub(sent_us)
            } else {
                c.coarse.fetch_add(1, Ordering::Relaxed);
                let now_ms = shared.clock.unix_ms_at(now_us);
                now_ms.saturating_sub(timestamp) * 1_000
            };
            if approximate {
                shared.approximate_latency.record_us(latency_us);
                return;
            }
            shared.latency.record_us(latency_us);
            let minute = shared
                .clock
                .unix_ms_at(now_us)
                .saturating_sub(shared.run_start_unix_ms.load(Ordering::Acquire))
                / 60_000;
            if let Some(histogram) = usize::try_from(minute)
                .ok()
                .and_then(|m| shared.latency_by_minute.get(m))
            {
                histogram.record_us(latency_us);
            }
        }
        "friend_gone" if shared.stopping.load(Ordering::Acquire) => {
            c.gone_at_close.fetch_add(1, Ordering::Relaxed);
        }
        "friend_gone" => {
            c.gone.fetch_add(1, Ordering::Relaxed);
        }
        "error" => shared.errors.add(message.code.unwrap_or("(none)")),
        "nearby_friends" => on_snapshot(shared, user, message.friends.as_deref()),
        _ => shared.errors.add("(unknown message type)"),
    }
}

/// One user: connect, then send updates on its schedule and count what arrives, until told
/// to stop.
pub(crate) async fn user_task(
    shared: Arc<Shared>,
    user: u64,
    mut phase: watch::Receiver<Phase>,
    start: watch::Receiver<u64>,
) {
    let args = &shared.args;
    let (circle_index, first, last) = circle_of(user, args.circle, args.users);
    let mut rng = circles::rng(args.seed ^ user.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let centre = circle_centre(args.seed, circle_index);
    let mut offset = {
        // Uniform in the disc around the centre.
        let r = CIRCLE_SPREAD_M * rng.next_f64().sqrt();
        let a = rng.next_f64() * std::f64::consts::TAU;
        (r * a.cos(), r * a.sin())
    };
    let position = |offset: (f64, f64)| Offset {
        east: centre.east + offset.0,
        north: centre.north + offset.1,
    };
    // Friends in the circle, until the connections are known (see held_in_circle).
    let mut friends_of_user = last - first;

    let Some(mut ws) = connect_counted(&shared, user, circle_index, position(offset)).await else {
        return;
    };

    // Updates every `period`, phases staggered so the users together send evenly: user i
    // starts i / rate seconds into the run (modulo the period).
    let period = Duration::from_secs_f64(args.users as f64 / args.rate);
    let mut ticker: Option<tokio::time::Interval> = None;
    let mut sending = false;
    loop {
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = *phase.borrow_and_update();
                match now {
                    Phase::Connecting => {}
                    Phase::Running if !args.idle => {
                        // Every connection has settled by now.
                        if let Some(held) = shared.held_in_circle.get(circle_index as usize) {
                            friends_of_user = held.load(Ordering::Relaxed).saturating_sub(1);
                        }
                        ticker = Some(update_ticker(&shared, user, *start.borrow(), period));
                        sending = true;
                    }
                    Phase::Running => {}
                    Phase::Draining => sending = false,
                    Phase::Stop => break,
                }
            }
            _ = async {
                match ticker.as_mut() {
                    Some(ticker) => ticker.tick().await,
                    None => std::future::pending().await,
                }
            }, if sending => {
                // The tick may win the race against the phase change: no update after the
                // timed phase, or the drain could end before its pushes arrive.
                if *phase.borrow() != Phase::Running {
                    sending = false;
                    continue;
                }
                offset = step(offset, &mut rng);
                send_update(&shared, &mut ws, user, position(offset), friends_of_user).await;
            }
            frame = ws.next() => if !on_frame(&shared, user, frame) {
                shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            },
        }
    }
    // Best effort: the server sees a normal close rather than a reset.
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
}

/// Opens `user`'s connection through the connection gate, counting the outcome; `None` when
/// it failed (counted as such).
async fn connect_counted(
    shared: &Shared,
    user: u64,
    circle_index: u64,
    position: Offset,
) -> Option<Socket> {
    let c = &shared.counters;
    c.attempted.fetch_add(1, Ordering::Relaxed);
    let connected = {
        let permit = shared.connect_gate.acquire().await;
        let outcome = tokio::time::timeout(
            Duration::from_secs_f64(shared.args.connect_timeout.max(0.1)),
            connect(shared, user, position),
        )
        .await
        .unwrap_or_else(|_| Err("timeout".to_owned()));
        drop(permit);
        outcome
    };
    // `settled` last: the run reads `held` once every task has settled.
    match connected {
        Ok(ws) => {
            c.held.fetch_add(1, Ordering::Relaxed);
            if let Some(held) = shared.held_in_circle.get(circle_index as usize) {
                held.fetch_add(1, Ordering::Relaxed);
            }
            c.settled.fetch_add(1, Ordering::Relaxed);
            Some(ws)
        }
        Err(reason) => {
            shared.failures.add(&reason);
            c.failed.fetch_add(1, Ordering::Relaxed);
            c.settled.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// `user`'s update ticks: every `period`, phases staggered so the users together send
/// evenly (user i starts i / rate seconds into the run, modulo the period), late ticks
/// delayed rather than sent in a burst (that would trip the server's rate limit).
fn update_ticker(
    shared: &Shared,
    user: u64,
    run_start_us: u64,
    period: Duration,
) -> tokio::time::Interval {
    let lag = Duration::from_micros(shared.clock.micros().saturating_sub(run_start_us));
    let offset_s = ((user - 1) as f64 / shared.args.rate) % period.as_secs_f64();
    let first_tick = Duration::from_secs_f64(offset_s).saturating_sub(lag);
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + first_tick, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// Sends one location update of `user` and counts the pushes it should cause.
async fn send_update(
    shared: &Shared,
    ws: &mut Socket,
    user: u64,
    position: Offset,
    friends_of_user: u64,
) {
    let c = &shared.counters;
    let now_us = shared.clock.micros();
    // Record the instant before sending: the push can arrive before `send` returns.
    if let Some(at) = shared.sent_at.get((user - 1) as usize) {
        at.store(now_us.max(1), Ordering::Release);
    }
    let timestamp_ms = shared.clock.unix_ms_at(now_us.max(1));
    remember(shared, user, timestamp_ms, position);
    match ws.send(location(position, timestamp_ms)).await {
        Ok(()) => {
            c.updates_sent.fetch_add(1, Ordering::Relaxed);
            if approximate_sharer(user, shared.args.approximate_share) {
                c.approximate_updates_sent.fetch_add(1, Ordering::Relaxed);
                c.approximate_pair_updates
                    .fetch_add(friends_of_user, Ordering::Relaxed);
            } else {
                c.expected.fetch_add(friends_of_user, Ordering::Relaxed);
            }
        }
        Err(_) => {
            c.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Handles one frame read from `user`'s socket; false when the connection ended (its close
/// code tallied).
fn on_frame(
    shared: &Shared,
    user: u64,
    frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> bool {
    match frame {
        Some(Ok(Message::Text(text))) => {
            match serde_json::from_str::<Incoming<'_>>(text.as_str()) {
                Ok(message) => on_message(shared, user, &message),
                Err(_) => shared.errors.add("(unparsable frame)"),
            }
            true
        }
        Some(Ok(Message::Close(frame))) => {
            let code = frame.map_or(1005, |f| u16::from(f.code));
            shared.closes.add(&code.to_string());
            false
        }
        Some(Ok(_)) => true,
        Some(Err(_)) | None => {
            shared.closes.add("(dropped)");
            false
        }
    }
}
