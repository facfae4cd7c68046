//! The HTTP API on the embedded (in-memory) store, driven through the real router.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use nearby_services::auth::Secret;
use nearby_services::business::{Business, BusinessId, Category, Name, position};
use nearby_services::catalog::Catalog;
use nearby_services::state::{AppState, Limits};
use nearby_services::store::Store;
use serde_json::Value;
use tower::ServiceExt;

#[path = "support/app.rs"]
mod app_support;

fn secret() -> Secret {
    Secret::new(b"integration-test-secret".to_vec()).unwrap()
}

fn admin_token() -> String {
    secret().mint(1, true, 3_600, nearby_services::auth::unix_now())
}

fn user_token() -> String {
    secret().mint(2, false, 3_600, nearby_services::auth::unix_now())
}

/// A grid of businesses around Paris, with ties (two per spot) and two categories.
fn businesses() -> Vec<Business> {
    let mut out = Vec::new();
    for i in 0..40 {
        for j in 0..40 {
            for dup in 0..2 {
                out.push(Business {
                    id: BusinessId::new(&format!("p-{i}-{j}-{dup}")).unwrap(),
                    name: Name::new(&format!("Place {i} {j}")).unwrap(),
                    position: position(48.80 + f64::from(i) * 0.002, 2.30 + f64::from(j) * 0.003)
                        .unwrap(),
                    category: Some(
                        Category::new(if (i + j) % 3 == 0 { "cafe" } else { "bakery" }).unwrap(),
                    ),
                });
            }
        }
    }
    out
}

/// The app as `nearby serve` wires it, serving the test businesses.
async fn state() -> AppState {
    let config = app_support::config(secret(), Catalog::build(businesses(), 0));
    app_support::start(config).await.state().clone()
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, body)
}

async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

fn write(method: Method, uri: &str, token: Option<&str>, body: &str) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

fn assert_error(body: &Value, code: &str, field: Option<&str>) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    match field {
        Some(field) => assert_eq!(body["error"]["field"], field, "{body}"),
        None => assert!(body["error"].get("field").is_none(), "{body}"),
    }
}

#[tokio::test]
async fn invalid_search_parameters_are_400s_naming_the_field() {
    let app = nearby_services::api::app(state().await);
    let cases = [
        ("longitude=2.3", "latitude"),
        ("latitude=48.8", "longitude"),
        ("latitude=abc&longitude=2.3", "latitude"),
        ("latitude=NaN&longitude=2.3", "latitude"),
        ("latitude=inf&longitude=2.3", "latitude"),
        ("latitude=90.5&longitude=2.3", "latitude"),
        ("latitude=48.8&longitude=-181", "longitude"),
        ("latitude=48.8&longitude=2.3&radius=0", "radius"),
        ("latitude=48.8&longitude=2.3&radius=-5", "radius"),
        ("latitude=48.8&longitude=2.3&radius=50001", "radius"),
        ("latitude=48.8&longitude=2.3&radius=1e400", "radius"),
        ("latitude=48.8&longitude=2.3&limit=0", "limit"),
        ("latitude=48.8&longitude=2.3&limit=101", "limit"),
        ("latitude=48.8&longitude=2.3&limit=2.5", "limit"),
        ("latitude=48.8&longitude=2.3&cursor=garbage", "cursor"),
        ("latitude=48.8&longitude=2.3&category=caf%C3%A9", "category"),
    ];
    for (query, field) in cases {
        let (status, body) = get(&app, &format!("/v1/search/nearby?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_error(&body, "invalid_parameter", Some(field));
    }
}

#[tokio::test]
async fn paging_walks_every_match_in_order_exactly_once() {
    let app = nearby_services::api::app(state().await);
    let centre = position(48.83, 2.36).unwrap();
    let radius = 3_000.0;
    // The reference: every business within the radius, by (distance, id).
    let mut expected: Vec<(f64, String)> = businesses()
        .iter()
        .map(|b| (centre.distance_m(b.position), b.id.to_string()))
        .filter(|(d, _)| *d <= radius)
        .collect();
    expected.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    assert!(expected.len() > 300);

    for limit in [1, 7, 100] {
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut uri = format!(
                "/v1/search/nearby?latitude=48.83&longitude=2.36&radius={radius}&limit={limit}"
            );
            if let Some(c) = &cursor {
                uri.push_str(&format!("&cursor={c}"));
            }
            let (status, body) = get(&app, &uri).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let page = body["businesses"].as_array().unwrap();
            assert!(page.len() <= limit);
            for hit in page {
                got.push((
                    hit["distance_m"].as_f64().unwrap(),
                    hit["id"].as_str().unwrap().to_owned(),
                ));
            }
            match body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
            if limit == 1 && got.len() > 50 {
                break; // a long walk one by one proves the point without 600 requests
            }
        }
        assert_eq!(got, expected[..got.len()], "limit {limit}");
        if limit != 1 {
            assert_eq!(got.len(), expected.len(), "limit {limit}");
        }
    }
}

#[tokio::test]
async fn cursor_from_another_search_is_refused() {
    let app = nearby_services::api::app(state().await);
    let (_, body) = get(
        &app,
        "/v1/search/nearby?latitude=48.83&longitude=2.36&limit=2",
    )
    .await;
    let cursor = body["next_cursor"].as_str().unwrap().to_owned();
    let (status, body) = get(
        &app,
        &format!("/v1/search/nearby?latitude=48.83&longitude=2.37&limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_parameter", Some("cursor"));
}

#[tokio::test]
async fn category_filter_and_geojson() {
    let app = nearby_services::api::app(state().await);
    let (status, body) = get(
        &app,
        "/v1/search/nearby?latitude=48.83&longitude=2.36&radius=2000&limit=100&category=CAFE",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let hits = body["businesses"].as_array().unwrap();
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h["category"] == "cafe"));

    let request = Request::get("/v1/search/nearby?latitude=48.83&longitude=2.36&limit=3")
        .header(header::ACCEPT, "application/geo+json")
        .body(Body::empty())
        .unwrap();
    let response = nearby_services::api::app(state().await)
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/geo+json"
    );
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["type"], "FeatureCollection");
    let feature = &body["features"][0];
    assert_eq!(feature["geometry"]["type"], "Point");
    assert!(feature["properties"]["distance_m"].as_f64().is_some());
}

