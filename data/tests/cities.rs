//! The bundled GeoNames file and the cities parser.

use nearby_data::{CITIES_HEADER, DataError, cities, parse_cities};

#[test]
fn bundled_file_has_over_100k_valid_cities() {
    let cities = cities().expect("bundled file parses");
    assert!(cities.len() >= 100_000, "{} cities", cities.len());
    let mut ids: Vec<u32> = cities.iter().map(|c| c.geonameid).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), cities.len(), "geonameids are unique");
    for c in &cities {
        assert!(
            c.latitude.is_finite() && (-90.0..=90.0).contains(&c.latitude),
            "{c:?}"
        );
        assert!(
            c.longitude.is_finite() && (-180.0..=180.0).contains(&c.longitude),
            "{c:?}"
        );
        assert!(c.population >= 1000, "{c:?}");
        assert_eq!(c.country.len(), 2, "{c:?}");
        assert!(!c.name.is_empty() && !c.name.contains('\n'), "{c:?}");
    }
    // Spot checks, including a name that needed quoting.
    let find = |id: u32| cities.iter().find(|c| c.geonameid == id).expect("present");
    let paris = find(2_988_507);
    assert_eq!(
        (paris.name.as_str(), paris.country.as_str()),
        ("Paris", "FR")
    );
    assert!((paris.latitude - 48.85).abs() < 0.1 && (paris.longitude - 2.35).abs() < 0.1);
    assert_eq!(find(1_681_830).name, "Brgy. Tinigao, Kalibo");
    assert!(
        cities
            .iter()
            .any(|c| c.country == "NZ" && c.longitude > 170.0)
    );
}

const GOOD: &str = "geonameid,name,country,latitude,longitude,population\n\
                    1,Alpha,FR,1.5,2.5,1000\n\
                    2,\"Beta, \"\"the\"\" town\",DE,-3.25,-179.99999,2000\n";

#[test]
fn parses_quoted_fields_and_crlf() {
    let cities = parse_cities(GOOD).expect("valid");
    assert_eq!(cities.len(), 2);
    assert_eq!(cities[1].name, "Beta, \"the\" town");
    assert_eq!(
        (cities[1].latitude, cities[1].longitude),
        (-3.25, -179.99999)
    );
    assert_eq!(cities[1].population, 2000);
    let crlf = GOOD.replace('\n', "\r\n");
    assert_eq!(parse_cities(&crlf), Ok(cities.clone()));
    // No trailing newline is fine too.
    assert_eq!(parse_cities(GOOD.trim_end()), Ok(cities));
    assert_eq!(parse_cities(&format!("{CITIES_HEADER}\n")), Ok(vec![]));
}

fn error_line(text: &str) -> usize {
    match parse_cities(text) {
        Err(DataError::Parse { line, message }) => {
            assert!(!message.is_empty());
            let shown = DataError::Parse { line, message }.to_string();
            assert!(shown.starts_with(&format!("line {line}: ")), "{shown}");
            line
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn errors_name_the_line() {
    let with_row = |row: &str| format!("{GOOD}{row}\n4,Delta,US,1,1,1500\n");
    for bad in [
        "3,Gamma,US,1,1",             // too few fields
        "3,Gamma,US,1,1,1000,extra",  // too many
        "x,Gamma,US,1,1,1000",        // geonameid
        "3,,US,1,1,1000",             // empty name
        "3,Gamma,usa,1,1,1000",       // country
        "3,Gamma,US,95,1,1000",       // latitude range
        "3,Gamma,US,1,-180.5,1000",   // longitude range
        "3,Gamma,US,NaN,1,1000",      // not finite
        "3,Gamma,US,1,1,-5",          // population
        "3,Gamma,US,1,1,99999999999", // population overflow
        "3,\"Gamma,US,1,1,1000",      // unterminated quote
        "3,Gam\"ma,US,1,1,1000",      // stray quote
        "",                           // blank line in the middle
    ] {
        assert_eq!(error_line(&with_row(bad)), 4, "{bad:?}");
    }
    assert_eq!(error_line("id,name\n1,x\n"), 1);
    assert_eq!(error_line(""), 1);
}
