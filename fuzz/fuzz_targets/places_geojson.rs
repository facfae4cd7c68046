//! A GeoJSON place file: businesses or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nearby_services::places_file::parse_geojson;

fuzz_target!(|data: &[u8]| {
    if let Ok(places) = parse_geojson(data, "fuzz.geojson".as_ref()) {
        for place in places {
            assert!(place.position.lat().abs() <= 90.0 && place.position.lng().abs() <= 180.0);
            assert!(!place.id.as_str().is_empty());
        }
    }
});
