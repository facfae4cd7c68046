//! `GET /openapi.json`: the API description, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The OpenAPI document.
///
/// ```
/// use utoipa::OpenApi;
/// let doc = nearby_services::api::ApiDoc::openapi();
/// assert!(doc.paths.paths.contains_key("/v1/search/nearby"));
/// ```
#[derive(OpenApi)]
#[openapi(
    info(title = "Nearby", description = "Proximity search over businesses, and nearby friends (WebSocket /v1/ws and the /v1/me endpoints). Distances are great-circle metres on a sphere of radius 6,371,008.8 m."),
    paths(
        super::search::nearby,
        super::map::nearest,
        super::map::within_bbox,
        super::map::within_polygon,
        super::map::clusters,
        super::businesses::create,
        super::businesses::read,
        super::businesses::replace,
        super::businesses::delete,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        nearby_ws_gateway::api::connect,
        nearby_ws_gateway::api::locate,
        nearby_ws_gateway::api::request_friend,
        nearby_ws_gateway::api::list_requests,
        nearby_ws_gateway::api::accept_friend,
        nearby_ws_gateway::api::remove_friend,
        nearby_ws_gateway::api::list_friends,
        nearby_ws_gateway::api::get_sharing,
        nearby_ws_gateway::api::set_sharing,
        nearby_ws_gateway::api::get_friend_sharing,
        nearby_ws_gateway::api::set_friend_sharing,
        nearby_ws_gateway::api::clear_friend_sharing,
    ),
    components(schemas(super::ErrorBody, super::ErrorDetail)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI description of this API.
pub async fn spec() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
