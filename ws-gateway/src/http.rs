//! The one error type of the HTTP API, shared by the REST service and the gateway: every
//! failure becomes a status and the JSON body `{"error":{"code","message","field"?}}`; and the
//! one parser of `Authorization: Bearer <token>` both sides' extractors use.
//!
//! It lives in the gateway crate because the service depends on the gateway, not the other
//! way round; the service re-exports it as `nearby_services::api::ApiError`.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An API failure.
///
/// ```
/// use axum::response::IntoResponse;
/// use nearby_ws_gateway::http::ApiError;
/// let response = ApiError::not_found("no business with id \"x\"").into_response();
/// assert_eq!(response.status(), 404);
/// ```
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<&'static str>,
}

/// The error body, as documented in the OpenAPI description.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_parameter`.
    pub code: &'static str,
    /// Explanation for a person.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

impl ApiError {
    /// Any status with its stable machine-readable `code` (for the failures the named
    /// constructors below do not cover, such as the gateway's `limit_reached`).
    ///
    /// ```
    /// # use nearby_ws_gateway::http::ApiError;
    /// use axum::http::StatusCode;
    /// let err = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "slow down");
    /// assert_eq!(err.status(), 429);
    /// ```
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// 400 for a query parameter or body field that is missing or invalid.
    ///
    /// ```
    /// # use nearby_ws_gateway::http::ApiError;
    /// assert_eq!(ApiError::invalid("radius", "must be > 0").status(), 400);
    /// ```
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
        }
    }

    /// 400 for a body that is not the JSON expected.
    ///
    /// ```
    /// # use nearby_ws_gateway::http::ApiError;
    /// assert_eq!(ApiError::malformed("expected a JSON object").status(), 400);
    /// ```
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_body", message)
    }

    /// 422 for a well-formed JSON body with a field that is missing, of the wrong type or out
    /// of range.
    ///
    /// ```
    /// # use nearby_ws_gateway::http::ApiError;
    /// assert_eq!(ApiError::unprocessable("latitude", "must be a JSON number").status(), 422);
    /// ```
    pub fn unprocessable(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
        }
    }

    /// 401: no valid bearer token.
    ///
    /// ```
    /// # use nearby_ws_gateway::http::ApiError;
    /// assert_eq!(ApiError::unauthorized("missing bearer token").status(), 401);
    /// ```
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: a valid token without the needed right.
    ///
    /// ```
    /// # use nearby_ws_gateway::http::ApiError;
    /// assert_eq!(ApiError::forbidden("admin token required").status(), 403);
    /// ```
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    ///
    /// ```
    /// # use nearby_ws_gateway::http::ApiError;
    /// assert_eq!(ApiError::not_found("nothing here").status(), 404);
    /// ```
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405.
    ///
    /// ```
    /// # use nearby_ws_gateway::http::ApiError;
    /// assert_eq!(ApiError::method_not_allowed().status(), 405);
    /// ```
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this method is not allowed on this path",
        )
    }

    /// 409: the id is taken.
    ///
    /// ```
    /// # use nearby_ws_gateway::http::ApiError;
    /// assert_eq!(ApiError::conflict("id taken").status(), 409);
    /// ```
    pub fn conflict(message: impl Into<String>) -> Self {
        Self {
            field: Some("id"),
            ..Self::new(StatusCode::CONFLICT, "conflict", message)
        }
    }

    /// 413.
    ///
    /// ```
    /// # use nearby_ws_gateway::http::ApiError;
    /// assert_eq!(ApiError::too_large(65_536).status(), 413);
    /// ```
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body must be at most {limit} bytes"),
        )
    }

    /// 415: a body that is not `application/json`.
    ///
    /// ```
    /// # use nearby_ws_gateway::http::ApiError;
    /// assert_eq!(ApiError::unsupported_media_type().status(), 415);
    /// ```
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be application/json",
        )
    }

    /// 503: not ready yet, or a dependency is down. Nothing was changed.
    ///
    /// ```
    /// # use nearby_ws_gateway::http::ApiError;
    /// assert_eq!(ApiError::unavailable("loading").status(), 503);
    /// ```
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 408/503-style timeout: the request took longer than the server allows.
    ///
    /// ```
    /// # use nearby_ws_gateway::http::ApiError;
    /// assert_eq!(ApiError::timeout().status(), 503);
    /// ```
    pub fn timeout() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took too long and was abandoned",
        )
    }

    /// 500. The detail goes to the log, not to the client.
    ///
    /// ```
    /// # use nearby_ws_gateway::http::ApiError;
    /// assert_eq!(ApiError::internal("database said no").status(), 500);
    /// ```
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred",
        )
    }

    /// The HTTP status.
    ///
    /// ```
    /// # use nearby_ws_gateway::http::ApiError;
    /// assert_eq!(ApiError::malformed("x").status(), 400);
    /// ```
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"nearby\""),
            );
        }
        response
    }
}

/// The token of an `Authorization: Bearer <token>` header: `Ok(None)` without the header,
/// 401 when it is not text or names another scheme (the scheme is case-insensitive, RFC 7235).
///
/// ```
/// use axum::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
/// use nearby_ws_gateway::http::bearer_token;
/// let mut headers = HeaderMap::new();
/// assert_eq!(bearer_token(&headers).ok(), Some(None));
/// headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer abc"));
/// assert_eq!(bearer_token(&headers).ok(), Some(Some("abc")));
/// headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
/// assert_eq!(bearer_token(&headers).map_err(|e| e.status().as_u16()), Err(401));
/// ```
///
/// # Errors
/// 401 for a header that is not text or not of the Bearer scheme.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(header) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
    value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| Some(token.trim()))
        .ok_or_else(|| ApiError::unauthorized("the Authorization scheme must be Bearer"))
}

/// The token of a request that must carry one: as [`bearer_token`], and 401 without the header.
///
/// ```
/// use axum::http::HeaderMap;
/// use nearby_ws_gateway::http::required_bearer_token;
/// assert_eq!(required_bearer_token(&HeaderMap::new()).map_err(|e| e.status().as_u16()), Err(401));
/// ```
///
/// # Errors
/// 401 without a Bearer token.
pub fn required_bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    bearer_token(headers)?
        .ok_or_else(|| ApiError::unauthorized("an Authorization: Bearer token is required"))
}
