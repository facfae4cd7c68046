//! Geohash encoding checked against published reference values, and the index's 64-bit keys
//! against the `geohash` crate at the edges of the map.

use geo_index::{LatLng, geohash, geohash_key};

const BASE32: &[u8] = b"0123456789bcdefghjkmnpqrstuvwxyz";

fn prefix_of_key(key: u64, len: usize) -> String {
    (0..len)
        .map(|i| BASE32[((key >> (59 - 5 * i)) & 31) as usize] as char)
        .collect()
}

#[test]
fn published_reference_values() {
    // Wikipedia, "Geohash": the worked example and the Jutland example.
    let cases = [
        (42.605, -5.603, "ezs42"),
        (57.64911, 10.40744, "u4pruydqqvj"),
        // The `geohash` crate's documented example.
        (35.3003, -120.6623, "9q60y60rhs"),
    ];
    for (lat, lng, expected) in cases {
        let p = LatLng::new(lat, lng).unwrap();
        assert_eq!(geohash(p, expected.len()).as_deref(), Some(expected));
        assert_eq!(prefix_of_key(geohash_key(p), expected.len()), expected);
    }
}

#[test]
fn decoding_the_reference_lands_inside_the_cell() {
    // Wikipedia: "ezs42" decodes to 42.6 ± 0.022, -5.6 ± 0.022.
    let (centre, lng_err, lat_err) = geohash::decode("ezs42").unwrap();
    assert!((centre.y - 42.6).abs() <= 0.03 && lat_err <= 0.025);
    assert!((centre.x - (-5.6)).abs() <= 0.03 && lng_err <= 0.025);
}

#[test]
fn neighbours_wrap_across_the_antimeridian() {
    let east_edge = geohash(LatLng::new(0.5, 179.99).unwrap(), 5).unwrap();
    let west_edge = geohash(LatLng::new(0.5, -179.99).unwrap(), 5).unwrap();
    let neighbours = geohash::neighbors(&east_edge).unwrap();
    assert_eq!(neighbours.e, west_edge);
    // Our keys agree at both edges.
    assert_eq!(
        prefix_of_key(geohash_key(LatLng::new(0.5, -179.99).unwrap()), 5),
        west_edge
    );
}

#[test]
fn keys_at_the_poles_and_the_antimeridian() {
    // The north pole and 180° fall in the last cells, not back in the first.
    let north = geohash_key(LatLng::new(90.0, 0.0).unwrap());
    let south = geohash_key(LatLng::new(-90.0, 0.0).unwrap());
    assert!(north > south);
    assert_eq!(geohash_key(LatLng::new(90.0, 180.0).unwrap()), u64::MAX);
    assert_eq!(geohash_key(LatLng::new(-90.0, -180.0).unwrap()), 0);
    assert_eq!(prefix_of_key(u64::MAX, 12), "zzzzzzzzzzzz");
}
