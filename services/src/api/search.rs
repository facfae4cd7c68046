//! `GET /v1/search/nearby`: businesses within a radius, nearest first, keyset-paged.

use super::ApiError;
use crate::business::{Category, position};
use crate::catalog::{SearchPage, SearchRequest};
use crate::cursor::{Cursor, fingerprint};
use crate::state::AppState;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use std::borrow::Cow;
use utoipa::{IntoParams, ToSchema};

/// Default radius, metres.
pub const DEFAULT_RADIUS_M: f64 = 5_000.0;
/// Largest radius, metres.
pub const MAX_RADIUS_M: f64 = 50_000.0;
/// Default page size.
pub const DEFAULT_LIMIT: usize = 20;
/// Largest page size.
pub const MAX_LIMIT: usize = 100;

/// The search's query parameters (for the OpenAPI description; parsing is by hand so each
/// bad value gets its own message).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SearchParams {
    /// Latitude of the centre, degrees in [-90, 90].
    latitude: f64,
    /// Longitude of the centre, degrees in [-180, 180].
    longitude: f64,
    /// Radius in metres, in (0, 50000]; default 5000.
    radius: Option<f64>,
    /// Page size, 1 to 100; default 20.
    limit: Option<u32>,
    /// `next_cursor` from the previous page of the same search.
    cursor: Option<String>,
    /// Only businesses of this category.
    category: Option<String>,
}

// Borrowed from the catalog: serialised without copying its text.
/// One result.
#[derive(Serialize, ToSchema)]
pub struct SearchHit<'a> {
    /// Business id.
    pub id: &'a str,
    /// Name.
    pub name: &'a str,
    /// Latitude, degrees.
    pub latitude: f64,
    /// Longitude, degrees.
    pub longitude: f64,
    /// Category, if any.
    pub category: Option<&'a str>,
    /// Great-circle distance from the centre in metres (sphere of radius 6,371,008.8 m).
    pub distance_m: f64,
}

/// A page of results.
#[derive(Serialize, ToSchema)]
pub struct SearchResponse<'a> {
    /// Nearest first, ties by id.
    pub businesses: Vec<SearchHit<'a>>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Businesses within `radius` metres of the centre, nearest first (ties by id), one page at
/// a time. With `Accept: application/geo+json` the page is a GeoJSON FeatureCollection.
#[utoipa::path(get, path = "/v1/search/nearby", tag = "places", params(SearchParams),
    responses(
        (status = 200, description = "a page of results (GeoJSON FeatureCollection with Accept: application/geo+json)",
            content((SearchResponse = "application/json"), (serde_json::Value = "application/geo+json"))),
        (status = 400, description = "a parameter is missing or invalid", body = super::ErrorBody),
        (status = 503, description = "the index is still loading", body = super::ErrorBody)))]
pub async fn nearby(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (request, print) = parse_query(query.as_deref().unwrap_or(""))?;
    answer(&state, &headers, &request, print)
}

/// Runs a validated search (every search endpoint ends here) and renders its page.
pub(crate) fn answer(
    state: &AppState,
    headers: &HeaderMap,
    request: &SearchRequest,
    print: u64,
) -> Result<Response, ApiError> {
    super::ready(state)?;
    let catalog = state.catalog();
    let page = catalog.search(request);
    // Rendered under the read lock, from the catalog's own bytes; nothing here awaits.
    Ok(respond(headers, page, print))
}

/// A page as JSON, or as GeoJSON when the client accepts `application/geo+json`.
fn respond(headers: &HeaderMap, page: SearchPage, print: u64) -> Response {
    if wants_geojson(headers) {
        geojson(page, print).into_response()
    } else {
        Json(response(page, print)).into_response()
    }
}

/// Whether the client asked for GeoJSON.
pub(crate) fn wants_geojson(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/geo+json"))
}

/// Parses and validates the raw query string of a search: the request and the fingerprint
/// its cursors carry. Every bad input is an [`ApiError`] naming the field, never a panic.
///
/// # Errors
/// A missing or invalid parameter, a foreign cursor, a query string over 4 KiB.
///
/// ```
/// use nearby_services::api::search::parse_query;
/// let (request, _) = parse_query("latitude=48.85&longitude=2.35&radius=1000&limit=5")?;
/// assert_eq!(request.limit, 5);
/// assert!(parse_query("latitude=91&longitude=0").is_err());
/// # Ok::<(), nearby_services::api::ApiError>(())
/// ```
pub fn parse_query(query: &str) -> Result<(SearchRequest, u64), ApiError> {
    let params = Params::parse(query)?;
    let latitude = params
        .number("latitude")?
        .ok_or_else(|| required("latitude"))?;
    let longitude = params
        .number("longitude")?
        .ok_or_else(|| required("longitude"))?;
    let centre = position(latitude, longitude)?;
    let radius_m = params.number("radius")?.unwrap_or(DEFAULT_RADIUS_M);
    if !(radius_m > 0.0 && radius_m <= MAX_RADIUS_M) {
        return Err(ApiError::invalid(
            "radius",
            format!("must be in metres, greater than 0 and at most {MAX_RADIUS_M}"),
        ));
    }
    let limit = params.limit()?;
    let category = params.category()?;
    let print = fingerprint(
        latitude,
        longitude,
        radius_m,
        category.as_ref().map(Category::as_str),
    );
    let after = resume(
        params.get("cursor"),
        print,
        "latitude, longitude, radius and category",
    )
    .map_err(|message| ApiError::invalid("cursor", message))?;
    Ok((
        SearchRequest {
            after,
            category,
            ..SearchRequest::new(centre, radius_m, limit)
        },
        print,
    ))
}

