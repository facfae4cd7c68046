//! The bearer-token extractors: [`User`] for any valid token, [`Admin`] for business writes.

use super::ApiError;
use crate::auth::{Claims, unix_now};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

/// A request carrying a valid bearer token.
#[derive(Clone, Copy, Debug)]
pub struct User(pub Claims);

/// A request carrying a valid admin token.
#[derive(Clone, Copy, Debug)]
pub struct Admin(pub Claims);

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("an Authorization: Bearer token is required"))?;
        let value = header
            .to_str()
            .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| ApiError::unauthorized("the Authorization scheme must be Bearer"))?;
        let claims = state
            .secret()
            .verify(token, unix_now())
            .map_err(|err| ApiError::unauthorized(err.to_string()))?;
        Ok(User(claims))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let User(claims) = User::from_request_parts(parts, state).await?;
        if !claims.adm {
            return Err(ApiError::forbidden(
                "writing businesses needs a token minted with --admin",
            ));
        }
        Ok(Admin(claims))
    }
}
