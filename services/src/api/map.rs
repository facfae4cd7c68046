//! Map-native search: `GET /v1/search/nearest` (no radius), `GET /v1/search/within?bbox=`
//! (a viewport), `POST /v1/search/within` (GeoJSON polygons) and `GET /v1/search/clusters`
//! (counted clusters by Web Mercator tile, for zoomed-out maps).
//!
//! Every search is parsed into the one validated [`SearchRequest`] and answered by the same
//! index traversal as `/v1/search/nearby` (region pruning, keyset paging, the category filter);
//! clusters come from the quadtree's subtree counts.

use super::ApiError;
use super::businesses::BusinessBody;
use super::search::{Params, SearchResponse, answer, required, resume, wants_geojson};
use crate::business::{Category, position};
use crate::catalog::{ClusterHit, SearchRequest};
use crate::cursor::fingerprint_of;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use geo_index::{BoundingBox, Polygon, Region, TileGrid};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

/// Largest map zoom `clusters` accepts; tiles are taken at `zoom + 2`.
pub const MAX_ZOOM: u8 = 20;
/// Most clusters one answer may hold: a box spanning more tiles is refused.
pub const MAX_CLUSTERS: u64 = 4_096;
/// Largest `POST /v1/search/within` body.
pub const MAX_GEOMETRY_BYTES: usize = 64 * 1024;

/// `GET /v1/search/nearest` parameters (for the OpenAPI description).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct NearestParams {
    /// Latitude, degrees in [-90, 90].
    latitude: f64,
    /// Longitude, degrees in [-180, 180].
    longitude: f64,
    /// Page size, 1 to 100; default 20.
    limit: Option<u32>,
    /// `next_cursor` from the previous page of the same search.
    cursor: Option<String>,
    /// Only businesses of this category.
    category: Option<String>,
}

/// `GET /v1/search/within` parameters (for the OpenAPI description).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct WithinParams {
    /// `west,south,east,north` in degrees (RFC 7946 §5); `west > east` crosses the
    /// antimeridian; `south <= north`.
    bbox: String,
    /// Page size, 1 to 100; default 20.
    limit: Option<u32>,
    /// `next_cursor` from the previous page of the same search.
    cursor: Option<String>,
    /// Only businesses of this category.
    category: Option<String>,
}

/// `GET /v1/search/clusters` parameters (for the OpenAPI description).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ClustersParams {
    /// `west,south,east,north` in degrees, as for `within`.
    bbox: String,
    /// The map's zoom, 0 to 20: places are grouped by the tile at `zoom + 2` holding each.
    zoom: u8,
    /// Only businesses of this category.
    category: Option<String>,
}

/// `POST /v1/search/within` body.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WithinBody {
    /// A GeoJSON `Polygon` or `MultiPolygon` (RFC 7946): the first ring is the outer one,
    /// later rings are holes, either orientation; split at ±180° to cross the antimeridian.
    /// At most 10,000 positions; the body at most 64 KiB.
    geometry: Value,
    /// Page size, 1 to 100; default 20.
    limit: Option<u32>,
    /// `next_cursor` from the previous page of the same search.
    cursor: Option<String>,
    /// Only businesses of this category.
    category: Option<String>,
}

/// One cluster.
#[derive(Serialize, ToSchema)]
pub struct ClusterBody {
    /// The Web Mercator tile `[z, x, y]` (XYZ scheme) at `zoom + 2`.
    pub tile: [u32; 3],
    /// How many places it holds.
    pub count: u64,
    /// Mean latitude of its places (on the sphere).
    pub latitude: f64,
    /// Mean longitude of its places (on the sphere).
    pub longitude: f64,
    /// The place itself, when `count` is 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business: Option<BusinessBody>,
}

/// The clusters of a box.
#[derive(Serialize, ToSchema)]
pub struct ClustersResponse {
    /// Places in the box (of the category): the sum of the clusters' counts.
    pub total: u64,
    /// One per non-empty tile, sorted by tile `x`, then `y`.
    pub clusters: Vec<ClusterBody>,
}

