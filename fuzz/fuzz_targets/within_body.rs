//! The JSON body of `POST /v1/search/within`: a valid request or an error naming the field
//! (422 for `geometry`, `limit`, `cursor`, `category`), never a panic; an accepted polygon
//! searched on a small catalog answers only places inside it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nearby_services::api::map::parse_within_body;
use nearby_services::api::search::MAX_LIMIT;
use nearby_services::catalog::Catalog;
use std::sync::OnceLock;

#[path = "support/grid_catalog.rs"]
mod grid_catalog;

/// Places every 5 degrees over the globe.
fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| grid_catalog::grid_catalog(5))
}

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(data) else {
        return;
    };
    match parse_within_body(&fields) {
        Ok((request, _)) => {
            assert!((1..=MAX_LIMIT).contains(&request.limit));
            let region = request.region.clone().expect("a polygon");
            for hit in catalog().search(&request).hits {
                assert!(region.contains(hit.business.position), "{hit:?} outside");
            }
        }
        Err(err) => assert!(err.status() == 400 || err.status() == 422, "{err:?}"),
    }
});
