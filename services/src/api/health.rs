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
    if state.is_ready() {
        Ok(Json(Status { status: "ok" }))
    } else {
        Err(ApiError::unavailable("the index is still loading"))
    }
}

/// Prometheus metrics, text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "metrics", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let businesses = state.catalog().len();
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(businesses),
    )
}
