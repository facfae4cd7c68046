//! The HTTP API: [`app`] builds the router, one module per concern.
//!
//! - `search`: `GET /v1/search/nearby`, and the query parsing every search shares.
//! - `map`: map-native search: `nearest` (no radius), `within` a box or GeoJSON polygons,
//!   `clusters` by Web Mercator tile.
//! - `businesses`: business create, read, replace, delete.
//! - `health`: `/healthz`, `/readyz`, `/metrics`.
//! - `openapi`: `/openapi.json`, generated from the handlers' annotations.
//! - `auth`: the bearer-token extractor.
//! - `web`: the web console at `/` and `/web/`, and the development-only `/v1/dev/token`.
//! - `error`: [`ApiError`], the JSON error body every failure uses.

mod auth;
mod businesses;
mod error;
mod health;
pub mod map;
mod openapi;
pub mod search;
mod web;

pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use openapi::ApiDoc;

use crate::state::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::time::Instant;

/// The whole HTTP API over `state`.
///
/// ```
/// use nearby_services::{api, auth::Secret, state::AppState, store::Store};
/// let state = AppState::new(Store::memory(), Secret::new(vec![1; 32])?, Default::default());
/// let _router = api::app(state);
/// # Ok::<(), nearby_services::auth::SecretError>(())
/// ```
pub fn app(state: AppState) -> Router {
    let gateway = state
        .gateway()
        .map(|gateway| nearby_ws_gateway::api::router(gateway.clone()))
        .unwrap_or_default();
    Router::new()
        .route("/v1/search/nearby", get(search::nearby))
        .route("/v1/search/nearest", get(map::nearest))
        .route(
            "/v1/search/within",
            get(map::within_bbox).post(map::within_polygon),
        )
        .route("/v1/search/clusters", get(map::clusters))
        .route("/v1/businesses", post(businesses::create))
        .route(
            "/v1/businesses/{id}",
            get(businesses::read)
                .put(businesses::replace)
                .delete(businesses::delete),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::spec))
        .merge(web::routes())
        .with_state(state.clone())
        .merge(gateway)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.limits().body_bytes))
        .layer(middleware::from_fn_with_state(state, observe))
}

/// 503 until the catalog is loaded: searches and business reads and writes wait for it.
fn ready(state: &AppState) -> Result<(), ApiError> {
    if state.is_ready() {
        Ok(())
    } else {
        Err(ApiError::unavailable("the index is still loading"))
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// Per request: the time limit, the metrics, and one debug log line.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // The route template, never the raw path: a stranger chooses the path, and each distinct
    // label value would be a series kept forever (the metrics module bounds the method).
    // (Both cheap to keep: `MatchedPath` is a shared string, a standard `Method` a tag.)
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let response =
        match tokio::time::timeout(state.limits().request_timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::timeout().into_response(),
        };
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let route = route
        .as_ref()
        .map_or(crate::metrics::OTHER, MatchedPath::as_str);
    state
        .metrics()
        .observe_request(route, method.as_str(), status, elapsed.as_secs_f64());
    tracing::debug!(%method, %route, status, elapsed_us = elapsed.as_micros() as u64, "request");
    response
}
