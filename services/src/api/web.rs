//! The web console: the page at `/` and its files under `/web/`, compiled into the binary
//! from `services/web/` (nothing is read from disk or fetched at run time but the map tiles);
//! `/web/config.json` (tile URL, development mode); and `POST /v1/dev/token`, which mints
//! tokens only when the server runs on the development secret.

use super::ApiError;
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

/// Lifetime of a development token, seconds.
const DEV_TOKEN_TTL_S: u64 = 86_400;

/// Page files: revalidated on every load, so a new binary serves its own page at once.
const PAGE: &str = "no-cache";
/// Vendored libraries and data: they change only with their version.
const VENDORED: &str = "public, max-age=86400";

/// The page may load scripts, styles and data only from this server, and images (map tiles)
/// from anywhere, since the tile URL is configurable.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src * data: blob:; \
     style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// One file of the console: path under `/web/`, content type, cache policy, bytes.
struct File {
    path: &'static str,
    content_type: &'static str,
    cache: &'static str,
    bytes: &'static [u8],
}

macro_rules! file {
    ($path:literal, $content_type:expr, $cache:expr) => {
        File {
            path: $path,
            content_type: $content_type,
            cache: $cache,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $path)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const PNG: &str = "image/png";
const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

static FILES: &[File] = &[
    file!("index.html", HTML, PAGE),
    file!("app.js", JS, PAGE),
    file!("style.css", CSS, PAGE),
    file!("vendor/leaflet/leaflet.js", JS, VENDORED),
    file!("vendor/leaflet/leaflet.css", CSS, VENDORED),
    file!("vendor/leaflet/LICENSE", TEXT, VENDORED),
    file!("vendor/leaflet/images/marker-icon.png", PNG, VENDORED),
    file!("vendor/leaflet/images/marker-icon-2x.png", PNG, VENDORED),
    file!("vendor/leaflet/images/marker-shadow.png", PNG, VENDORED),
    file!("vendor/leaflet/images/layers.png", PNG, VENDORED),
    file!("vendor/leaflet/images/layers-2x.png", PNG, VENDORED),
    file!(
        "vendor/topojson-client/topojson-client.min.js",
        JS,
        VENDORED
    ),
    file!("vendor/topojson-client/LICENSE", TEXT, VENDORED),
    file!("vendor/world-atlas/countries-110m.json", JSON, VENDORED),
    file!("vendor/world-atlas/LICENSE", TEXT, VENDORED),
    file!("vendor/h3-js/h3-js.umd.js", JS, VENDORED),
    file!("vendor/h3-js/LICENSE", TEXT, VENDORED),
    file!("vendor/h3-js/NOTICE", TEXT, VENDORED),
];

/// The console's routes; merged into [`super::app`].
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/web/config.json", get(config))
        .route("/web/{*path}", get(asset))
        // Every method, so that without development mode a GET is a 404 as well, not a 405
        // (with its `Allow: POST`) telling that the route exists.
        .route("/v1/dev/token", any(dev_token))
}

fn serve(file: &File) -> Response {
    let mut response = file.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(file.cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if file.content_type == HTML {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    response
}

fn find(path: &str) -> Option<&'static File> {
    FILES.iter().find(|file| file.path == path)
}

/// `GET /`: the console page.
async fn index() -> Result<Response, ApiError> {
    find("index.html")
        .map(serve)
        .ok_or_else(|| ApiError::internal("index.html is not compiled in"))
}

/// `GET /web/{path}`: a file of the console, or a JSON 404.
async fn asset(Path(path): Path<String>) -> Result<Response, ApiError> {
    find(&path)
        .map(serve)
        .ok_or_else(|| ApiError::not_found(format!("no web console file {path:?}")))
}

/// `GET /web/config.json`: what the page needs to know about this server.
async fn config(State(state): State<AppState>) -> Response {
    let friend_radius_m = state.gateway().map(|gateway| gateway.config().radius_m);
    let mut response = Json(json!({
        "tile_url": state.tile_url(),
        "development": state.is_development_mode(),
        "friend_radius_m": friend_radius_m,
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
struct DevTokenQuery {
    user: Option<String>,
}

/// `POST /v1/dev/token?user=N`: a non-admin token for user N, valid a day; only when the
/// server runs on the development secret (404 otherwise, whatever the method, as if the route
/// did not exist; `main` allows that mode only on a loopback address).
async fn dev_token(
    State(state): State<AppState>,
    method: Method,
    query: Result<Query<DevTokenQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    if !state.is_development_mode() {
        return Err(ApiError::not_found("no such route"));
    }
    if method != Method::POST {
        let mut response = ApiError::method_not_allowed().into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Ok(response);
    }
    let Query(query) = query.map_err(|err| ApiError::malformed(err.body_text()))?;
    let user = query
        .user
        .ok_or_else(|| ApiError::invalid("user", "is required"))?
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|user| *user > 0)
        .ok_or_else(|| ApiError::invalid("user", "must be a user id from 1 to 2^64 - 1"))?;
    let token = state
        .secret()
        .mint(user, false, DEV_TOKEN_TTL_S, crate::auth::unix_now());
    let mut response = Json(json!({
        "token": token,
        "user_id": user,
        "expires_in": DEV_TOKEN_TTL_S,
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
