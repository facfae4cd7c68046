//! The bearer-token extractors: [`User`] for any valid token, [`Admin`] for business writes.

use super::ApiError;
use crate::auth::{Claims, unix_now};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use nearby_ws_gateway::http::required_bearer_token;

/// A request carrying a valid bearer token.
#[derive(Clone, Copy, Debug)]
pub struct User(pub Claims);

/// A request carrying a valid admin token.
#[derive(Clone, Copy, Debug)]
pub struct Admin(pub Claims);

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = required_bearer_token(&parts.headers)?;
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
