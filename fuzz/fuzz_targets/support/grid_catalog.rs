//! A catalog on a regular latitude/longitude grid, poles and ±180 included, for the targets
//! that run what they parse.

use geo_index::LatLng;
use nearby_services::business::{Business, BusinessId, Name};
use nearby_services::catalog::Catalog;

/// One place every `step` degrees of latitude and of longitude.
pub fn grid_catalog(step: u32) -> Catalog {
    let mut businesses = Vec::new();
    for i in 0..=180 / step {
        for j in 0..=360 / step {
            let lat = -90.0 + f64::from(step * i);
            let lng = -180.0 + f64::from(step * j);
            businesses.push(Business {
                id: BusinessId::new(&format!("b{i}-{j}")).expect("valid id"),
                name: Name::new("place").expect("valid name"),
                position: LatLng::new(lat, lng).expect("in range"),
                category: None,
            });
        }
    }
    Catalog::build(businesses, 1)
}
