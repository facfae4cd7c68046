//! Business records: create, read, replace, delete. Writes need an admin token.

use super::auth::Admin;
use super::{ApiError, ready};
use crate::business::{Business, BusinessId, Category, Name, position};
use crate::state::{AppState, WriteError};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use utoipa::ToSchema;

/// A business as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct BusinessBody {
    /// Id: 1 to 64 characters of `A-Z a-z 0-9 . _ : -`.
    pub id: String,
    /// Name: 1 to 200 characters.
    pub name: String,
    /// Latitude, degrees in [-90, 90].
    pub latitude: f64,
    /// Longitude, degrees in [-180, 180].
    pub longitude: f64,
    /// Category: lowercase `a-z 0-9 _ -`, up to 64 characters.
    pub category: Option<String>,
}

/// What a client sends to create (`id` optional) or replace (`id` ignored if equal to the
/// path's) a business.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BusinessInput {
    /// Optional on create; generated when absent.
    id: Option<String>,
    /// Required, non-empty.
    name: String,
    /// Required JSON number.
    latitude: f64,
    /// Required JSON number.
    longitude: f64,
    /// Optional.
    category: Option<String>,
}

impl From<&Business> for BusinessBody {
    fn from(b: &Business) -> Self {
        Self {
            id: b.id.to_string(),
            name: b.name.as_str().to_owned(),
            latitude: b.position.lat(),
            longitude: b.position.lng(),
            category: b.category.as_ref().map(|c| c.as_str().to_owned()),
        }
    }
}

/// Creates a business. `201` with the stored record and its `Location`.
#[utoipa::path(post, path = "/v1/businesses", tag = "businesses",
    request_body = BusinessInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "created", body = BusinessBody),
        (status = 400, description = "malformed JSON", body = super::ErrorBody),
        (status = 401, description = "no valid token", body = super::ErrorBody),
        (status = 403, description = "not an admin token", body = super::ErrorBody),
        (status = 409, description = "the id is taken", body = super::ErrorBody),
        (status = 413, description = "body too large", body = super::ErrorBody),
        (status = 415, description = "the body is not application/json", body = super::ErrorBody),
        (status = 422, description = "a field is missing or invalid", body = super::ErrorBody),
        (status = 503, description = "the store cannot take writes now", body = super::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let fields = json_object(&headers, body, state.limits().body_bytes)?;
    let id = match fields.get("id") {
        None | Some(Value::Null) => generated_id(),
        Some(Value::String(id)) => {
            BusinessId::new(id).map_err(|e| ApiError::unprocessable("id", e.message))?
        }
        Some(_) => return Err(ApiError::unprocessable("id", "must be a string")),
    };
    let business = business_from(id, &fields)?;
    ready(&state)?;
    let body = BusinessBody::from(&business);
    let location = format!("/v1/businesses/{}", business.id);
    let id = business.id.clone();
    state.create(business).await.map_err(write_error)?;
    tracing::info!(business = %id, user = admin.sub, "business created");
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(body)).into_response())
}

/// Reads a business.
#[utoipa::path(get, path = "/v1/businesses/{id}", tag = "businesses",
    params(("id" = String, Path, description = "business id")),
    responses(
        (status = 200, description = "the business", body = BusinessBody),
        (status = 400, description = "invalid id", body = super::ErrorBody),
        (status = 404, description = "no such business", body = super::ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<BusinessBody>, ApiError> {
    let id = BusinessId::new(&id)?;
    ready(&state)?;
    let catalog = state.catalog();
    let business = catalog
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no business with id {id:?}")))?;
    Ok(Json(BusinessBody::from(&business)))
}

/// Creates or replaces the business at this id: `201` when created, `200` when replaced.
#[utoipa::path(put, path = "/v1/businesses/{id}", tag = "businesses",
    params(("id" = String, Path, description = "business id")),
    request_body = BusinessInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "replaced", body = BusinessBody),
        (status = 201, description = "created", body = BusinessBody),
        (status = 400, description = "malformed JSON or invalid id", body = super::ErrorBody),
        (status = 401, description = "no valid token", body = super::ErrorBody),
        (status = 403, description = "not an admin token", body = super::ErrorBody),
        (status = 413, description = "body too large", body = super::ErrorBody),
        (status = 415, description = "the body is not application/json", body = super::ErrorBody),
        (status = 422, description = "a field is missing or invalid", body = super::ErrorBody),
        (status = 503, description = "the store cannot take writes now", body = super::ErrorBody)))]