/// The nearest businesses anywhere on Earth, no radius: nearest first (ties by id), keyset
/// paged; following `next_cursor` reaches every business eventually.
#[utoipa::path(get, path = "/v1/search/nearest", tag = "places", params(NearestParams),
    responses(
        (status = 200, description = "a page of results (GeoJSON FeatureCollection with Accept: application/geo+json)",
            content((SearchResponse = "application/json"), (serde_json::Value = "application/geo+json"))),
        (status = 400, description = "a parameter is missing or invalid", body = super::ErrorBody),
        (status = 503, description = "the index is still loading", body = super::ErrorBody)))]
pub async fn nearest(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (request, print) = parse_nearest_query(query.as_deref().unwrap_or(""))?;
    answer(&state, &headers, &request, print)
}

/// Businesses in a box, nearest to the box's centre first (ties by id), each with
/// `distance_m` from that centre; keyset paged.
#[utoipa::path(get, path = "/v1/search/within", tag = "places", params(WithinParams),
    responses(
        (status = 200, description = "a page of results (GeoJSON FeatureCollection with Accept: application/geo+json)",
            content((SearchResponse = "application/json"), (serde_json::Value = "application/geo+json"))),
        (status = 400, description = "a parameter is missing or invalid", body = super::ErrorBody),
        (status = 503, description = "the index is still loading", body = super::ErrorBody)))]
pub async fn within_bbox(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (request, print) = parse_within_query(query.as_deref().unwrap_or(""))?;
    answer(&state, &headers, &request, print)
}

/// Businesses inside a GeoJSON Polygon or MultiPolygon (a point on an edge is inside),
/// nearest to the centre of the geometry's bounding box first (ties by id); keyset paged.
#[utoipa::path(post, path = "/v1/search/within", tag = "places",
    request_body = WithinBody,
    responses(
        (status = 200, description = "a page of results (GeoJSON FeatureCollection with Accept: application/geo+json)",
            content((SearchResponse = "application/json"), (serde_json::Value = "application/geo+json"))),
        (status = 400, description = "malformed JSON", body = super::ErrorBody),
        (status = 413, description = "body over 64 KiB", body = super::ErrorBody),
        (status = 415, description = "the body is not application/json", body = super::ErrorBody),
        (status = 422, description = "a field is invalid: `geometry` (not a valid Polygon or MultiPolygon, over 10,000 positions), `limit`, `cursor`, `category`", body = super::ErrorBody),
        (status = 503, description = "the index is still loading", body = super::ErrorBody)))]
pub async fn within_polygon(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Whatever the general body limit is configured to, a geometry stays within its own.
    if body
        .as_ref()
        .is_ok_and(|bytes| bytes.len() > MAX_GEOMETRY_BYTES)
    {
        return Err(ApiError::too_large(MAX_GEOMETRY_BYTES));
    }
    let limit = MAX_GEOMETRY_BYTES.min(state.limits().body_bytes);
    let fields = super::businesses::json_object(&headers, body, limit)?;
    let (request, print) = parse_within_body(&fields)?;
    answer(&state, &headers, &request, print)
}

/// Places in a box grouped by the Web Mercator tile at `zoom + 2` holding each: exact counts
/// (their sum is `total`, the number of places `within` finds in the same box), mean
/// positions on the sphere, and the place itself for a cluster of one.
#[utoipa::path(get, path = "/v1/search/clusters", tag = "places", params(ClustersParams),
    responses(
        (status = 200, description = "the clusters (GeoJSON FeatureCollection of points with Accept: application/geo+json)",
            content((ClustersResponse = "application/json"), (serde_json::Value = "application/geo+json"))),
        (status = 400, description = "a parameter is missing or invalid", body = super::ErrorBody),
        (status = 422, description = "the box spans more than 4,096 tiles at zoom + 2: ask for a smaller box or a lower zoom", body = super::ErrorBody),
        (status = 503, description = "the index is still loading", body = super::ErrorBody)))]
pub async fn clusters(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let request = parse_clusters_query(query.as_deref().unwrap_or(""))?;
    super::ready(&state)?;
    let clusters = state
        .catalog()
        .clusters(&request.region, request.zoom + 2, request.category.as_ref())
        .map_err(|err| ApiError::invalid("zoom", err.to_string()))?;
    let total = clusters.iter().map(|c| c.count).sum();
    Ok(if wants_geojson(&headers) {
        clusters_geojson(total, &clusters).into_response()
    } else {
        Json(ClustersResponse {
            total,
            clusters: clusters.iter().map(cluster_body).collect(),
        })
        .into_response()
    })
}

