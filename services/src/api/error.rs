//! The one error type of the HTTP API ([`ApiError`], defined beside the gateway's routes so
//! both share it), and how the service's own failures map onto it.

use crate::business::FieldError;
pub use nearby_ws_gateway::http::{ApiError, ErrorBody, ErrorDetail};

impl From<FieldError> for ApiError {
    fn from(err: FieldError) -> Self {
        ApiError::invalid(err.field, err.message)
    }
}