pub async fn replace(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = BusinessId::new(&id)?;
    let fields = json_object(&headers, body, state.limits().body_bytes)?;
    match fields.get("id") {
        None | Some(Value::Null) => {}
        Some(Value::String(body_id)) if body_id == id.as_str() => {}
        Some(_) => {
            return Err(ApiError::unprocessable(
                "id",
                "must be absent or equal to the id in the path",
            ));
        }
    }
    let business = business_from(id, &fields)?;
    ready(&state)?;
    let body = BusinessBody::from(&business);
    let id = business.id.clone();
    let created = state.put(business).await.map_err(write_error)?;
    tracing::info!(business = %id, user = admin.sub, created, "business stored");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(body)).into_response())
}

/// Deletes a business: `204`.
#[utoipa::path(delete, path = "/v1/businesses/{id}", tag = "businesses",
    params(("id" = String, Path, description = "business id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, description = "invalid id", body = super::ErrorBody),
        (status = 401, description = "no valid token", body = super::ErrorBody),
        (status = 403, description = "not an admin token", body = super::ErrorBody),
        (status = 404, description = "no such business", body = super::ErrorBody),
        (status = 503, description = "the store cannot take writes now", body = super::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = BusinessId::new(&id)?;
    ready(&state)?;
    state.delete(&id).await.map_err(write_error)?;
    tracing::info!(business = %id, user = admin.sub, "business deleted");
    Ok(StatusCode::NO_CONTENT)
}

fn write_error(err: WriteError) -> ApiError {
    match err {
        WriteError::Conflict => ApiError::conflict("a business with this id exists"),
        WriteError::NotFound => ApiError::not_found("no business with this id"),
        WriteError::Unavailable(err) => {
            tracing::warn!(error = %err, "write refused: store unavailable");
            ApiError::unavailable("the database is unavailable; nothing was changed, retry later")
        }
    }
}

/// The body as a JSON object, with the content type and size checked first.
pub(super) fn json_object(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Map<String, Value>, ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !(essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")) {
        return Err(ApiError::unsupported_media_type());
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limit)
        } else {
            ApiError::malformed(format!("could not read the body: {rejection}"))
        }
    })?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(ApiError::malformed("the body must be a JSON object")),
        Err(err) => Err(ApiError::malformed(format!("invalid JSON: {err}"))),
    }
}

/// A business from body fields, naming the first field at fault.
fn business_from(id: BusinessId, fields: &Map<String, Value>) -> Result<Business, ApiError> {
    if let Some(unknown) = fields.keys().find(|k| {
        !matches!(
            k.as_str(),
            "id" | "name" | "latitude" | "longitude" | "category"
        )
    }) {
        return Err(ApiError::malformed(format!(
            "unknown field {unknown:?}: expected id, name, latitude, longitude, category"
        )));
    }
    let name = match fields.get("name") {
        Some(Value::String(name)) => Name::new(name),
        None | Some(Value::Null) => return Err(ApiError::unprocessable("name", "is required")),
        Some(_) => return Err(ApiError::unprocessable("name", "must be a string")),
    }
    .map_err(|e| ApiError::unprocessable(e.field, e.message))?;
    let number = |field: &'static str| match fields.get(field) {
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| ApiError::unprocessable(field, "must be a finite number")),
        None | Some(Value::Null) => Err(ApiError::unprocessable(field, "is required")),
        Some(_) => Err(ApiError::unprocessable(field, "must be a JSON number")),
    };
    let position = position(number("latitude")?, number("longitude")?)
        .map_err(|e| ApiError::unprocessable(e.field, e.message))?;
    let category = match fields.get("category") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => {
            Some(Category::new(c).map_err(|e| ApiError::unprocessable(e.field, e.message))?)
        }
        Some(_) => return Err(ApiError::unprocessable("category", "must be a string")),
    };
    Ok(Business {
        id,
        name,
        position,
        category,
    })
}

/// A fresh id: `b-` and 16 hex digits of time and a process-wide counter, mixed so ids do not
/// reveal creation order at a glance.
fn generated_id() -> BusinessId {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(40);
    // SplitMix64 finaliser: a bijection, so distinct inputs give distinct ids.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    BusinessId::new(&format!("b-{x:016x}")).unwrap_or_else(|_| unreachable!("valid by form"))
}