/// Parses `GET /v1/search/nearest`'s query string.
///
/// # Errors
/// A missing or invalid parameter (400 naming it).
///
/// ```
/// use nearby_services::api::map::parse_nearest_query;
/// let (request, _) = parse_nearest_query("latitude=48.85&longitude=2.35&limit=3")?;
/// assert_eq!((request.limit, request.radius_m), (3, f64::MAX));
/// assert!(parse_nearest_query("latitude=48.85").is_err());
/// # Ok::<(), nearby_services::api::ApiError>(())
/// ```
pub fn parse_nearest_query(query: &str) -> Result<(SearchRequest, u64), ApiError> {
    let params = Params::parse(query)?;
    let latitude = params
        .number("latitude")?
        .ok_or_else(|| required("latitude"))?;
    let longitude = params
        .number("longitude")?
        .ok_or_else(|| required("longitude"))?;
    let centre = position(latitude, longitude)?;
    let limit = params.limit()?;
    let category = params.category()?;
    let print = fingerprint_of(
        "nearest",
        [latitude, longitude],
        category.as_ref().map(Category::as_str),
    );
    let after = resume(
        params.get("cursor"),
        print,
        "latitude, longitude and category",
    )
    .map_err(|message| ApiError::invalid("cursor", message))?;
    Ok((
        SearchRequest {
            after,
            category,
            ..SearchRequest::nearest(centre, limit)
        },
        print,
    ))
}

/// Parses `GET /v1/search/within`'s query string.
///
/// # Errors
/// A missing or invalid parameter (400 naming it).
///
/// ```
/// use nearby_services::api::map::parse_within_query;
/// let (request, _) = parse_within_query("bbox=177,-21,-178,-12")?; // Fiji, across 180
/// assert!(request.region.is_some_and(|r| r.bounding_box().crosses_antimeridian()));
/// assert!(parse_within_query("bbox=0,10,1,5").is_err()); // south > north
/// # Ok::<(), nearby_services::api::ApiError>(())
/// ```
pub fn parse_within_query(query: &str) -> Result<(SearchRequest, u64), ApiError> {
    let params = Params::parse(query)?;
    let (bbox, corners) = parse_bbox(&params)?;
    let limit = params.limit()?;
    let category = params.category()?;
    let print = fingerprint_of("bbox", corners, category.as_ref().map(Category::as_str));
    let after = resume(params.get("cursor"), print, "bbox and category")
        .map_err(|message| ApiError::invalid("cursor", message))?;
    Ok((
        SearchRequest {
            after,
            category,
            ..SearchRequest::inside(Region::bbox(bbox), limit)
        },
        print,
    ))
}

/// A validated `GET /v1/search/clusters`.
#[derive(Clone, Debug)]
pub struct ClustersRequest {
    /// The box.
    pub region: Region,
    /// The map's zoom (tiles are taken at `zoom + 2`).
    pub zoom: u8,
    /// Only businesses of this category.
    pub category: Option<Category>,
}

/// Parses `GET /v1/search/clusters`'s query string.
///
/// # Errors
/// A missing or invalid parameter (400 naming it); a box spanning more than
/// [`MAX_CLUSTERS`] tiles at `zoom + 2` (422 naming `bbox`).
///
/// ```
/// use nearby_services::api::map::parse_clusters_query;
/// let request = parse_clusters_query("bbox=-180,-90,180,90&zoom=2")?;
/// assert_eq!(request.zoom, 2);
/// assert!(parse_clusters_query("bbox=-180,-90,180,90&zoom=21").is_err());
/// assert_eq!(parse_clusters_query("bbox=-180,-90,180,90&zoom=9").unwrap_err().status(), 422);
/// # Ok::<(), nearby_services::api::ApiError>(())
/// ```
pub fn parse_clusters_query(query: &str) -> Result<ClustersRequest, ApiError> {
    let params = Params::parse(query)?;
    let (bbox, _) = parse_bbox(&params)?;
    let zoom = params
        .get("zoom")
        .ok_or_else(|| required("zoom"))?
        .trim()
        .parse::<u8>()
        .ok()
        .filter(|z| *z <= MAX_ZOOM)
        .ok_or_else(|| {
            ApiError::invalid("zoom", format!("must be an integer from 0 to {MAX_ZOOM}"))
        })?;
    let category = params.category()?;
    let grid = TileGrid::new(zoom + 2).map_err(|err| ApiError::invalid("zoom", err.to_string()))?;
    let tiles = grid.tiles_in(&bbox);
    if tiles > MAX_CLUSTERS {
        return Err(ApiError::unprocessable(
            "bbox",
            format!(
                "the box spans {tiles} tiles at zoom {} (zoom + 2), more than the {MAX_CLUSTERS} clusters an answer may hold: ask for a smaller box or a lower zoom",
                zoom + 2
            ),
        ));
    }
    Ok(ClustersRequest {
        region: Region::bbox(bbox),
        zoom,
        category,
    })
}

