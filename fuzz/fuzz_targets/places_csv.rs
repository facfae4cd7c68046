//! A CSV place file: businesses or an error naming the line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nearby_services::places_file::parse_csv;

fuzz_target!(|data: &[u8]| {
    if let Ok(places) = parse_csv(data, "fuzz.csv".as_ref()) {
        for place in places {
            // Checked types: every accepted place is a valid point with a non-empty id.
            assert!(place.position.lat().abs() <= 90.0 && place.position.lng().abs() <= 180.0);
            assert!(!place.id.as_str().is_empty());
        }
    }
});
