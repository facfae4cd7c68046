//! The raw query string of `GET /v1/search/nearby`: a valid request or a 400 naming the
//! field, never a panic; what is accepted is within the documented ranges.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nearby_services::api::search::{MAX_LIMIT, MAX_RADIUS_M, parse_query};

fuzz_target!(|data: &[u8]| {
    // The HTTP layer hands the handler a string; invalid UTF-8 in a URI is refused earlier.
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((request, _fingerprint)) = parse_query(query) {
        assert!(request.radius_m > 0.0 && request.radius_m <= MAX_RADIUS_M);
        assert!((1..=MAX_LIMIT).contains(&request.limit));
        if let Some((distance, _)) = &request.after {
            assert!(!distance.is_nan(), "a cursor resumed at NaN metres");
        }
    }
});
