//! The PostgreSQL + PostGIS store, against a throwaway server per test (see
//! `support/postgres.rs`): migrations, the store's operations, the HTTP API end to end, the
//! change feed between two nodes, COPY import, restart, and the database going away.

#![allow(clippy::unwrap_used)]

mod support;

use axum::Router;
use axum::body::Body;
use http_body_util::BodyExt;
use nearby_services::api;
use nearby_services::auth::{Secret, unix_now};
use nearby_services::business::{Business, BusinessId, Category, Name, position};
use nearby_services::state::{AppState, Limits};
use nearby_services::store::{PgStore, Store};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::postgres::TestPostgres;
use tokio::task::JoinHandle;
use tower::ServiceExt;

fn secret() -> Secret {
    Secret::new(vec![7; 32]).expect("32-byte secret")
}

fn admin_token() -> String {
    secret().mint(1, true, 3_600, unix_now())
}

fn business(id: &str, name: &str, lat: f64, lng: f64, category: Option<&str>) -> Business {
    Business {
        id: BusinessId::new(id).expect("valid test id"),
        name: Name::new(name).expect("valid test name"),
        position: position(lat, lng).expect("valid test position"),
        category: category.map(|c| Category::new(c).expect("valid test category")),
    }
}

/// Equality including the coordinates' exact bits (`==` on doubles calls -0.0 and 0.0 equal).
fn assert_same(got: &Business, want: &Business) {
    assert_eq!(got, want);
    assert_eq!(
        got.position.lat().to_bits(),
        want.position.lat().to_bits(),
        "{}",
        want.id
    );
    assert_eq!(
        got.position.lng().to_bits(),
        want.position.lng().to_bits(),
        "{}",
        want.id
    );
}

/// A node: its state, router and change-feed task, ready (first snapshot installed).
struct Node {
    state: AppState,
    app: Router,
    feed: JoinHandle<()>,
}

impl Node {
    async fn start(url: &str) -> Node {
        let store = PgStore::connect(url)
            .await
            .expect("connect to the test database");
        let state = AppState::new(Store::Postgres(store.clone()), secret(), Limits::default());
        let feed = tokio::spawn(state.clone().follow(store.change_feed()));
        wait_until("the node is ready", Duration::from_secs(15), || {
            state.is_ready()
        })
        .await;
        Node {
            app: api::app(state.clone()),
            state,
            feed,
        }
    }

    async fn send(&self, method: &str, uri: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = axum::http::Request::builder().method(method).uri(uri);
        if method != "GET" {
            request = request.header("authorization", format!("Bearer {}", admin_token()));
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("a well-formed request");
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("the body reads")
            .to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, value)
    }