#[tokio::test]
async fn writes_need_an_admin_token() {
    let app = nearby_services::api::app(state().await);
    let body = r#"{"name":"Chez Test","latitude":48.83,"longitude":2.36}"#;
    let (status, reply) = send(&app, write(Method::POST, "/v1/businesses", None, body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&reply, "unauthorized", None);

    let forged = format!("{}x", admin_token());
    let (status, _) = send(
        &app,
        write(Method::POST, "/v1/businesses", Some(&forged), body),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let expired = secret().mint(1, true, 10, 1_000);
    let (status, _) = send(
        &app,
        write(Method::POST, "/v1/businesses", Some(&expired), body),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, reply) = send(
        &app,
        write(Method::POST, "/v1/businesses", Some(&user_token()), body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&reply, "forbidden", None);

    let (status, _) = send(
        &app,
        write(
            Method::DELETE,
            "/v1/businesses/p-0-0-0",
            Some(&user_token()),
            "",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_write_is_visible_to_the_very_next_search() {
    let app = nearby_services::api::app(state().await);
    let token = admin_token();
    let (status, created) = send(
        &app,
        write(
            Method::POST,
            "/v1/businesses",
            Some(&token),
            r#"{"id":"new-1","name":"Brand New","latitude":10.5,"longitude":-170.25,"category":"bar"}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["id"], "new-1");
    let (_, found) = get(
        &app,
        "/v1/search/nearby?latitude=10.5&longitude=-170.25&radius=10",
    )
    .await;
    assert_eq!(found["businesses"][0]["id"], "new-1");

    // Same id again: conflict, nothing changed.
    let (status, reply) = send(
        &app,
        write(
            Method::POST,
            "/v1/businesses",
            Some(&token),
            r#"{"id":"new-1","name":"Other","latitude":0,"longitude":0}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&reply, "conflict", Some("id"));

    // Move it with PUT: gone from the old place, at the new one.
    let (status, _) = send(
        &app,
        write(
            Method::PUT,
            "/v1/businesses/new-1",
            Some(&token),
            r#"{"name":"Moved","latitude":-33.9,"longitude":151.2}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, old) = get(
        &app,
        "/v1/search/nearby?latitude=10.5&longitude=-170.25&radius=10",
    )
    .await;
    assert_eq!(old["businesses"].as_array().unwrap().len(), 0);
    let (_, read) = get(&app, "/v1/businesses/new-1").await;
    assert_eq!(read["name"], "Moved");
    assert_eq!(read["category"], Value::Null);

    // PUT to a new id creates.
    let (status, _) = send(
        &app,
        write(
            Method::PUT,
            "/v1/businesses/new-2",
            Some(&token),
            r#"{"name":"Two","latitude":1,"longitude":1}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // DELETE, then it is gone.
    let (status, body) = send(
        &app,
        write(Method::DELETE, "/v1/businesses/new-1", Some(&token), ""),
    )
    .await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, reply) = get(&app, "/v1/businesses/new-1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&reply, "not_found", None);
    let (status, _) = send(
        &app,
        write(Method::DELETE, "/v1/businesses/new-1", Some(&token), ""),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_bodies_get_clear_errors_and_change_nothing() {
    let state = state().await;
    let before = state.catalog().len();
    let app = nearby_services::api::app(state.clone());
    let token = admin_token();
    let cases: [(&str, StatusCode, &str, Option<&str>); 11] = [
        ("{not json", StatusCode::BAD_REQUEST, "malformed_body", None),
        ("[1,2]", StatusCode::BAD_REQUEST, "malformed_body", None),
        (
            r#"{"name":"x","lat":1,"longitude":1}"#,
            StatusCode::BAD_REQUEST,
            "malformed_body",
            None,
        ),
        (
            r#"{"latitude":1,"longitude":1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("name"),
        ),
        (
            r#"{"name":"  ","latitude":1,"longitude":1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("name"),
        ),
        (
            r#"{"name":"x","latitude":"1","longitude":1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("latitude"),
        ),
        (
            r#"{"name":"x","latitude":91,"longitude":1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("latitude"),
        ),
        (
            r#"{"name":"x","latitude":1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("longitude"),
        ),
        (
            r#"{"name":"x","latitude":1,"longitude":1,"id":5}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("id"),
        ),
        (
            r#"{"name":"x","latitude":1,"longitude":1,"id":"a/b"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("id"),
        ),
        (
            r#"{"name":"x","latitude":1,"longitude":1,"category":7}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("category"),
        ),
    ];
    for (body, status, code, field) in cases {
        let (got, reply) = send(
            &app,
            write(Method::POST, "/v1/businesses", Some(&token), body),
        )
        .await;
        assert_eq!(got, status, "{body}: {reply}");
        assert_error(&reply, code, field);
    }
    // Wrong content type, and a body over the limit.
    let request = Request::post("/v1/businesses")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"name":"x","latitude":1,"longitude":1}"#))
        .unwrap();
    let (status, reply) = send(&app, request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error(&reply, "unsupported_media_type", None);
    let huge = format!(
        r#"{{"name":"{}","latitude":1,"longitude":1}}"#,
        "x".repeat(100_000)
    );
    let (status, reply) = send(
        &app,
        write(Method::POST, "/v1/businesses", Some(&token), &huge),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&reply, "payload_too_large", None);
    // PUT whose body id disagrees with the path.
    let (status, _) = send(
        &app,
        write(
            Method::PUT,
            "/v1/businesses/a",
            Some(&token),
            r#"{"id":"b","name":"x","latitude":1,"longitude":1}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(state.catalog().len(), before);
}

#[tokio::test]
async fn operations_endpoints() {
    let loading = AppState::new(Store::memory(), secret(), Limits::default());
    let app = nearby_services::api::app(loading.clone());
    assert_eq!(get(&app, "/healthz").await.0, StatusCode::OK);
    let (status, body) = get(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&body, "unavailable", None);
    let (status, _) = get(&app, "/v1/search/nearby?latitude=1&longitude=1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    loading.install_catalog(Catalog::build(businesses(), 0));
    assert_eq!(get(&app, "/readyz").await.0, StatusCode::OK);

    let (status, body) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().unwrap();
    assert!(text.contains("nearby_businesses 3200"), "{text}");
    assert!(text.contains(r#"http_requests_total{route="/readyz",method="GET",status="503"} 1"#));
    assert!(text.contains("http_request_duration_seconds_bucket"));

    let (status, spec) = get(&app, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/v1/search/nearby",
        "/v1/businesses",
        "/v1/businesses/{id}",
        "/healthz",
    ] {
        assert!(
            spec["paths"].get(path).is_some(),
            "{path} missing from the spec"
        );
    }

    let (status, body) = get(&app, "/no/such/route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found", None);
    let (status, body) = send(
        &app,
        Request::builder()
            .method(Method::PATCH)
            .uri("/healthz")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&body, "method_not_allowed", None);
}

#[tokio::test]
async fn the_real_server_serves_and_shuts_down_gracefully() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(nearby_services::server::run(
        listener,
        state().await,
        async move {
            let _ = stopped.await;
        },
    ));
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("shuts down promptly")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn metrics_do_not_grow_with_invented_methods_or_paths() {
    async fn metrics_len(app: &Router) -> usize {
        let (status, body) = get(app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        body.as_str().unwrap().len()
    }
    let app = nearby_services::api::app(state().await);
    // An invented method on an unmatched path (404) or on a real route (405), each distinct.
    let stranger = |i: usize| {
        let method = Method::from_bytes(format!("FOO{i}").as_bytes()).unwrap();
        let uri = if i.is_multiple_of(2) {
            format!("/no/such/route/{i}")
        } else {
            "/healthz".to_owned()
        };
        Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap()
    };
    // Once first, so /metrics's own series is there from the start.
    metrics_len(&app).await;
    for i in 0..2 {
        send(&app, stranger(i)).await;
    }
    let after_two = metrics_len(&app).await;
    for i in 2..200 {
        send(&app, stranger(i)).await;
    }
    let (_, body) = get(&app, "/metrics").await;
    let text = body.as_str().unwrap();
    // Only counts grow (a few digits per line of the existing series), not the series.
    assert!(
        text.len() <= after_two + 1_024,
        "/metrics grew from {after_two} to {} bytes",
        text.len()
    );
    assert!(
        text.contains(r#"http_requests_total{route="other",method="other",status="404"} 100"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{route="/healthz",method="other",status="405"} 100"#),
        "{text}"
    );
    assert!(!text.contains("FOO"), "{text}");
    assert!(!text.contains("/no/such/route"), "{text}");
}
