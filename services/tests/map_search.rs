//! Map-native search through the real router, on the 112,320 GeoNames places bundled in
//! `data/`, against brute force: `nearest` without a radius, `within` a box (across the
//! antimeridian, around the poles) and polygons (MultiPolygon split at ±180°, holes), paging
//! every page, `clusters` whose counts add up to what `within` finds, GeoJSON output, and the
//! 400/413/415/422 answers for bad input.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use geo_index::{LatLng, Polygon};
use http_body_util::BodyExt;
use nearby_services::auth::Secret;
use nearby_services::business::{Business, BusinessId, Category, Name, position};
use nearby_services::catalog::Catalog;
use nearby_services::state::Limits;
use serde_json::{Value, json};
use std::sync::OnceLock;
use tower::ServiceExt;

#[path = "support/app.rs"]
mod app_support;

const CATEGORIES: [&str; 4] = ["cafe", "bakery", "museum", "park"];

/// Every bundled place as a business: id `g{geonameid}`, a category by id.
fn businesses() -> &'static [Business] {
    static BUSINESSES: OnceLock<Vec<Business>> = OnceLock::new();
    BUSINESSES.get_or_init(|| {
        nearby_data::cities()
            .unwrap()
            .into_iter()
            .filter_map(|city| {
                Some(Business {
                    id: BusinessId::new(&format!("g{}", city.geonameid)).ok()?,
                    name: Name::new(&city.name).ok()?,
                    position: position(city.latitude, city.longitude).ok()?,
                    category: Some(
                        Category::new(CATEGORIES[city.geonameid as usize % CATEGORIES.len()])
                            .unwrap(),
                    ),
                })
            })
            .collect()
    })
}