    /// Ids found within 1 km of the point.
    async fn search(&self, lat: f64, lng: f64) -> Vec<String> {
        let (status, body) = self
            .send(
                "GET",
                &format!("/v1/search/nearby?latitude={lat}&longitude={lng}&radius=1000&limit=100"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["businesses"]
            .as_array()
            .expect("a businesses array")
            .iter()
            .map(|hit| hit["id"].as_str().expect("a string id").to_owned())
            .collect()
    }

    fn held(&self) -> BTreeMap<String, Business> {
        self.state
            .catalog()
            .iter()
            .map(|b| (b.id.to_string(), b.clone()))
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.feed.abort();
    }
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

/// Changes the node has applied from its change feed (its Prometheus counter).
fn change_feed_events(state: &AppState) -> u64 {
    state
        .metrics()
        // `Default::default()`: zero businesses; the figures are not what is read here.
        .render(Default::default())
        .lines()
        .find_map(|line| line.strip_prefix("nearby_change_feed_events_total "))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

/// Everything in the database, by id.
async fn stored(store: &PgStore) -> BTreeMap<String, (Business, i64)> {
    store
        .load_all()
        .await
        .expect("load_all")
        .into_iter()
        .map(|(b, r)| (b.id.to_string(), (b, r)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_to_an_empty_database() {
    let db = TestPostgres::start();
    let store = PgStore::connect(&db.url()).await.unwrap();
    let pool = store.pool();
    let postgis: Option<String> =
        sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")
            .fetch_optional(pool)
            .await
            .unwrap();
    assert!(postgis.is_some(), "postgis is installed");
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, udt_name::text FROM information_schema.columns \
         WHERE table_name = 'businesses' ORDER BY ordinal_position",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let columns: Vec<(&str, &str)> = columns
        .iter()
        .map(|(c, t)| (c.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        columns,
        [
            ("id", "text"),
            ("name", "text"),
            ("category", "text"),
            ("location", "geography"),
            ("revision", "int8")
        ]
    );
    let gist: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'businesses' AND indexdef LIKE '%USING gist (location)%'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(gist, 1);
    let triggers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'businesses'::regclass AND NOT tgisinternal",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(triggers, 3);
    // The id check holds even for writes that bypass the service.
    let too_long = sqlx::query(
        "INSERT INTO businesses (id, name, location) VALUES (repeat('x', 65), 'n', 'POINT(0 0)')",
    )
    .execute(pool)
    .await;
    assert!(too_long.is_err());
    assert!(store.load_all().await.unwrap().is_empty());

    // Connecting again finds the schema up to date.
    let again = PgStore::connect(&db.url()).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(again.pool())
        .await
        .unwrap();
    assert_eq!(applied, 4, "every migration in services/migrations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_upsert_delete_round_trip_with_revisions() {
    let db = TestPostgres::start();
    let store = PgStore::connect(&db.url()).await.unwrap();

    let a = business(
        "a",
        "Café \"Zéro\", \\ 東京",
        48.85660000000001,
        2.352199999999999,
        Some("cafe"),
    );
    let r1 = store.create(&a).await.unwrap().expect("a is new");
    assert_eq!(
        store.create(&a).await.unwrap(),
        None,
        "a second create is a conflict"
    );
    let all = stored(&store).await;
    assert_eq!(all.len(), 1);
    assert_same(&all["a"].0, &a);
    assert_eq!(all["a"].1, r1);

    let moved = business("a", "Zéro", -89.99999999999999, 179.99999999999997, None);
    let (r2, created) = store.upsert(&moved).await.unwrap();
    assert!(!created && r2 > r1);
    let b = business("b", "B", 0.1 + 0.2, -(1.0 / 3.0), None);
    let (r3, created) = store.upsert(&b).await.unwrap();
    assert!(created && r3 > r2);
    let all = stored(&store).await;
    assert_same(&all["a"].0, &moved);
    assert_same(&all["b"].0, &b);
    assert_eq!((all["a"].1, all["b"].1), (r2, r3));

    // A delete reports the revision of the row it deleted.
    assert_eq!(store.delete(&moved.id).await.unwrap(), Some(r2));
    assert_eq!(store.delete(&moved.id).await.unwrap(), None);
    // A re-create after a delete gets a newer revision than the tombstone.
    let r4 = store.create(&a).await.unwrap().expect("a is gone");
    assert!(r4 > r2);

    // Coordinates come back bit for bit, extremes included.
    let edges = [
        (90.0, 180.0),
        (-90.0, -180.0),
        (0.0, -0.0),
        (1e-300, -5e-324),
        (12.345678901234567, -98.76543210987654),
        (45.00000000000001, 7.000000000000001),
    ];
    let mut want = Vec::new();
    for (i, (lat, lng)) in edges.into_iter().enumerate() {
        let edge = business(&format!("edge-{i}"), "Edge", lat, lng, None);
        store.create(&edge).await.unwrap().unwrap();
        want.push(edge);
    }
    let all = stored(&store).await;
    for edge in &want {
        assert_same(&all[edge.id.as_str()].0, edge);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_end_to_end_against_postgis() {
    let db = TestPostgres::start();
    let node = Node::start(&db.url()).await;
    let store = PgStore::connect(&db.url()).await.unwrap();

    let body = json!({"id": "louvre", "name": "Louvre", "latitude": 48.8606, "longitude": 2.3376, "category": "museum"});
    let (status, created) = node
        .send("POST", "/v1/businesses", Some(body.clone()))
        .await;
    assert_eq!(status, 201, "{created}");
    // Visible to the very next search on this node, without waiting for the change feed.
    assert_eq!(node.search(48.8606, 2.3376).await, ["louvre"]);
    assert_eq!(stored(&store).await["louvre"].0.name.as_str(), "Louvre");

    let (status, conflict) = node.send("POST", "/v1/businesses", Some(body)).await;
    assert_eq!(status, 409);
    assert_eq!(conflict["error"]["code"], "conflict");

    let (status, replaced) = node
        .send(
            "PUT",
            "/v1/businesses/louvre",
            Some(json!({"name": "Musée du Louvre", "latitude": 48.8611, "longitude": 2.3364})),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    let (status, read) = node.send("GET", "/v1/businesses/louvre", None).await;
    assert_eq!(
        (status, read["name"].as_str()),
        (200, Some("Musée du Louvre"))
    );
    assert_eq!(read["category"], Value::Null);
    let in_db = &stored(&store).await["louvre"].0;
    assert_eq!(in_db.name.as_str(), "Musée du Louvre");
    assert_eq!(in_db.position.lat(), 48.8611);

    let (status, _) = node
        .send(
            "PUT",
            "/v1/businesses/orsay",
            Some(json!({"name": "Orsay", "latitude": 48.86, "longitude": 2.3266})),
        )
        .await;
    assert_eq!(status, 201);

    let (status, _) = node.send("DELETE", "/v1/businesses/louvre", None).await;
    assert_eq!(status, 204);
    assert_eq!(node.search(48.8611, 2.3364).await, ["orsay"]);
    let (status, _) = node.send("GET", "/v1/businesses/louvre", None).await;
    assert_eq!(status, 404);
    let (status, missing) = node.send("DELETE", "/v1/businesses/louvre", None).await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    assert_eq!(stored(&store).await.keys().collect::<Vec<_>>(), ["orsay"]);

    // The node's own writes come back through the feed too; applying them again is harmless.
    // Four writes succeeded (create, two puts, delete): wait until the feed has applied all
    // four echoes, then compare the node with the database, revisions included.
    wait_until(
        "the node's own four writes came back through the change feed",
        Duration::from_secs(10),
        || change_feed_events(&node.state) >= 4,
    )
    .await;
    assert_eq!(
        change_feed_events(&node.state),
        4,
        "no other change arrived"
    );
    assert_eq!(node.held().keys().collect::<Vec<_>>(), ["orsay"]);
    let rows = stored(&store).await;
    let orsay = BusinessId::new("orsay").unwrap();
    assert_same(&node.held()["orsay"], &rows["orsay"].0);
    assert_eq!(node.state.catalog().revision(&orsay), Some(rows["orsay"].1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_sees_writes_within_a_second() {
    let db = TestPostgres::start();
    let a = Node::start(&db.url()).await;
    let b = Node::start(&db.url()).await;

    let (status, _) = a
        .send(
            "POST",
            "/v1/businesses",
            Some(json!({"id": "shop", "name": "Shop", "latitude": 10.5, "longitude": 20.25})),
        )
        .await;
    assert_eq!(status, 201);
    let seen = wait_until("b sees the create", Duration::from_secs(1), || {
        b.state
            .catalog()
            .get(&BusinessId::new("shop").unwrap())
            .is_some()
    })
    .await;
    assert_eq!(b.search(10.5, 20.25).await, ["shop"]);
    println!("create seen by the second node after {seen:?}");

    let (status, _) = b
        .send(
            "PUT",
            "/v1/businesses/shop",
            Some(json!({"name": "Moved", "latitude": -33.5, "longitude": 151.125})),
        )
        .await;
    assert_eq!(status, 200);
    wait_until("a sees the move", Duration::from_secs(1), || {
        a.state
            .catalog()
            .get(&BusinessId::new("shop").unwrap())
            .is_some_and(|s| s.name.as_str() == "Moved")
    })
    .await;
    assert_eq!(a.search(-33.5, 151.125).await, ["shop"]);
    assert!(a.search(10.5, 20.25).await.is_empty());

    let (status, _) = a.send("DELETE", "/v1/businesses/shop", None).await;
    assert_eq!(status, 204);
    wait_until("b sees the delete", Duration::from_secs(1), || {
        b.state.catalog().is_empty()
    })
    .await;

    let (_, metrics) = b.send("GET", "/metrics", None).await;
    let events = metrics
        .as_str()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("nearby_change_feed_events_total "))
        })
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!(events >= 3, "{events} change feed events");

    // Cut b's listening connection; changes made while it reconnects are caught up.
    let keep = business("keep", "Keep", 1.0, 1.0, None);
    let gone = business("gone", "Gone", 2.0, 2.0, None);
    let store = PgStore::connect(&db.url()).await.unwrap();
    store.create(&keep).await.unwrap().unwrap();
    store.create(&gone).await.unwrap().unwrap();
    wait_until("b sees both", Duration::from_secs(1), || {
        b.state.catalog().len() == 2
    })
    .await;
    let cut: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(cut, 2, "both nodes' listeners");
    store.delete(&gone.id).await.unwrap().unwrap();
    let added = business("added", "Added", 3.0, 3.0, None);
    store.create(&added).await.unwrap().unwrap();
    for node in [&a, &b] {
        wait_until("the node catches up", Duration::from_secs(10), || {
            node.held().keys().map(String::as_str).collect::<Vec<_>>() == ["added", "keep"]
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_with_copy_then_load_all_returns_exactly_the_rows() {
    let db = TestPostgres::start();
    let store = PgStore::connect(&db.url()).await.unwrap();

    // Names exercise COPY's escaping; coordinates use every bit of the double.
    let names = [
        "Plain",
        "Comma, Inc.",
        "Quote \"q\"",
        "Back\\slash",
        "Tab-free ünïcödé 東京",
        "\\N",
        "semi;colon",
    ];
    let categories = [None, Some("cafe"), Some("gas_station")];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1_u64 << 53) as f64
    };
    let mut places: Vec<Business> = (0..3_000)
        .map(|i| {
            business(
                &format!("p:{i:05}"),
                &format!("{} {i}", names[i % names.len()]),
                next() * 180.0 - 90.0,
                next() * 360.0 - 180.0,
                categories[i % categories.len()],
            )
        })
        .collect();
    // A repeated id keeps its last record.
    let repeated = business("p:00007", "Seventh, again", 7.0, 7.0, None);
    places.push(repeated.clone());

    let written = store.import(&places).await.unwrap();
    assert_eq!(written, 3_000);
    let all = stored(&store).await;
    assert_eq!(all.len(), 3_000);
    for place in &places[..3_000] {
        let want = if place.id == repeated.id {
            &repeated
        } else {
            place
        };
        assert_same(&all[place.id.as_str()].0, want);
    }
    let mut revisions: Vec<i64> = all.values().map(|(_, r)| *r).collect();
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(revisions.len(), 3_000, "every row has its own revision");

    // The same file again changes nothing; a changed row gets a new revision.
    assert_eq!(store.import(&places).await.unwrap(), 0);
    let changed = business("p:00100", "Changed", 1.5, 2.5, Some("bar"));
    assert_eq!(
        store.import(std::slice::from_ref(&changed)).await.unwrap(),
        1
    );
    let after = stored(&store).await;
    assert_same(&after["p:00100"].0, &changed);
    assert!(after["p:00100"].1 > all["p:00100"].1);
    assert_eq!(after["p:00200"].1, all["p:00200"].1);

    // A node loads them all.
    let node = Node::start(&db.url()).await;
    assert_eq!(node.state.catalog().len(), 3_000);
    assert_same(&node.held()["p:00100"], &changed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_finds_every_acknowledged_write() {
    let db = TestPostgres::start();
    let mut want: BTreeMap<String, (String, f64, f64)> = BTreeMap::new();
    {
        let node = Node::start(&db.url()).await;
        for i in 0..40 {
            let id = format!("r{i}");
            let (lat, lng) = (
                f64::from(i) * 0.37 - 7.0,
                f64::from(i) * 1.13 + 0.000_000_000_000_1,
            );
            let (status, _) = node
                .send("POST", "/v1/businesses", Some(json!({"id": id, "name": format!("R {i}"), "latitude": lat, "longitude": lng})))
                .await;
            assert_eq!(status, 201);
            want.insert(id, (format!("R {i}"), lat, lng));
        }
        for i in (0..40).step_by(3) {
            let id = format!("r{i}");
            let (status, _) = node
                .send(
                    "PUT",
                    &format!("/v1/businesses/{id}"),
                    Some(json!({"name": "Renamed", "latitude": 1.25, "longitude": -1.25})),
                )
                .await;
            assert_eq!(status, 200);
            want.insert(id, ("Renamed".into(), 1.25, -1.25));
        }
        for i in (0..40).step_by(4) {
            let (status, _) = node
                .send("DELETE", &format!("/v1/businesses/r{i}"), None)
                .await;
            assert_eq!(status, 204);
            want.remove(&format!("r{i}"));
        }
    }
    let node = Node::start(&db.url()).await;
    let got: BTreeMap<String, (String, f64, f64)> = node
        .held()
        .into_iter()
        .map(|(id, b)| {
            (
                id,
                (
                    b.name.as_str().to_owned(),
                    b.position.lat(),
                    b.position.lng(),
                ),
            )
        })
        .collect();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_answer_503_and_change_nothing_while_the_database_is_down() {
    let mut db = TestPostgres::start();
    let node = Node::start(&db.url()).await;
    for (id, lat) in [("x", 0.0), ("y", 0.001)] {
        let (status, _) = node
            .send(
                "PUT",
                &format!("/v1/businesses/{id}"),
                Some(json!({"name": id, "latitude": lat, "longitude": 0.0})),
            )
            .await;
        assert_eq!(status, 201);
    }
    let before = node.held();

    tokio::task::block_in_place(|| db.stop());
    let attempts = [
        (
            "POST",
            "/v1/businesses",
            Some(json!({"id": "z", "name": "Z", "latitude": 0.0, "longitude": 0.0005})),
        ),
        (
            "PUT",
            "/v1/businesses/x",
            Some(json!({"name": "X2", "latitude": 5.0, "longitude": 5.0})),
        ),
        ("DELETE", "/v1/businesses/y", None),
    ];
    for (method, uri, body) in attempts.clone() {
        let (status, error) = node.send(method, uri, body).await;
        assert_eq!(status, 503, "{method} {uri}: {error}");
        assert_eq!(error["error"]["code"], "unavailable", "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("nothing was changed"))
        );
    }
    // Searches and reads are still served from memory, unchanged.
    assert_eq!(node.search(0.0, 0.0).await, ["x", "y"]);
    let (status, _) = node.send("GET", "/v1/businesses/y", None).await;
    assert_eq!(status, 200);
    assert_eq!(node.held(), before);

    // Back up: nothing of the refused writes is in the database, and the node recovers.
    tokio::task::block_in_place(|| db.restart());
    let store = PgStore::connect(&db.url()).await.unwrap();
    let all = stored(&store).await;
    assert_eq!(all.keys().collect::<Vec<_>>(), ["x", "y"]);
    assert_eq!(all["x"].0.name.as_str(), "x");
    // A change made by someone else right after the restart reaches the node, whether its
    // feed is already back or catches up with a reload.
    store
        .delete(&BusinessId::new("y").unwrap())
        .await
        .unwrap()
        .unwrap();
    wait_until("the node catches up", Duration::from_secs(15), || {
        node.held().keys().map(String::as_str).collect::<Vec<_>>() == ["x"]
    })
    .await;
    let (status, _) = node
        .send(
            "POST",
            "/v1/businesses",
            Some(json!({"id": "z", "name": "Z", "latitude": 0.0, "longitude": 0.0005})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(node.search(0.0, 0.0).await, ["x", "z"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friendships_sharing_and_location_history_in_postgres() {
    use nearby_ws_gateway::friends::{FriendError, FriendStore, RequestOutcome, Requests, Sharing};
    use nearby_ws_gateway::friends_pg::PgFriends;

    let db = TestPostgres::start();
    let store = PgStore::connect(&db.url()).await.unwrap();
    let friends = FriendStore::Postgres(PgFriends::new(store.pool().clone()));
    // Ids past i64::MAX survive the BIGINT round trip.
    let (a, b, c) = (1_u64, u64::MAX - 1, 1_u64 << 63);
    assert_eq!(friends.request(a, a).await, Err(FriendError::SelfRequest));
    assert_eq!(
        friends.request(a, b).await.unwrap(),
        RequestOutcome::Pending
    );
    assert_eq!(
        friends.request(a, b).await.unwrap(),
        RequestOutcome::Pending
    );
    assert_eq!(
        friends.requests(b).await.unwrap(),
        Requests {
            incoming: vec![a],
            outgoing: vec![]
        }
    );
    assert!(
        !friends.accept(a, b).await.unwrap(),
        "only the asked side accepts"
    );
    assert!(friends.friends(a).await.unwrap().is_empty());
    assert!(friends.accept(b, a).await.unwrap());
    assert_eq!(friends.friends(a).await.unwrap(), vec![b]);
    assert_eq!(friends.friends(b).await.unwrap(), vec![a]);
    assert_eq!(
        friends.request(b, a).await.unwrap(),
        RequestOutcome::AlreadyFriends
    );
    // Crossing requests make friends at once.
    assert_eq!(
        friends.request(c, a).await.unwrap(),
        RequestOutcome::Pending
    );
    assert_eq!(
        friends.request(a, c).await.unwrap(),
        RequestOutcome::Friends
    );
    assert_eq!(friends.friends(a).await.unwrap(), vec![c, b]);
    assert!(friends.remove(c, a).await.unwrap());
    assert!(!friends.remove(c, a).await.unwrap());
    assert_eq!(friends.friends(a).await.unwrap(), vec![b]);
    assert_eq!(friends.seed(&[(a, b), (b, c), (7, 8)]).await.unwrap(), 2);
    assert_eq!(friends.friends(b).await.unwrap(), vec![a, c]);

    // Sharing: default on, off, off until a time.
    assert_eq!(friends.sharing(a).await.unwrap(), Sharing::default());
    let ghost = Sharing {
        enabled: false,
        until_ms: Some(5_000),
        precision: nearby_ws_gateway::friends::Precision::Approximate,
    };
    friends.set_sharing(b, ghost).await.unwrap();
    assert_eq!(friends.sharing(b).await.unwrap(), ghost);
    let sharing_at = |now| {
        let friends = friends.clone();
        async move {
            let mut users: Vec<u64> = friends
                .sharing_now(&[a, b, c], now)
                .await
                .unwrap()
                .into_iter()
                .collect();
            users.sort_unstable();
            users
        }
    };
    assert_eq!(sharing_at(4_999).await, vec![a, c]);
    assert_eq!(sharing_at(5_000).await, vec![a, c, b]);
    friends.set_sharing(b, Sharing::default()).await.unwrap();
    assert_eq!(friends.sharing(b).await.unwrap(), Sharing::default());

    // History: a live session's locations are written in batches.
    let state = AppState::new(Store::Postgres(store.clone()), secret(), Limits::default());
    let gateway = nearby_ws_gateway::Gateway::start(
        nearby_ws_gateway::GatewayConfig::default(),
        secret(),
        friends.clone(),
        nearby_ws_gateway::Backend::Local,
        Some(store.pool().clone()),
    )
    .await
    .unwrap();
    for (lat, lng) in [(48.85, 2.35), (48.86, 2.36), (-33.9, 151.2)] {
        let fix = nearby_ws_gateway::protocol::Fix {
            position: geo_index::LatLng::new(lat, lng).unwrap(),
            timestamp_ms: 1_790_000_000_000,
        };
        gateway.history().record(b, fix);
    }
    state.attach_gateway(gateway.clone());
    wait_until("history written", Duration::from_secs(10), || {
        gateway
            .metrics()
            .history_written
            .load(std::sync::atomic::Ordering::Relaxed)
            == 3
    })
    .await;
    let rows: Vec<(i64, f64, f64, f64)> = sqlx::query_as(
        "SELECT user_id, ST_Y(location::geometry), ST_X(location::geometry), \
         extract(epoch FROM recorded_at)::float8 FROM location_history ORDER BY ST_Y(location::geometry)",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0].0, -2,
        "u64::MAX - 1 is stored as the BIGINT with the same bits"
    );
    assert_eq!(
        (rows[0].1, rows[0].2, rows[0].3),
        (-33.9, 151.2, 1_790_000_000.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_history_waits_out_a_database_outage() {
    use nearby_ws_gateway::friends::FriendStore;
    use nearby_ws_gateway::friends_pg::PgFriends;
    use std::sync::atomic::Ordering;

    let mut db = TestPostgres::start();
    let store = PgStore::connect(&db.url()).await.unwrap();
    let gateway = nearby_ws_gateway::Gateway::start(
        nearby_ws_gateway::GatewayConfig::default(),
        secret(),
        FriendStore::Postgres(PgFriends::new(store.pool().clone())),
        nearby_ws_gateway::Backend::Local,
        Some(store.pool().clone()),
    )
    .await
    .unwrap();
    let fix = |i: u32| nearby_ws_gateway::protocol::Fix {
        position: geo_index::LatLng::new(f64::from(i) / 1_000.0, 2.0).unwrap(),
        timestamp_ms: 1_790_000_000_000 + i64::from(i),
    };
    db.stop();
    for i in 0..500 {
        gateway.history().record(42, fix(i));
    }
    // Observe the writer failing, then retrying the batch it holds: while it does, nothing is
    // counted as written or dropped.
    wait_until(
        "the history writer failed and retried",
        Duration::from_secs(15),
        || gateway.history().failed_writes() >= 2,
    )
    .await;
    let metrics = gateway.metrics();
    assert_eq!(metrics.history_written.load(Ordering::Relaxed), 0);
    assert_eq!(metrics.history_dropped.load(Ordering::Relaxed), 0);
    assert_eq!(metrics.history_queued.load(Ordering::Relaxed), 500);
    db.restart();
    // What the drain waits for before the process exits.
    assert!(gateway.history_flushed(Duration::from_secs(20)).await);
    assert_eq!(metrics.history_written.load(Ordering::Relaxed), 500);
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT recorded_at) FROM location_history WHERE user_id = 42",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(rows, 500);
    assert_eq!(metrics.history_queued.load(Ordering::Relaxed), 0);
}

/// A `nearby serve --database-url` process on a free port.
struct ServeProcess {
    child: std::process::Child,
    port: u16,
}

impl ServeProcess {
    async fn start(database_url: &str) -> ServeProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_nearby"))
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--database-url", database_url])
            .args(["--secret", std::str::from_utf8(&[7; 32]).unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut process = ServeProcess { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                process.child.try_wait().unwrap().is_none(),
                "nearby exited early"
            );
            if process.call("GET", "/readyz", None, None).await.0 == 200 {
                return process;
            }
            assert!(Instant::now() < deadline, "nearby not ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One HTTP/1.1 request on a fresh connection: status and JSON body (0 if refused).
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return (0, Value::Null);
        };
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if !body.is_empty() {
            request.push_str("Content-Type: application/json\r\n");
        }
        request.push_str("\r\n");
        request.push_str(&body);
        if stream.write_all(request.as_bytes()).await.is_err() {
            return (0, Value::Null);
        }
        let mut response = Vec::new();
        if stream.read_to_end(&mut response).await.is_err() || response.len() < 12 {
            return (0, Value::Null);
        }
        let text = String::from_utf8_lossy(&response);
        let status = text[9..12].parse().unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// SIGKILL: no shutdown path runs, nothing is flushed.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_acknowledged_survives_a_killed_process() {
    let db = TestPostgres::start();
    let secret = Secret::new(vec![7; 32]).unwrap();
    let user = |id: u64| secret.mint(id, false, 3_600, unix_now());
    let admin = secret.mint(1, true, 3_600, unix_now());
    let (alice, bob, carol, dave) = (user(11), user(12), user(13), user(14));

    let node = ServeProcess::start(&db.url()).await;
    let created = node
        .call(
            "POST",
            "/v1/businesses",
            Some(&admin),
            Some(json!({"id": "k1", "name": "Kept", "latitude": 10.0, "longitude": 20.0})),
        )
        .await;
    assert_eq!(created.0, 201, "{}", created.1);
    // Alice and Bob become friends; Carol asks Alice (pending); Alice and Dave were friends
    // and are not any more; Bob hides until a time far ahead.
    for (path, token) in [
        ("/v1/me/friend-requests/12", &alice),
        ("/v1/me/friend-requests/11", &carol),
        ("/v1/me/friend-requests/14", &alice),
    ] {
        assert_eq!(node.call("POST", path, Some(token), None).await.0, 202);
    }
    assert_eq!(
        node.call("PUT", "/v1/me/friends/11", Some(&bob), None)
            .await
            .0,
        200
    );
    assert_eq!(
        node.call("PUT", "/v1/me/friends/11", Some(&dave), None)
            .await
            .0,
        200
    );
    assert_eq!(
        node.call("DELETE", "/v1/me/friends/14", Some(&alice), None)
            .await
            .0,
        204
    );
    let hidden = json!({"enabled": false, "until": "2099-01-01T00:00:00Z"});
    assert_eq!(
        node.call("PUT", "/v1/me/sharing", Some(&bob), Some(hidden))
            .await
            .0,
        200
    );
    node.kill();

    let node = ServeProcess::start(&db.url()).await;
    let (status, business) = node.call("GET", "/v1/businesses/k1", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(business["name"], "Kept");
    assert_eq!(
        node.call("GET", "/v1/me/friends", Some(&alice), None)
            .await
            .1,
        json!({"friends": [12]})
    );
    assert_eq!(
        node.call("GET", "/v1/me/friends", Some(&dave), None)
            .await
            .1,
        json!({"friends": []})
    );
    assert_eq!(
        node.call("GET", "/v1/me/friend-requests", Some(&alice), None)
            .await
            .1,
        json!({"incoming": [13], "outgoing": []})
    );
    let (_, sharing) = node.call("GET", "/v1/me/sharing", Some(&bob), None).await;
    assert_eq!(sharing["enabled"], false, "{sharing}");
    assert_eq!(sharing["until"], "2099-01-01T00:00:00.000Z", "{sharing}");
}