/// `bbox=west,south,east,north`: the box and its four numbers.
fn parse_bbox(params: &Params<'_>) -> Result<(BoundingBox, [f64; 4]), ApiError> {
    let text = params.get("bbox").ok_or_else(|| required("bbox"))?;
    let invalid = |message: String| ApiError::invalid("bbox", message);
    let parts: Vec<&str> = text.split(',').collect();
    if parts.len() != 4 {
        return Err(invalid(format!(
            "must be four numbers west,south,east,north in degrees, got {} value(s)",
            parts.len()
        )));
    }
    let mut corners = [0.0; 4];
    for (corner, part) in corners.iter_mut().zip(&parts) {
        *corner = part
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| invalid(format!("{part:?} is not a finite number")))?;
    }
    let [west, south, east, north] = corners;
    for (name, lng) in [("west", west), ("east", east)] {
        if !(-180.0..=180.0).contains(&lng) {
            return Err(invalid(format!(
                "{name} must be a longitude in [-180, 180], got {lng}"
            )));
        }
    }
    for (name, lat) in [("south", south), ("north", north)] {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(invalid(format!(
                "{name} must be a latitude in [-90, 90], got {lat}"
            )));
        }
    }
    if south > north {
        return Err(invalid(format!(
            "south ({south}) must not be north of north ({north})"
        )));
    }
    let bbox =
        BoundingBox::new(south, west, north, east).map_err(|err| invalid(err.to_string()))?;
    Ok((bbox, corners))
}

/// Parses `POST /v1/search/within`'s body fields.
///
/// # Errors
/// 422 naming `geometry`, `limit`, `cursor` or `category`; 400 for an unknown field.
///
/// ```
/// use nearby_services::api::map::parse_within_body;
/// let body = serde_json::json!({"geometry": {"type": "Polygon",
///     "coordinates": [[[2.3, 48.8], [2.4, 48.8], [2.4, 48.9], [2.3, 48.9], [2.3, 48.8]]]}});
/// let serde_json::Value::Object(fields) = body else { unreachable!() };
/// let (request, _) = parse_within_body(&fields)?;
/// assert_eq!(request.limit, 20);
/// # Ok::<(), nearby_services::api::ApiError>(())
/// ```
pub fn parse_within_body(fields: &Map<String, Value>) -> Result<(SearchRequest, u64), ApiError> {
    if let Some(unknown) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "geometry" | "limit" | "cursor" | "category"))
    {
        return Err(ApiError::malformed(format!(
            "unknown field {unknown:?}: expected geometry, limit, cursor, category"
        )));
    }
    let geometry = fields
        .get("geometry")
        .ok_or_else(|| ApiError::unprocessable("geometry", "is required"))?;
    let (region, numbers) = parse_geometry(geometry)?;
    let limit = match fields.get("limit") {
        None | Some(Value::Null) => super::search::DEFAULT_LIMIT,
        Some(value) => value
            .as_u64()
            .and_then(|l| usize::try_from(l).ok())
            .filter(|l| (1..=super::search::MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::unprocessable(
                    "limit",
                    format!("must be an integer from 1 to {}", super::search::MAX_LIMIT),
                )
            })?,
    };
    let category = match fields.get("category") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            Some(Category::new(text).map_err(|e| ApiError::unprocessable("category", e.message))?)
        }
        Some(_) => return Err(ApiError::unprocessable("category", "must be a string")),
    };
    let print = fingerprint_of("polygon", numbers, category.as_ref().map(Category::as_str));
    let cursor = match fields.get("cursor") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.as_str()),
        Some(_) => return Err(ApiError::unprocessable("cursor", "must be a string")),
    };
    let after = resume(cursor, print, "geometry and category")
        .map_err(|message| ApiError::unprocessable("cursor", message))?;
    Ok((
        SearchRequest {
            after,
            category,
            ..SearchRequest::inside(region, limit)
        },
        print,
    ))
}

