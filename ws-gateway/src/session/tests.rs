//! The session end to end through a test socket (a channel in, a vector out) and the
//! in-memory stores: what the transport does with what the pure parts decide.

use super::*;
use crate::approximate;
use crate::clock;
use crate::friends::{FriendStore, Precision};
use crate::gateway::{Authenticator, Backend, GatewayConfig};
use crate::protocol::CLOSE_UNRESPONSIVE;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

struct IdIsToken;

impl Authenticator for IdIsToken {
    fn authenticate(&self, token: &str) -> Result<u64, String> {
        token.parse().map_err(|_| "not a user id".to_owned())
    }
}

/// A socket made of a channel in and a vector out; `stuck` makes every write pend forever
/// (a client that stopped reading, with full buffers).
struct TestSocket {
    incoming: mpsc::Receiver<Message>,
    sent: Arc<Mutex<Vec<Message>>>,
    stuck: bool,
}

impl Stream for TestSocket {
    type Item = Result<Message, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.incoming.poll_recv(cx).map(|m| m.map(Ok))
    }
}

impl Sink<Message> for TestSocket {
    type Error = axum::Error;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        if self.stuck {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), axum::Error> {
        self.sent.lock().unwrap().push(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        self.poll_ready(cx)
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        Poll::Ready(Ok(()))
    }
}

struct Client {
    tx: mpsc::Sender<Message>,
    sent: Arc<Mutex<Vec<Message>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    async fn open(gateway: &Gateway, user: u64, stuck: bool) -> Client {
        let log_cursor = gateway.audience().cursor();
        let start = Start {
            user,
            audience: gateway.friends().audience(user).await.unwrap(),
            log_cursor,
        };
        Client::open_with(gateway, start, stuck)
    }

    fn open_with(gateway: &Gateway, start: Start, stuck: bool) -> Client {
        Client::open_with_clock(gateway, start, stuck, Clock::system())
    }

    fn open_with_clock(gateway: &Gateway, start: Start, stuck: bool, clock: Clock) -> Client {
        let (tx, incoming) = mpsc::channel(16);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let socket = TestSocket {
            incoming,
            sent: Arc::clone(&sent),
            stuck,
        };
        let task = tokio::spawn(run_with_clock(gateway.clone(), start, socket, clock));
        Client { tx, sent, task }
    }

