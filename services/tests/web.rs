//! The web console's routes through the real router: the page, its files, its configuration
//! and the development-only token endpoint.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use nearby_services::auth::{Secret, unix_now};
use nearby_services::catalog::Catalog;
use nearby_services::state::{AppState, DEFAULT_TILE_URL};
use serde_json::Value;
use tower::ServiceExt;

#[path = "support/app.rs"]
mod app_support;

fn secret() -> Secret {
    Secret::new(b"web-console-test-secret".to_vec()).unwrap()
}

/// The app as `nearby serve --secret …` wires it, with no businesses.
async fn state() -> AppState {
    let config = app_support::config(secret(), Catalog::default());
    app_support::start(config).await.state().clone()
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

fn header(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .map_or("", |value| value.to_str().unwrap())
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[tokio::test]
async fn the_page_is_served_at_the_root() {
    let app = nearby_services::api::app(state().await);
    let (status, headers, body) = send(&app, Method::GET, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert_eq!(header(&headers, header::CACHE_CONTROL), "no-cache");
    assert!(header(&headers, header::CONTENT_SECURITY_POLICY).contains("default-src 'self'"));
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains("<title>Nearby console</title>"));
    assert!(page.contains("/web/app.js"));
}

#[tokio::test]
async fn assets_have_their_content_types() {
    let app = nearby_services::api::app(state().await);
    for (path, content_type, cache) in [
        ("/web/app.js", "text/javascript; charset=utf-8", "no-cache"),
        ("/web/style.css", "text/css; charset=utf-8", "no-cache"),
        (
            "/web/vendor/leaflet/leaflet.js",
            "text/javascript; charset=utf-8",
            "public, max-age=86400",
        ),
        (
            "/web/vendor/leaflet/leaflet.css",
            "text/css; charset=utf-8",
            "public, max-age=86400",
        ),
        (
            "/web/vendor/leaflet/images/marker-icon.png",
            "image/png",
            "public, max-age=86400",
        ),
        (
            "/web/vendor/world-atlas/countries-110m.json",
            "application/json",
            "public, max-age=86400",
        ),
    ] {
        let (status, headers, body) = send(&app, Method::GET, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            header(&headers, header::CONTENT_TYPE),
            content_type,
            "{path}"
        );
        assert_eq!(header(&headers, header::CACHE_CONTROL), cache, "{path}");
        assert_eq!(header(&headers, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert!(!body.is_empty(), "{path}");
    }
    let (_, _, png) = send(
        &app,
        Method::GET,
        "/web/vendor/leaflet/images/marker-icon.png",
    )
    .await;
    assert_eq!(&png[..4], b"\x89PNG");
}

#[tokio::test]
async fn unknown_files_are_a_json_404() {
    let app = nearby_services::api::app(state().await);
    for path in [
        "/web/nope.js",
        "/web/",
        "/web/../Cargo.toml",
        "/web/vendor/leaflet/",
    ] {
        let (status, headers, body) = send(&app, Method::GET, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(header(&headers, header::CONTENT_TYPE), "application/json");
        assert_eq!(json(&body)["error"]["code"], "not_found", "{path}");
    }
    let (status, _, body) = send(&app, Method::POST, "/web/app.js").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(json(&body)["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn the_config_carries_the_tile_url_and_the_mode() {
    let state = state().await;
    let app = nearby_services::api::app(state.clone());
    let (status, headers, body) = send(&app, Method::GET, "/web/config.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, header::CACHE_CONTROL), "no-store");
    let config = json(&body);
    assert_eq!(config["tile_url"], DEFAULT_TILE_URL);
    assert_eq!(config["development"], false);

    // As `nearby serve --tile-url … ` (without --secret) configures it.
    let mut config = app_support::config(secret(), Catalog::default());
    config.tile_url = "http://tiles.invalid/{z}/{x}/{y}.png".to_owned();
    config.development_mode = true;
    let app = app_support::start(config).await.router();
    let (_, _, body) = send(&app, Method::GET, "/web/config.json").await;
    let config = json(&body);
    assert_eq!(config["tile_url"], "http://tiles.invalid/{z}/{x}/{y}.png");
    assert_eq!(config["development"], true);
}

#[tokio::test]
async fn dev_tokens_only_on_the_development_secret() {
    let state = state().await;
    let app = nearby_services::api::app(state.clone());
    let (status, _, body) = send(&app, Method::POST, "/v1/dev/token?user=3").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json(&body)["error"]["code"], "not_found");

    state.set_development_mode(true);
    let (status, headers, body) = send(&app, Method::POST, "/v1/dev/token?user=3").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, header::CACHE_CONTROL), "no-store");
    let body = json(&body);
    assert_eq!(body["user_id"], 3);
    let claims = secret()
        .verify(body["token"].as_str().unwrap(), unix_now())
        .unwrap();
    assert_eq!((claims.sub, claims.adm), (3, false));

    for (uri, message) in [
        ("/v1/dev/token", "is required"),
        ("/v1/dev/token?user=0", "must be a user id"),
        ("/v1/dev/token?user=x", "must be a user id"),
        ("/v1/dev/token?user=-1", "must be a user id"),
    ] {
        let (status, _, body) = send(&app, Method::POST, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        let body = json(&body);
        assert_eq!(body["error"]["field"], "user", "{uri}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(message),
            "{uri}"
        );
    }
    let (status, _, _) = send(&app, Method::GET, "/v1/dev/token?user=3").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}
