//! Liveness, readiness and metrics.

use super::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

/// `{"status": "ok"}`.
#[derive(Serialize, ToSchema)]
pub struct Status {
    /// Always `ok`.
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "alive", body = Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// The index is loaded and searches are answered.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "ready", body = Status),
        (status = 503, description = "still loading", body = super::ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    if !state.is_ready() {
        return Err(ApiError::unavailable("the index is still loading"));
    }
    if state.gateway().is_some_and(|gateway| !gateway.is_ready()) {
        return Err(ApiError::unavailable(
            "the nearby-friends bus (Redis) is unreachable",
        ));
    }
    Ok(Json(Status { status: "ok" }))
}

/// Prometheus metrics, OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "metrics (OpenMetrics text)", content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let (businesses, heap_bytes) = {
        let catalog = state.catalog();
        (catalog.len(), catalog.heap_bytes())
    };
    let mut text = state.metrics().render(crate::metrics::CatalogFigures {
        businesses,
        heap_bytes,
        load_seconds: state.load_time_s(),
    });
    if let Some(gateway) = state.gateway() {
        gateway.metrics().render(&mut text);
    }
    crate::metrics::finish(&mut text);
    ([(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text)
}