    async fn locate(&self, lat: f64, lng: f64) {
        let text = format!(r#"{{"type":"location","latitude":{lat},"longitude":{lng}}}"#);
        self.tx.send(Message::Text(text.into())).await.unwrap();
    }

    /// Waits (at most 5 s) until at least `count` text messages were sent, then returns
    /// every one as JSON; panics with what was sent when they do not come.
    async fn sent(&self, count: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{count} messages expected, sent: {messages:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

impl Client {
    /// Every text message sent so far, as JSON.
    fn messages(&self) -> Vec<serde_json::Value> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter_map(|m| match m {
                Message::Text(text) => serde_json::from_str(text.as_str()).ok(),
                _ => None,
            })
            .collect()
    }

    /// Waits (at most `limit`) for a message matching `wanted` at index `from` or later;
    /// panics with everything sent when none comes.
    async fn wait_for(
        &self,
        from: usize,
        limit: Duration,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(found) = self.messages().into_iter().skip(from).find(&wanted) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no matching message within {limit:?}; sent: {:?}",
                self.messages()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Client {
    /// Asserts absence with a sentinel: waits for a message matching `sentinel` (caused
    /// after the window in which `leak` must not happen, through the same bus and mailbox
    /// a leak would take, so it cannot overtake one), then asserts that no message from
    /// index `from` on matches `leak`. A leak however late, up to the sentinel, fails.
    async fn no_leak_until_sentinel(
        &self,
        from: usize,
        sentinel: impl Fn(&serde_json::Value) -> bool,
        leak: impl Fn(&serde_json::Value) -> bool,
    ) {
        self.wait_for(from, Duration::from_secs(2), sentinel).await;
        let leaked: Vec<_> = self
            .messages()
            .into_iter()
            .skip(from)
            .filter(|m| leak(m))
            .collect();
        assert!(leaked.is_empty(), "leaked before the sentinel: {leaked:?}");
    }
}

fn is_location_of(user: u64) -> impl Fn(&serde_json::Value) -> bool {
    move |m| m["type"] == "friend_location" && m["user_id"] == user
}

fn is_gone(user: u64) -> impl Fn(&serde_json::Value) -> bool {
    move |m| m["type"] == "friend_gone" && m["user_id"] == user
}

/// A friend's node that keeps publishing whatever it was told: the revoker's location
/// goes out on the bus as if their own node had missed the change.
async fn publish_from_elsewhere(gateway: &Gateway, user: u64, step: u32) {
    let fix = Fix {
        position: LatLng::new(10.0, 20.0 + 0.000_1 * f64::from(step)).unwrap(),
        timestamp_ms: clock::now_ms(),
    };
    gateway.cache().set(user, fix).await.unwrap();
    gateway
        .bus()
        .publish(Topic::Location(user), Event::Location(fix))
        .await
        .unwrap();
}

/// Publishes `user` every 100 ms for `span`, then returns.
async fn keep_publishing(gateway: &Gateway, user: u64, span: Duration) {
    let started = Instant::now();
    let mut step = 0;
    while started.elapsed() < span {
        publish_from_elsewhere(gateway, user, step).await;
        step += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn fast_audience() -> GatewayConfig {
    GatewayConfig {
        audience: crate::audience::AudienceConfig {
            poll_interval: Duration::from_millis(50),
            max_staleness: Duration::from_millis(300),
            ..crate::audience::AudienceConfig::default()
        },
        ..GatewayConfig::default()
    }
}

fn memory(gateway: &Gateway) -> &crate::friends::MemoryFriends {
    match gateway.friends() {
        FriendStore::Memory(store) => store,
        FriendStore::Postgres(_) => unreachable!("the tests use the memory store"),
    }
}

const GHOST: Sharing = Sharing {
    enabled: false,
    until_ms: None,
    precision: Precision::Exact,
};

#[tokio::test(start_paused = true)]
async fn a_failed_reread_is_retried_and_the_friend_is_withheld_meanwhile() {
    let gateway = gateway(fast_audience(), &[(1, 2), (1, 3)]).await;
    let alice = Client::open(&gateway, 1, false).await;
    alice.locate(10.0, 20.0).await;
    alice
        .wait_for(0, Duration::from_secs(2), |m| m["type"] == "nearby_friends")
        .await;
    publish_from_elsewhere(&gateway, 2, 0).await;
    alice
        .wait_for(0, Duration::from_secs(2), is_location_of(2))
        .await;

    // Bob turns ghost mode on; the first five re-reads of what he grants Alice fail (a
    // database blip), and his node never learns of it (his locations keep coming).
    memory(&gateway).faults.lock().unwrap().failing_reads = 5;
    gateway.friends().set_sharing(2, GHOST).await.unwrap();
    let changed = Instant::now();
    tokio::time::sleep(Duration::from_millis(150)).await; // a poll of the log, and margin
    let after_change = alice.messages().len();
    keep_publishing(&gateway, 2, Duration::from_millis(2_500)).await;
    // Retried until it succeeded (200 ms apart: about a second of failures)...
    assert_eq!(memory(&gateway).faults.lock().unwrap().failing_reads, 0);
    // ...withholding every one of Bob's 25 updates meanwhile, and after: he is hidden.
    let late: Vec<_> = alice
        .messages()
        .into_iter()
        .skip(after_change)
        .filter(is_location_of(2))
        .collect();
    assert!(
        late.is_empty(),
        "leaked after {:?}: {late:?}",
        changed.elapsed()
    );
    alice.wait_for(0, Duration::from_secs(1), is_gone(2)).await;
    assert!(gateway.metrics().withheld.load(Ordering::Relaxed) > 0);
    // Carol moves after all of Bob's updates: nothing of Bob's may come before her.
    publish_at(&gateway, 3, 10.0, 20.001).await;
    alice
        .no_leak_until_sentinel(after_change, is_location_of(3), is_location_of(2))
        .await;
}

#[tokio::test(start_paused = true)]
async fn while_the_audience_log_cannot_be_read_no_location_is_forwarded() {
    let gateway = gateway(fast_audience(), &[(1, 2)]).await;
    let alice = Client::open(&gateway, 1, false).await;
    alice.locate(10.0, 20.0).await;
    alice
        .wait_for(0, Duration::from_secs(2), |m| m["type"] == "nearby_friends")
        .await;
    publish_from_elsewhere(&gateway, 2, 0).await;
    alice
        .wait_for(0, Duration::from_secs(2), is_location_of(2))
        .await;

    // The store is unreachable: a revocation could be waiting there unseen, so after the
    // staleness bound the node forwards nothing.
    memory(&gateway).faults.lock().unwrap().log_down = true;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stale_from = alice.messages().len();
    keep_publishing(&gateway, 2, Duration::from_millis(1_500)).await;
    let leaked: Vec<_> = alice
        .messages()
        .into_iter()
        .skip(stale_from)
        .filter(is_location_of(2))
        .collect();
    assert!(leaked.is_empty(), "forwarded while stale: {leaked:?}");
    assert!(gateway.metrics().withheld.load(Ordering::Relaxed) >= 10);

    // Readable again: updates flow within a poll or two. They are sent from another
    // latitude, so the first update of Bob's after the outage must come from there: one
    // that was withheld must not come out late either.
    memory(&gateway).faults.lock().unwrap().log_down = false;
    let recovered_from = alice.messages().len();
    let flowing = async {
        let mut step = 100;
        loop {
            publish_at(&gateway, 2, 10.01, 20.0 + 0.000_1 * f64::from(step)).await;
            step += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            if alice
                .messages()
                .iter()
                .skip(recovered_from)
                .any(is_location_of(2))
            {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(2), flowing)
        .await
        .expect("updates flow again once the log is read");
    let first_after = alice
        .messages()
        .into_iter()
        .skip(stale_from)
        .find(is_location_of(2));
    assert!(
        first_after.as_ref().is_some_and(|m| m["latitude"] == 10.01),
        "a withheld update came out: {first_after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_that_cannot_be_trusted_says_unavailable_and_comes_later() {
    let gateway = gateway(fast_audience(), &[(1, 2)]).await;
    publish_from_elsewhere(&gateway, 2, 0).await;
    let alice = Client::open(&gateway, 1, false).await;
    memory(&gateway).faults.lock().unwrap().log_down = true;
    tokio::time::sleep(Duration::from_millis(400)).await;
    alice.locate(10.0, 20.0).await;
    let refused = alice
        .wait_for(0, Duration::from_secs(2), |m| m["type"] == "error")
        .await;
    assert_eq!(refused["code"], "unavailable", "{refused}");
    assert!(
        !alice
            .messages()
            .iter()
            .any(|m| m["type"] == "nearby_friends"),
        "no empty list that reads as 'nobody nearby'"
    );
    memory(&gateway).faults.lock().unwrap().log_down = false;
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await; // the location rate
    alice.locate(10.0, 20.0).await;
    let snapshot = alice
        .wait_for(0, Duration::from_secs(2), |m| m["type"] == "nearby_friends")
        .await;
    assert_eq!(snapshot["friends"][0]["user_id"], 2, "{snapshot}");
}

#[tokio::test(start_paused = true)]
async fn a_change_between_the_load_and_the_subscription_is_applied() {
    let gateway = gateway(fast_audience(), &[(1, 2), (1, 3)]).await;
    // The upgrade notes the cursor and reads Alice's friends (Bob among them)...
    let log_cursor = gateway.audience().cursor();
    let audience = gateway.friends().audience(1).await.unwrap();
    assert_eq!(audience.friends.len(), 2);
    // ...then Bob unfriends her, and the watcher reads that while no session of hers
    // exists to be told.
    gateway.friends().remove(2, 1).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while gateway.audience().cursor() <= log_cursor {
        assert!(
            Instant::now() < deadline,
            "the watcher never read the change"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    publish_from_elsewhere(&gateway, 2, 0).await;
    let alice = Client::open_with(
        &gateway,
        Start {
            user: 1,
            audience,
            log_cursor,
        },
        false,
    );
    alice.locate(10.0, 20.0).await;
    let snapshot = alice
        .wait_for(0, Duration::from_secs(2), |m| m["type"] == "nearby_friends")
        .await;
    assert_eq!(snapshot["friends"], serde_json::json!([]), "{snapshot}");
    keep_publishing(&gateway, 2, Duration::from_millis(1_500)).await;
    publish_at(&gateway, 3, 10.0, 20.001).await;
    alice
        .no_leak_until_sentinel(0, is_location_of(3), is_location_of(2))
        .await;
    assert!(!gateway.hub().has_subscribers(Topic::Location(2)));
}

async fn publish_at(gateway: &Gateway, user: u64, lat: f64, lng: f64) {
    let fix = Fix {
        position: LatLng::new(lat, lng).unwrap(),
        timestamp_ms: clock::now_ms(),
    };
    gateway.cache().set(user, fix).await.unwrap();
    gateway
        .bus()
        .publish(Topic::Location(user), Event::Location(fix))
        .await
        .unwrap();
}

fn set(precision: Precision, until_ms: Option<i64>) -> Option<crate::friends::FriendSetting> {
    Some(crate::friends::FriendSetting {
        precision,
        until_ms,
    })
}

#[tokio::test(start_paused = true)]
async fn an_approximate_viewer_sees_cell_centres_and_only_changes_of_cell() {
    let gateway = gateway(fast_audience(), &[(1, 2)]).await;
    gateway
        .friends()
        .set_friend_setting(2, 1, set(Precision::Approximate, None))
        .await
        .unwrap();
    let alice = Client::open(&gateway, 1, false).await;
    alice.locate(48.8566, 2.3522).await;
    alice
        .wait_for(0, Duration::from_secs(2), |m| m["type"] == "nearby_friends")
        .await;
    // Bob walks 3 km east in 30 m steps.
    let mut sent = Vec::new();
    for step in 0..100 {
        let (lat, lng) = (48.86, 2.34 + 0.000_41 * f64::from(step));
        publish_at(&gateway, 2, lat, lng).await;
        sent.push((lat, lng));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen: Vec<serde_json::Value> = alice
        .messages()
        .into_iter()
        .filter(is_location_of(2))
        .collect();
    assert!(!seen.is_empty());
    assert!(
        seen.len() <= 6,
        "one message per cell entered, not per step: {seen:?}"
    );
    for message in &seen {
        assert_eq!(message["precision"], "approximate", "{message}");
        let accuracy = message["accuracy_m"].as_f64().unwrap();
        assert!((1_000.0..2_000.0).contains(&accuracy), "{message}");
        let shown = LatLng::new(
            message["latitude"].as_f64().unwrap(),
            message["longitude"].as_f64().unwrap(),
        )
        .unwrap();
        // A cell centre, never one of Bob's positions.
        assert_eq!(
            approximate::centre(approximate::cell_of(shown)),
            shown,
            "{message}"
        );
        assert!(
            sent.iter()
                .all(|&(lat, lng)| (lat, lng) != (shown.lat(), shown.lng())),
            "{message}"
        );
        // Distance measured from the centre.
        let me = LatLng::new(48.8566, 2.3522).unwrap();
        let distance = message["distance_m"].as_f64().unwrap();
        assert!((distance - me.distance_m(shown)).abs() < 0.1, "{message}");
    }
    assert!(seen.len() >= 2, "a 3 km walk changes cell: {seen:?}");
}

#[tokio::test(start_paused = true)]
async fn hidden_sends_friend_gone_and_nothing_more_and_keeps_out_of_snapshots() {
    let gateway = gateway(fast_audience(), &[(1, 2), (1, 3), (1, 4)]).await;
    publish_at(&gateway, 3, 10.0, 20.001).await;
    let alice = Client::open(&gateway, 1, false).await;
    alice.locate(10.0, 20.0).await;
    alice
        .wait_for(0, Duration::from_secs(2), |m| m["type"] == "nearby_friends")
        .await;
    publish_from_elsewhere(&gateway, 2, 0).await;
    alice
        .wait_for(0, Duration::from_secs(2), is_location_of(2))
        .await;
    gateway
        .friends()
        .set_friend_setting(2, 1, set(Precision::Hidden, None))
        .await
        .unwrap();
    gateway
        .friends()
        .set_friend_setting(3, 1, set(Precision::Hidden, None))
        .await
        .unwrap();
    alice.wait_for(0, Duration::from_secs(1), is_gone(2)).await;
    let after = alice.messages().len();
    keep_publishing(&gateway, 2, Duration::from_millis(1_500)).await;
    publish_at(&gateway, 3, 10.0, 20.002).await;
    // Dan, who shares, moves last: nothing of Bob's or Carol's may come before him.
    publish_at(&gateway, 4, 10.0, 20.003).await;
    alice
        .no_leak_until_sentinel(after, is_location_of(4), |m| {
            m["user_id"] == 2 || m["user_id"] == 3
        })
        .await;
    // A second device of Alice's: its snapshot has neither (only Dan).
    let phone = Client::open(&gateway, 1, false).await;
    phone.locate(10.0, 20.0).await;
    let snapshot = phone
        .wait_for(0, Duration::from_secs(2), |m| m["type"] == "nearby_friends")
        .await;
    let ids: Vec<_> = snapshot["friends"]
        .as_array()
        .map(|friends| friends.iter().map(|f| f["user_id"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(ids, vec![serde_json::json!(4)], "{snapshot}");
}

// On the wall clock on purpose: the setting's `until` is Unix time read through the system
// clock, end to end (store, session, timer); `a_session_reads_the_time_from_its_clock`
// covers the same rule on virtual time.
#[tokio::test]
async fn a_setting_that_expires_into_a_narrower_default_narrows_on_time() {
    let gateway = gateway(fast_audience(), &[(1, 2)]).await;
    let approximate_default = Sharing {
        precision: Precision::Approximate,
        ..Sharing::default()
    };
    gateway
        .friends()
        .set_sharing(2, approximate_default)
        .await
        .unwrap();
    let until = clock::now_ms() + 1_000;
    gateway
        .friends()
        .set_friend_setting(2, 1, set(Precision::Exact, Some(until)))
        .await
        .unwrap();
    let alice = Client::open(&gateway, 1, false).await;
    alice.locate(10.0, 20.0).await;
    alice
        .wait_for(0, Duration::from_secs(2), |m| m["type"] == "nearby_friends")
        .await;
    publish_from_elsewhere(&gateway, 2, 0).await;
    let exact = alice
        .wait_for(0, Duration::from_secs(2), is_location_of(2))
        .await;
    assert_eq!(exact["precision"], "exact", "{exact}");
    // Past `until` (no change in the store, no message on the bus): the next message
    // about Bob is approximate, pushed by the session's own timer, and so is every later one.
    let publishing = keep_publishing(&gateway, 2, Duration::from_millis(2_000));
    let started = Instant::now();
    publishing.await;
    let messages = alice.messages();
    let first_approximate = messages
        .iter()
        .position(|m| is_location_of(2)(m) && m["precision"] == "approximate")
        .expect("narrowed to approximate");
    let exact_after: Vec<_> = messages
        .iter()
        .skip(first_approximate)
        .filter(|m| is_location_of(2)(m) && m["precision"] == "exact")
        .collect();
    assert!(exact_after.is_empty(), "{exact_after:?}");
    assert!(started.elapsed() >= Duration::from_millis(1_500));
    assert!(clock::now_ms() > until);
}

#[tokio::test(start_paused = true)]
async fn a_session_reads_the_time_from_its_clock() {
    let gateway = gateway(fast_audience(), &[(1, 2)]).await;
    // Bob hides from Alice for an hour of the wall clock; Alice's session runs on a clock
    // that starts a second before the hour is up.
    let until = clock::now_ms() + 3_600_000;
    gateway
        .friends()
        .set_friend_setting(2, 1, set(Precision::Hidden, Some(until)))
        .await
        .unwrap();
    let log_cursor = gateway.audience().cursor();
    let start = Start {
        user: 1,
        audience: gateway.friends().audience(1).await.unwrap(),
        log_cursor,
    };
    let opened = Instant::now();
    let alice = Client::open_with_clock(
        &gateway,
        start,
        false,
        Clock::following_tokio(until - 1_000),
    );
    alice.locate(10.0, 20.0).await;
    alice
        .wait_for(0, Duration::from_secs(2), |m| m["type"] == "nearby_friends")
        .await;
    publish_from_elsewhere(&gateway, 2, 0).await;
    // Withheld until the session's clock passes `until`, then shown by its own timer.
    alice
        .wait_for(0, Duration::from_secs(2), is_location_of(2))
        .await;
    assert!(
        opened.elapsed() >= Duration::from_millis(900),
        "{:?}",
        opened.elapsed()
    );
    assert!(gateway.metrics().withheld.load(Ordering::Relaxed) >= 1);
}

async fn gateway(config: GatewayConfig, pairs: &[(u64, u64)]) -> Gateway {
    let friends = FriendStore::memory();
    friends.seed(pairs).await.unwrap();
    Gateway::start(config, IdIsToken, friends, Backend::Local, None)
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_friend_moving_is_pushed_and_a_stranger_is_not() {
    let gateway = gateway(GatewayConfig::default(), &[(1, 2)]).await;
    let alice = Client::open(&gateway, 1, false).await;
    let bob = Client::open(&gateway, 2, false).await;
    let stranger = Client::open(&gateway, 3, false).await;
    alice.locate(10.0, 20.0).await;
    assert_eq!(alice.sent(1).await[0]["type"], "nearby_friends");
    stranger.locate(10.0, 20.0).await;
    bob.locate(10.001, 20.0).await;
    let to_bob = bob.sent(1).await;
    assert_eq!(to_bob[0]["friends"][0]["user_id"], 1);
    let to_alice = alice.sent(2).await;
    assert_eq!(to_alice[1]["type"], "friend_location");
    assert_eq!(to_alice[1]["user_id"], 2);
    // The stranger's own error, asked for after Bob's move reached Alice: nothing about
    // Bob may come before it.
    stranger
        .tx
        .send(Message::Binary(Default::default()))
        .await
        .unwrap();
    let to_stranger = stranger.sent(2).await;
    assert_eq!(to_stranger.len(), 2, "{to_stranger:?}");
    assert_eq!(
        to_stranger[1]["code"], "unsupported_frame",
        "{to_stranger:?}"
    );
    drop(bob.tx);
    bob.task.await.unwrap();
    assert_eq!(alice.sent(3).await[2]["type"], "friend_gone");
    assert_eq!(gateway.metrics().sessions.load(Ordering::Relaxed), 2);
}

#[tokio::test(start_paused = true)]
async fn a_fix_delivered_again_or_late_is_not_pushed_again() {
    let gateway = gateway(GatewayConfig::default(), &[(1, 2)]).await;
    let alice = Client::open(&gateway, 1, false).await;
    let first = Fix {
        position: LatLng::new(10.001, 20.0).unwrap(),
        timestamp_ms: clock::now_ms(),
    };
    gateway.cache().set(2, first).await.unwrap();
    alice.locate(10.0, 20.0).await;
    let snapshot = alice.sent(1).await;
    assert_eq!(snapshot[0]["friends"][0]["user_id"], 2, "{snapshot:?}");
    // The fix the snapshot showed arrives again, then an older one: both are dropped.
    let older = Fix {
        position: LatLng::new(10.002, 20.0).unwrap(),
        timestamp_ms: first.timestamp_ms - 1_000,
    };
    // (One at a time: the mailbox keeps only the latest event per friend.)
    for fix in [first, older, first] {
        gateway
            .bus()
            .publish(Topic::Location(2), Event::Location(fix))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Then a newer one, which must arrive after them: a late duplicate would be seen
    // before it, since the mailbox is read in order.
    let newer = Fix {
        position: LatLng::new(10.003, 20.0).unwrap(),
        timestamp_ms: first.timestamp_ms + 1,
    };
    gateway
        .bus()
        .publish(Topic::Location(2), Event::Location(newer))
        .await
        .unwrap();
    let pushed = alice
        .wait_for(1, Duration::from_secs(5), is_location_of(2))
        .await;
    assert_eq!(pushed["latitude"], 10.003, "{:?}", alice.messages());
    // And a newer one still, as the sentinel: nothing may come between the two, however late.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let newest = Fix {
        position: LatLng::new(10.004, 20.0).unwrap(),
        timestamp_ms: first.timestamp_ms + 2,
    };
    gateway
        .bus()
        .publish(Topic::Location(2), Event::Location(newest))
        .await
        .unwrap();
    let messages = alice.sent(3).await;
    let latitudes: Vec<_> = messages
        .iter()
        .skip(1)
        .map(|m| m["latitude"].clone())
        .collect();
    assert_eq!(
        latitudes,
        [serde_json::json!(10.003), serde_json::json!(10.004)],
        "{messages:?}"
    );
}

// Paused time: the clock moves only when every task waits, so the timings below are exact
// (the session talks to an in-memory socket; nothing waits on real I/O).
#[tokio::test(start_paused = true)]
async fn a_connection_that_never_sends_anything_is_closed_after_the_idle_timeout() {
    let config = GatewayConfig {
        ping_interval: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(25),
        ..GatewayConfig::default()
    };
    let gateway = gateway(config, &[]).await;
    let opened = tokio::time::Instant::now();
    let silent = Client::open(&gateway, 1, false).await;
    // Pinged at 10 s and 20 s without an answer; at the 30 s ping it has been silent past
    // the 25 s idle timeout: closed with 1001, and the session is gone.
    tokio::time::timeout(Duration::from_secs(120), silent.task)
        .await
        .expect("the session ends")
        .unwrap();
    let lived = opened.elapsed();
    assert!(
        lived >= Duration::from_secs(25) && lived <= Duration::from_secs(31),
        "closed after {lived:?}"
    );
    let sent = silent.sent.lock().unwrap().clone();
    let pings = sent
        .iter()
        .filter(|m| matches!(m, Message::Ping(_)))
        .count();
    assert_eq!(pings, 2, "{sent:?}");
    match sent.last() {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CLOSE_UNRESPONSIVE),
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert_eq!(gateway.metrics().sessions.load(Ordering::Relaxed), 0);
    assert_eq!(
        gateway
            .metrics()
            .closed_unresponsive
            .load(Ordering::Relaxed),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_stuck_client_is_disconnected_and_its_backlog_coalesces() {
    let config = GatewayConfig {
        send_timeout: Duration::from_millis(200),
        location_burst: 10,
        ..GatewayConfig::default()
    };
    let gateway = gateway(config, &[(1, 2)]).await;
    let stuck = Client::open(&gateway, 1, true).await;
    let mover = Client::open(&gateway, 2, false).await;
    stuck.locate(0.0, 0.0).await; // its snapshot cannot be written
    for step in 0..8 {
        mover.locate(0.0, 0.0001 * f64::from(step)).await;
    }
    tokio::time::timeout(Duration::from_secs(5), stuck.task)
        .await
        .expect("the stuck session ends")
        .unwrap();
    let metrics = gateway.metrics();
    assert_eq!(metrics.closed_unresponsive.load(Ordering::Relaxed), 1);
    // While it was stuck, the mover's updates replaced one another in its mailbox.
    assert!(metrics.coalesced.load(Ordering::Relaxed) >= 4);
    assert_eq!(metrics.sessions.load(Ordering::Relaxed), 1);
    // Nothing was written to it, and the hub no longer holds its mailbox.
    assert!(stuck.sent.lock().unwrap().is_empty());
    assert!(!gateway.hub().has_subscribers(Topic::Location(2)));
}
