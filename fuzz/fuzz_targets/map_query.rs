//! The raw query strings of `GET /v1/search/nearest`, `GET /v1/search/within?bbox=` and
//! `GET /v1/search/clusters`: a valid request or an error naming the field, never a panic;
//! what is accepted is within the documented ranges, and running it on a small catalog
//! answers only places inside the box, with cluster counts that add up.
#![no_main]

use geo_index::SpatialIndex;
use libfuzzer_sys::fuzz_target;
use nearby_services::api::map::{
    MAX_CLUSTERS, MAX_ZOOM, parse_clusters_query, parse_nearest_query, parse_within_query,
};
use nearby_services::api::search::MAX_LIMIT;
use nearby_services::catalog::Catalog;
use std::sync::OnceLock;

#[path = "support/grid_catalog.rs"]
mod grid_catalog;

/// A few hundred places on a coarse grid over the globe.
fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| grid_catalog::grid_catalog(15))
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((request, _)) = parse_nearest_query(query) {
        assert!((1..=MAX_LIMIT).contains(&request.limit));
        assert!(catalog().search(&request).hits.len() <= request.limit);
    }
    if let Ok((request, _)) = parse_within_query(query) {
        assert!((1..=MAX_LIMIT).contains(&request.limit));
        let region = request.region.clone().expect("a box");
        for hit in catalog().search(&request).hits {
            assert!(
                region.contains(hit.business.position),
                "{hit:?} outside {region:?}"
            );
        }
    }
    if let Ok(request) = parse_clusters_query(query) {
        assert!(request.zoom <= MAX_ZOOM);
        let clusters = catalog()
            .clusters(&request.region, request.zoom + 2, None)
            .expect("a valid zoom");
        assert!(clusters.len() as u64 <= MAX_CLUSTERS);
        let total: u64 = clusters.iter().map(|c| c.count).sum();
        let brute = geo_index::BruteForce::build(
            (0u32..).zip(catalog().iter().map(|b| b.position)).collect(),
        );
        let expected: u64 = brute
            .clusters(&request.region, request.zoom + 2, None, None)
            .expect("a valid zoom")
            .iter()
            .map(|c| c.count)
            .sum();
        assert_eq!(total, expected);
    }
});