/// A GeoJSON Polygon or MultiPolygon: the region, and every number in it (for the cursor's
/// fingerprint, with a separator per ring and polygon).
fn parse_geometry(value: &Value) -> Result<(Region, Vec<f64>), ApiError> {
    let invalid = |message: &str| ApiError::unprocessable("geometry", message.to_owned());
    let Value::Object(object) = value else {
        return Err(invalid("must be a GeoJSON Polygon or MultiPolygon object"));
    };
    let coordinates = object
        .get("coordinates")
        .ok_or_else(|| invalid("has no \"coordinates\""))?;
    let mut numbers = Vec::new();
    let polygons = match object.get("type").and_then(Value::as_str) {
        Some("Polygon") => vec![polygon(coordinates, &mut numbers)?],
        Some("MultiPolygon") => {
            let Value::Array(parts) = coordinates else {
                return Err(invalid(
                    "MultiPolygon coordinates must be an array of polygons",
                ));
            };
            if parts.is_empty() {
                return Err(invalid("a MultiPolygon needs at least one polygon"));
            }
            let mut polygons = Vec::with_capacity(parts.len());
            for part in parts {
                polygons.push(polygon(part, &mut numbers)?);
                numbers.push(f64::NAN);
            }
            polygons
        }
        _ => {
            return Err(invalid("\"type\" must be \"Polygon\" or \"MultiPolygon\""));
        }
    };
    let region = Region::polygons(polygons)
        .map_err(|err| ApiError::unprocessable("geometry", err.to_string()))?;
    Ok((region, numbers))
}

/// One polygon's rings from GeoJSON coordinates, validated.
fn polygon(value: &Value, numbers: &mut Vec<f64>) -> Result<Polygon, ApiError> {
    let invalid = |message: &str| ApiError::unprocessable("geometry", message.to_owned());
    let Value::Array(rings) = value else {
        return Err(invalid("polygon coordinates must be an array of rings"));
    };
    let mut parsed = Vec::with_capacity(rings.len());
    for ring in rings {
        let Value::Array(positions) = ring else {
            return Err(invalid("a ring must be an array of positions"));
        };
        let mut parsed_ring = Vec::with_capacity(positions.len());
        for position in positions {
            let pair = match position {
                Value::Array(pair) if pair.len() >= 2 => (pair[0].as_f64(), pair[1].as_f64()),
                _ => (None, None),
            };
            let (Some(lng), Some(lat)) = pair else {
                return Err(invalid(
                    "a position must be an array [longitude, latitude] of numbers",
                ));
            };
            numbers.push(lng);
            numbers.push(lat);
            parsed_ring.push([lng, lat]);
        }
        parsed.push(parsed_ring);
        numbers.push(f64::INFINITY);
    }
    Polygon::new(parsed).map_err(|err| ApiError::unprocessable("geometry", err.to_string()))
}

fn cluster_body(cluster: &ClusterHit) -> ClusterBody {
    ClusterBody {
        tile: [u32::from(cluster.tile.z), cluster.tile.x, cluster.tile.y],
        count: cluster.count,
        latitude: cluster.position.lat(),
        longitude: cluster.position.lng(),
        business: cluster.business.as_ref().map(BusinessBody::from),
    }
}

fn clusters_geojson(total: u64, clusters: &[ClusterHit]) -> impl IntoResponse {
    let features: Vec<Value> = clusters
        .iter()
        .map(|cluster| {
            let mut properties = json!({
                "tile": [cluster.tile.z, cluster.tile.x, cluster.tile.y],
                "count": cluster.count,
            });
            if let Some(business) = &cluster.business {
                properties["business"] = json!(BusinessBody::from(business));
            }
            json!({
                "type": "Feature",
                "geometry": {
                    "type": "Point",
                    "coordinates": [cluster.position.lng(), cluster.position.lat()],
                },
                "properties": properties,
            })
        })
        .collect();
    (
        [(CONTENT_TYPE, "application/geo+json")],
        Json(json!({
            "type": "FeatureCollection",
            "features": features,
            "total": total,
        })),
    )
}
