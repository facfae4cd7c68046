//! The dataset every target loads, and the seeded query centres drawn from it.

use geo_index::LatLng;
use nearby_data::SplitMix64;
use nearby_services::business::Business;
use nearby_services::places_file;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// Loads a place file (CSV or GeoJSON), or the bundled GeoNames places when `path` is
/// `None`, refusing duplicate ids: Redis and the Nearby catalog would keep one of them and
/// PostgreSQL both, and the three result sets could then never agree.
///
/// # Errors
/// The file is unreadable or invalid, empty, or repeats an id.
pub fn load(path: Option<&Path>) -> Result<Vec<Business>, String> {
    let places = match path {
        Some(path) => places_file::load(path),
        None => places_file::bundled(),
    }
    .map_err(|e| e.to_string())?;
    if places.is_empty() {
        return Err("the place file has no places".into());
    }
    let mut seen = HashMap::with_capacity(places.len());
    for (i, place) in places.iter().enumerate() {
        if let Some(first) = seen.insert(place.id.as_str(), i) {
            return Err(format!(
                "duplicate place id {:?} (places {} and {})",
                place.id.as_str(),
                first + 1,
                i + 1
            ));
        }
    }
    Ok(places)
}

/// Writes `places` as CSV `id,name,latitude,longitude,category`, the format of the data
/// crate's `generate` command, which `nearby serve --places`, the Redis loader and
/// PostgreSQL's `COPY ... (FORMAT csv, HEADER)` all read. Coordinates are printed with
/// Rust's shortest round-trip formatting, so every target parses the same `f64`s.
///
/// # Errors
/// An I/O error.
pub fn write_csv(places: &[Business], out: &mut impl Write) -> std::io::Result<()> {
    let mut line = String::with_capacity(128);
    out.write_all(b"id,name,latitude,longitude,category\n")?;
    for place in places {
        line.clear();
        nearby_data::push_csv_field(&mut line, place.id.as_str());
        line.push(',');
        nearby_data::push_csv_field(&mut line, place.name.as_str());
        line.push_str(&format!(
            ",{},{},",
            place.position.lat(),
            place.position.lng()
        ));
        if let Some(category) = &place.category {
            nearby_data::push_csv_field(&mut line, category.as_str());
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    out.flush()
}

/// `count` query centres: the positions of places drawn uniformly (with replacement) from
/// `places` by a SplitMix64 stream seeded with `seed`, so the same seed and dataset always
/// give the same queries, and queries follow the data's density like real users would.
pub fn query_centres(places: &[Business], count: usize, seed: u64) -> Vec<LatLng> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|_| places[rng.below(places.len() as u64) as usize].position)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nearby_services::places_file::parse_csv;

    #[test]
    fn csv_round_trips_and_queries_are_seeded() {
        let text = "id,name,latitude,longitude,category\n\
                    a,\"Bar, The\",48.85341,2.3488,cafe\n\
                    b,Plain,-33.000001,151.2,\n";
        let places = parse_csv(text.as_bytes(), "t.csv".as_ref()).unwrap();
        let mut out = Vec::new();
        write_csv(&places, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), text);
        let a = query_centres(&places, 50, 7);
        assert_eq!(a, query_centres(&places, 50, 7));
        assert!(a.iter().any(|c| c.lat() > 0.0) && a.iter().any(|c| c.lat() < 0.0));
    }
}