/// The app as `nearby serve` wires it, serving the test places.
async fn app() -> Router {
    let secret = Secret::new(b"map-search-test-secret".to_vec()).unwrap();
    let config = app_support::config(secret, Catalog::build(businesses().to_vec(), 0));
    app_support::start(config).await.router()
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post(app: &Router, body: String) -> (StatusCode, Value) {
    let request = Request::post("/v1/search/within")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    send(app, request).await
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, field: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

/// `(id, distance_m)` of every result, following `next_cursor` to the end (or `max_pages`).
async fn walk(
    app: &Router,
    mut next: impl FnMut(Option<&str>) -> Request<Body>,
    max_pages: usize,
) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..max_pages {
        let (status, body) = send(app, next(cursor.as_deref())).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for b in body["businesses"].as_array().unwrap() {
            out.push((
                b["id"].as_str().unwrap().to_owned(),
                b["distance_m"].as_f64().unwrap(),
            ));
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
    out
}

/// Brute force: the businesses `keep` accepts, by distance from `centre`, ties by id.
fn expected(centre: LatLng, keep: impl Fn(&Business) -> bool) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = businesses()
        .iter()
        .filter(|b| keep(b))
        .map(|b| (b.id.to_string(), centre.distance_m(b.position)))
        .collect();
    out.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// Box membership written out independently of the index: -180 and 180 are one meridian.
fn in_box(b: &Business, [west, south, east, north]: [f64; 4]) -> bool {
    let (lat, lng) = (b.position.lat(), b.position.lng());
    let lng_in = |lng: f64| {
        if west <= east {
            (west..=east).contains(&lng)
        } else {
            lng >= west || lng <= east
        }
    };
    (south..=north).contains(&lat)
        && (lng_in(lng) || (lng == 180.0 && lng_in(-180.0)) || (lng == -180.0 && lng_in(180.0)))
}

fn box_centre([west, south, east, north]: [f64; 4]) -> LatLng {
    let width = if west > east {
        east + 360.0 - west
    } else {
        east - west
    };
    let mut lng = west + width / 2.0;
    if lng > 180.0 {
        lng -= 360.0;
    }
    LatLng::new((south + north) / 2.0, lng).unwrap()
}

fn bbox_text([w, s, e, n]: [f64; 4]) -> String {
    format!("{w},{s},{e},{n}")
}

const BOXES: [[f64; 4]; 6] = [
    [2.25, 48.81, 2.42, 48.90],    // Paris
    [177.0, -21.0, -178.0, -12.0], // Fiji, across 180
    [170.0, 60.0, -170.0, 72.0],   // Chukotka, across 180
    [-180.0, 75.0, 180.0, 90.0],   // the Arctic
    [-180.0, -90.0, 180.0, -45.0], // the far south
    [-150.0, -5.0, -140.0, 5.0],   // open Pacific
];

#[tokio::test]
async fn within_a_box_pages_through_exactly_the_brute_force_answer() {
    let app = app().await;
    for bbox in BOXES {
        for category in [None, Some("museum")] {
            let uri = |cursor: Option<&str>| {
                let mut uri = format!("/v1/search/within?bbox={}&limit=37", bbox_text(bbox));
                if let Some(c) = category {
                    uri.push_str(&format!("&category={c}"));
                }
                if let Some(c) = cursor {
                    uri.push_str(&format!("&cursor={c}"));
                }
                Request::get(uri).body(Body::empty()).unwrap()
            };
            let got = walk(&app, uri, 10_000).await;
            let want = expected(box_centre(bbox), |b| {
                in_box(b, bbox)
                    && category.is_none_or(|c| b.category.as_ref().unwrap().as_str() == c)
            });
            assert_eq!(got, want, "{bbox:?} {category:?}");
        }
    }
    // The whole world is a valid box: its first page is the places nearest (0, 0).
    let (status, body) = get(&app, "/v1/search/within?bbox=-180,-90,180,90&limit=5").await;
    assert_eq!(status, StatusCode::OK);
    let first: Vec<&str> = body["businesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    let want = expected(LatLng::new(0.0, 0.0).unwrap(), |_| true);
    assert_eq!(
        first,
        want[..5]
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn nearest_has_no_radius_and_its_cursor_is_its_own() {
    let app = app().await;
    for (lat, lng) in [
        (48.8566, 2.3522),
        (-90.0, 0.0),
        (0.0, -160.0),
        (-16.5, -179.9),
    ] {
        let uri = |cursor: Option<&str>| {
            let mut uri = format!("/v1/search/nearest?latitude={lat}&longitude={lng}&limit=100");
            if let Some(c) = cursor {
                uri.push_str(&format!("&cursor={c}"));
            }
            Request::get(uri).body(Body::empty()).unwrap()
        };
        let got = walk(&app, uri, 5).await;
        let want = expected(LatLng::new(lat, lng).unwrap(), |_| true);
        assert_eq!(got, want[..500].to_vec(), "{lat},{lng}");
    }
    let (_, body) = get(&app, "/v1/search/nearest?latitude=1&longitude=2&limit=1").await;
    let cursor = body["next_cursor"].as_str().unwrap().to_owned();
    let (status, body) = get(
        &app,
        &format!("/v1/search/nearest?latitude=1&longitude=3&cursor={cursor}"),
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "cursor");
    let (status, body) = get(
        &app,
        &format!("/v1/search/within?bbox=1,2,3,4&cursor={cursor}"),
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "cursor");
    for (uri, field) in [
        ("/v1/search/nearest?longitude=2", "latitude"),
        ("/v1/search/nearest?latitude=91&longitude=2", "latitude"),
        (
            "/v1/search/nearest?latitude=1&longitude=2&limit=101",
            "limit",
        ),
        ("/v1/search/nearest?latitude=1&longitude=2&limit=0", "limit"),
    ] {
        let (status, body) = get(&app, uri).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, field);
    }
}

/// A polygon's rings of `[lng, lat]`.
type Rings = Vec<Vec<[f64; 2]>>;

fn square(w: f64, s: f64, e: f64, n: f64) -> Rings {
    vec![vec![[w, s], [e, s], [e, n], [w, n], [w, s]]]
}

#[tokio::test]
async fn within_polygons_pages_through_exactly_the_brute_force_answer() {
    let app = app().await;
    let cases: Vec<(Value, Vec<Rings>)> = vec![
        // Fiji split at the antimeridian.
        {
            let parts = vec![
                square(177.0, -21.0, 180.0, -12.0),
                square(-180.0, -21.0, -178.0, -12.0),
            ];
            (json!({"type": "MultiPolygon", "coordinates": parts}), parts)
        },
        // Greater Paris with a hole over the centre, clockwise outer ring.
        {
            let rings = vec![
                vec![
                    [2.1, 48.7],
                    [2.1, 49.0],
                    [2.6, 49.0],
                    [2.6, 48.7],
                    [2.1, 48.7],
                ],
                vec![
                    [2.3, 48.84],
                    [2.38, 48.84],
                    [2.38, 48.88],
                    [2.3, 48.88],
                    [2.3, 48.84],
                ],
            ];
            (
                json!({"type": "Polygon", "coordinates": rings}),
                vec![rings],
            )
        },
        // A cap around the north pole.
        {
            let rings = square(-180.0, 70.0, 180.0, 90.0);
            (
                json!({"type": "Polygon", "coordinates": rings}),
                vec![rings],
            )
        },
        // A triangle over the Low Countries.
        {
            let rings = vec![vec![[3.0, 50.5], [7.0, 51.0], [4.5, 53.5], [3.0, 50.5]]];
            (
                json!({"type": "Polygon", "coordinates": rings}),
                vec![rings],
            )
        },
    ];
    for (geometry, parts) in cases {
        let polygons: Vec<Polygon> = parts
            .into_iter()
            .map(|p| Polygon::new(p).unwrap())
            .collect();
        let region = geo_index::Region::polygons(polygons.clone()).unwrap();
        let body = |cursor: Option<&str>| {
            let mut body = json!({"geometry": geometry, "limit": 41});
            if let Some(c) = cursor {
                body["cursor"] = json!(c);
            }
            Request::post("/v1/search/within")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap()
        };
        let got = walk(&app, body, 10_000).await;
        let want = expected(region.centre(), |b| {
            polygons.iter().any(|p| p.contains(b.position))
        });
        assert!(!want.is_empty(), "{geometry}");
        assert_eq!(got, want, "{geometry}");
    }
}

#[tokio::test]
async fn bad_polygons_are_422s_naming_geometry() {
    let app = app().await;
    let ring =
        |positions: Value| json!({"geometry": {"type": "Polygon", "coordinates": [positions]}});
    let too_many: Vec<[f64; 2]> = (0..10_001)
        .map(|i| [f64::from(i % 100) * 0.01, f64::from(i / 100) * 0.01])
        .collect();
    for (body, field) in [
        (ring(json!([[0, 0], [1, 0], [1, 1], [0, 1]])), "geometry"), // unclosed
        (ring(json!([[0, 0], [1, 0], [0, 0]])), "geometry"),         // too few
        (ring(json!([[0, 0], [181, 0], [1, 1], [0, 0]])), "geometry"), // out of range
        (ring(json!([[0, 0], [1, "x"], [1, 1], [0, 0]])), "geometry"),
        (
            json!({"geometry": {"type": "Point", "coordinates": [0, 0]}}),
            "geometry",
        ),
        (
            json!({"geometry": {"type": "MultiPolygon", "coordinates": []}}),
            "geometry",
        ),
        (json!({}), "geometry"),
        (
            json!({"geometry": {"type": "Polygon", "coordinates": [too_many]}}),
            "geometry",
        ),
        (
            json!({"geometry": {"type": "Polygon", "coordinates": square(0.0, 0.0, 1.0, 1.0)}, "limit": 0}),
            "limit",
        ),
        (
            json!({"geometry": {"type": "Polygon", "coordinates": square(0.0, 0.0, 1.0, 1.0)}, "cursor": "nope"}),
            "cursor",
        ),
        (
            json!({"geometry": {"type": "Polygon", "coordinates": square(0.0, 0.0, 1.0, 1.0)}, "category": "Bad Category"}),
            "category",
        ),
    ] {
        let text = body.to_string();
        if text.len() > 64 * 1024 {
            continue;
        }
        let (status, answer) = post(&app, text).await;
        assert_error(status, &answer, StatusCode::UNPROCESSABLE_ENTITY, field);
    }
    // Over 64 KiB: 413; not JSON: 400; not application/json: 415.
    let huge = json!({"geometry": {"type": "Polygon", "coordinates": [vec![[0.123_456_789_012_345_f64, 0.123_456_789_012_345_f64]; 3_000]]}});
    let (status, _) = post(&app, huge.to_string()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = post(&app, "{".to_owned()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let request = Request::post("/v1/search/within")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    let (status, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn cluster_counts_add_up_to_what_within_finds() {
    let app = app().await;
    let cases: [([f64; 4], u8); 6] = [
        ([-180.0, -90.0, 180.0, 90.0], 0),
        ([-180.0, -85.0, 180.0, 85.0], 2),
        (BOXES[0], 12),
        (BOXES[1], 5),
        (BOXES[2], 3),
        (BOXES[3], 1),
    ];
    for (bbox, zoom) in cases {
        for category in [None, Some("park")] {
            let mut uri = format!("/v1/search/clusters?bbox={}&zoom={zoom}", bbox_text(bbox));
            if let Some(c) = category {
                uri.push_str(&format!("&category={c}"));
            }
            let (status, body) = get(&app, &uri).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let want = expected(box_centre(bbox), |b| {
                in_box(b, bbox)
                    && category.is_none_or(|c| b.category.as_ref().unwrap().as_str() == c)
            });
            assert_eq!(body["total"], want.len(), "{bbox:?} {zoom}");
            let clusters = body["clusters"].as_array().unwrap();
            let sum: u64 = clusters.iter().map(|c| c["count"].as_u64().unwrap()).sum();
            assert_eq!(sum, want.len() as u64);
            assert!(clusters.len() <= 4_096);
            // Each cluster's tile is the one its places are in, and a one-place cluster
            // names its place.
            for c in clusters {
                let tile = c["tile"].as_array().unwrap();
                assert_eq!(tile[0].as_u64().unwrap(), u64::from(zoom) + 2);
                let count = c["count"].as_u64().unwrap();
                assert!(count >= 1);
                match count {
                    1 => {
                        let business = &c["business"];
                        assert_eq!(business["latitude"], c["latitude"], "{c}");
                        let place = LatLng::new(
                            business["latitude"].as_f64().unwrap(),
                            business["longitude"].as_f64().unwrap(),
                        )
                        .unwrap();
                        let at = geo_index::Tile::containing(place, zoom + 2).unwrap();
                        assert_eq!(
                            [u64::from(at.z), u64::from(at.x), u64::from(at.y)],
                            [
                                tile[0].as_u64().unwrap(),
                                tile[1].as_u64().unwrap(),
                                tile[2].as_u64().unwrap()
                            ]
                        );
                    }
                    _ => assert!(c.get("business").is_none(), "{c}"),
                }
            }
            // Brute force per tile.
            let mut per_tile = std::collections::BTreeMap::new();
            for b in businesses().iter().filter(|b| {
                in_box(b, bbox)
                    && category.is_none_or(|c| b.category.as_ref().unwrap().as_str() == c)
            }) {
                let t = geo_index::Tile::containing(b.position, zoom + 2).unwrap();
                *per_tile.entry((t.x, t.y)).or_insert(0u64) += 1;
            }
            let got: std::collections::BTreeMap<(u32, u32), u64> = clusters
                .iter()
                .map(|c| {
                    let t = c["tile"].as_array().unwrap();
                    (
                        (t[1].as_u64().unwrap() as u32, t[2].as_u64().unwrap() as u32),
                        c["count"].as_u64().unwrap(),
                    )
                })
                .collect();
            assert_eq!(got, per_tile, "{bbox:?} zoom {zoom}");
        }
    }
}

#[tokio::test]
async fn a_cluster_across_the_antimeridian_is_placed_there() {
    let app = app().await;
    let (status, body) = get(&app, "/v1/search/clusters?bbox=177,-21,-178,-12&zoom=0").await;
    assert_eq!(status, StatusCode::OK);
    // Zoom 2 tiles split at 180°: the Fiji places form two clusters, each near 180°, never
    // near 0° (a plain average of longitudes would put one there).
    for c in body["clusters"].as_array().unwrap() {
        assert!(c["longitude"].as_f64().unwrap().abs() > 170.0, "{c}");
    }
}

#[tokio::test]
async fn clusters_refuse_bad_input_and_too_many_tiles() {
    let app = app().await;
    for (uri, status, field) in [
        (
            "/v1/search/clusters?zoom=3",
            StatusCode::BAD_REQUEST,
            "bbox",
        ),
        (
            "/v1/search/clusters?bbox=1,2,3&zoom=3",
            StatusCode::BAD_REQUEST,
            "bbox",
        ),
        (
            "/v1/search/clusters?bbox=1,2,3,x&zoom=3",
            StatusCode::BAD_REQUEST,
            "bbox",
        ),
        (
            "/v1/search/clusters?bbox=1,5,3,4&zoom=3",
            StatusCode::BAD_REQUEST,
            "bbox",
        ),
        (
            "/v1/search/clusters?bbox=181,2,3,4&zoom=3",
            StatusCode::BAD_REQUEST,
            "bbox",
        ),
        (
            "/v1/search/clusters?bbox=1,-91,3,4&zoom=3",
            StatusCode::BAD_REQUEST,
            "bbox",
        ),
        (
            "/v1/search/clusters?bbox=1,2,3,4",
            StatusCode::BAD_REQUEST,
            "zoom",
        ),
        (
            "/v1/search/clusters?bbox=1,2,3,4&zoom=21",
            StatusCode::BAD_REQUEST,
            "zoom",
        ),
        (
            "/v1/search/clusters?bbox=1,2,3,4&zoom=-1",
            StatusCode::BAD_REQUEST,
            "zoom",
        ),
        (
            "/v1/search/clusters?bbox=1,2,3,4&zoom=2&category=no%21",
            StatusCode::BAD_REQUEST,
            "category",
        ),
        (
            "/v1/search/clusters?bbox=-180,-90,180,90&zoom=5",
            StatusCode::UNPROCESSABLE_ENTITY,
            "bbox",
        ),
        (
            "/v1/search/within?bbox=1,2,3",
            StatusCode::BAD_REQUEST,
            "bbox",
        ),
        ("/v1/search/within", StatusCode::BAD_REQUEST, "bbox"),
        (
            "/v1/search/within?bbox=nan,2,3,4",
            StatusCode::BAD_REQUEST,
            "bbox",
        ),
    ] {
        let (got, body) = get(&app, uri).await;
        assert_error(got, &body, status, field);
    }
    // A phone screen at zoom 20 (about 300 by 200 m) is fine.
    let (status, _) = get(
        &app,
        "/v1/search/clusters?bbox=2.35,48.855,2.3535,48.8565&zoom=20",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn geojson_output() {
    let app = app().await;
    let request = |uri: &str| {
        Request::get(uri)
            .header(header::ACCEPT, "application/geo+json")
            .body(Body::empty())
            .unwrap()
    };
    let response = app
        .clone()
        .oneshot(request(
            "/v1/search/clusters?bbox=2.25,48.81,2.42,48.90&zoom=12",
        ))
        .await
        .unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/geo+json"
    );
    let (_, body) = send(
        &app,
        request("/v1/search/clusters?bbox=2.25,48.81,2.42,48.90&zoom=12"),
    )
    .await;
    assert_eq!(body["type"], "FeatureCollection");
    let features = body["features"].as_array().unwrap();
    assert!(!features.is_empty());
    let total: u64 = features
        .iter()
        .map(|f| f["properties"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(body["total"], total);
    assert_eq!(features[0]["geometry"]["type"], "Point");
    let (_, body) = send(
        &app,
        request("/v1/search/within?bbox=2.25,48.81,2.42,48.90&limit=3"),
    )
    .await;
    assert_eq!(body["type"], "FeatureCollection");
    assert_eq!(body["features"].as_array().unwrap().len(), 3);
    assert!(body["next_cursor"].is_string());
}

#[tokio::test]
async fn a_geometry_stays_within_64_kib_whatever_the_body_limit() {
    let secret = Secret::new(b"map-search-test-secret".to_vec()).unwrap();
    let limits = Limits {
        body_bytes: 1 << 20,
        ..Limits::default()
    };
    let mut config = app_support::config(secret, Catalog::build(businesses()[..1_000].to_vec(), 0));
    config.limits = limits;
    let app = app_support::start(config).await.router();
    // 9,000 positions (under the vertex limit) written out long: over 64 KiB.
    let ring: Vec<[f64; 2]> = (0..9_000)
        .map(|i| {
            let angle = std::f64::consts::TAU * f64::from(i) / 9_000.0;
            [10.0 * angle.cos(), 10.0 * angle.sin()]
        })
        .chain(std::iter::once([10.0, 0.0]))
        .collect();
    let body = json!({"geometry": {"type": "Polygon", "coordinates": [ring]}}).to_string();
    assert!(body.len() > 64 * 1024);
    let (status, answer) = post(&app, body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("65536")
    );
}