/// Where a page resumes: the cursor's `(distance, id)`, checked to belong to the search with
/// fingerprint `print` (whose parameters `kept` names); the message when it does not.
pub(crate) fn resume(
    cursor: Option<&str>,
    print: u64,
    kept: &str,
) -> Result<Option<(f64, crate::business::BusinessId)>, String> {
    let Some(text) = cursor else {
        return Ok(None);
    };
    let cursor =
        Cursor::decode(text).ok_or_else(|| "is not a cursor this service issued".to_owned())?;
    if cursor.fingerprint != print {
        return Err(format!(
            "belongs to a different search: keep {kept} unchanged while paging"
        ));
    }
    Ok(Some((cursor.distance_m, cursor.id)))
}

pub(crate) fn required(field: &'static str) -> ApiError {
    ApiError::invalid(field, "is required")
}

fn next_cursor(page: &SearchPage, print: u64) -> Option<String> {
    page.next.as_ref().map(|(distance_m, id)| {
        Cursor {
            distance_m: *distance_m,
            id: id.clone(),
            fingerprint: print,
        }
        .encode()
    })
}

fn response<'a>(page: SearchPage<'a>, print: u64) -> SearchResponse<'a> {
    let next_cursor = next_cursor(&page, print);
    SearchResponse {
        businesses: page
            .hits
            .into_iter()
            .map(|hit| SearchHit {
                id: hit.business.id,
                name: hit.business.name,
                latitude: hit.business.position.lat(),
                longitude: hit.business.position.lng(),
                category: hit.business.category,
                distance_m: hit.distance_m,
            })
            .collect(),
        next_cursor,
    }
}

fn geojson(page: SearchPage, print: u64) -> impl IntoResponse {
    let next_cursor = next_cursor(&page, print);
    let features: Vec<serde_json::Value> = page
        .hits
        .iter()
        .map(|hit| {
            json!({
                "type": "Feature",
                "id": hit.business.id,
                "geometry": {
                    "type": "Point",
                    "coordinates": [hit.business.position.lng(), hit.business.position.lat()],
                },
                "properties": {
                    "name": hit.business.name,
                    "category": hit.business.category,
                    "distance_m": hit.distance_m,
                },
            })
        })
        .collect();
    (
        [(CONTENT_TYPE, "application/geo+json")],
        Json(json!({
            "type": "FeatureCollection",
            "features": features,
            "next_cursor": next_cursor,
        })),
    )
}

/// Decoded query parameters, borrowed from the query string unless they had to be decoded;
/// a repeated parameter keeps its last value.
pub(crate) struct Params<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> Params<'a> {
    pub(crate) fn parse(query: &'a str) -> Result<Self, ApiError> {
        if query.len() > 4_096 {
            return Err(ApiError::malformed("the query string is too long"));
        }
        Ok(Params(form_urlencoded_pairs(query)))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }

    /// `limit`: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent.
    pub(crate) fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| {
                    ApiError::invalid("limit", format!("must be an integer from 1 to {MAX_LIMIT}"))
                }),
        }
    }

    /// `category`, validated, if given.
    pub(crate) fn category(&self) -> Result<Option<Category>, ApiError> {
        Ok(self.get("category").map(Category::new).transpose()?)
    }

    /// A finite number, or `None` when the parameter is absent.
    pub(crate) fn number(&self, name: &'static str) -> Result<Option<f64>, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| ApiError::invalid(name, format!("must be a number, got {text:?}")))?;
        if !value.is_finite() {
            return Err(ApiError::invalid(name, "must be a finite number"));
        }
        Ok(Some(value))
    }
}

/// `application/x-www-form-urlencoded` decoding (the `form_urlencoded` crate axum's `Query`
/// uses): `+` is a space, `%XX` a byte; invalid escapes are kept as they are and invalid UTF-8
/// is replaced, so decoding never fails and validation reports the field. A part with
/// nothing to decode is borrowed (the common case: numbers, ids, categories).
fn form_urlencoded_pairs(query: &str) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    form_urlencoded::parse(query.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_form_encoding_and_borrows_what_needs_no_decoding() {
        let pairs = form_urlencoded_pairs("a=1&b=x+y&c=%41%zz&d&e=%4");
        assert_eq!(
            pairs,
            [
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "A%zz".into()),
                ("d".into(), "".into()),
                ("e".into(), "%4".into()),
            ]
        );
        assert!(matches!(pairs[0].1, Cow::Borrowed(_)));
    }
}
