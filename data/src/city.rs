//! The bundled GeoNames cities and their CSV parser.

use crate::DataError;
use crate::csv::split_record;

/// The bundled `cities1000.csv` (GeoNames, CC-BY 4.0), exactly as committed.
///
/// ```
/// assert!(nearby_data::CITIES_CSV.starts_with("geonameid,name,country,latitude,longitude,population\n"));
/// ```
pub const CITIES_CSV: &str = include_str!("../cities1000.csv");

/// The header line every cities CSV must start with.
///
/// ```
/// assert_eq!(nearby_data::CITIES_HEADER, "geonameid,name,country,latitude,longitude,population");
/// ```
pub const CITIES_HEADER: &str = "geonameid,name,country,latitude,longitude,population";

/// One populated place from GeoNames.
///
/// ```
/// use nearby_data::City;
///
/// let c = City {
///     geonameid: 2_988_507,
///     name: "Paris".into(),
///     country: "FR".into(),
///     latitude: 48.85341,
///     longitude: 2.3488,
///     population: 2_138_551,
/// };
/// assert_eq!(c.country, "FR");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct City {
    /// GeoNames id (<https://www.geonames.org/{geonameid}>).
    pub geonameid: u32,
    /// Name in UTF-8 as GeoNames spells it.
    pub name: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// Latitude in degrees, `[-90, 90]`.
    pub latitude: f64,
    /// Longitude in degrees, `[-180, 180]`.
    pub longitude: f64,
    /// Population as recorded by GeoNames.
    pub population: u32,
}

/// Parses the bundled GeoNames file ([`CITIES_CSV`]): about 112,000 places with a
/// population of at least 1000. Each call parses afresh (a few tens of milliseconds).
///
/// ```
/// let cities = nearby_data::cities()?;
/// assert!(cities.len() >= 100_000);
/// let shanghai = cities.iter().max_by_key(|c| c.population).expect("not empty");
/// assert_eq!(shanghai.name, "Shanghai");
/// # Ok::<(), nearby_data::DataError>(())
/// ```
pub fn cities() -> Result<Vec<City>, DataError> {
    parse_cities(CITIES_CSV)
}

/// Parses a cities CSV: the header [`CITIES_HEADER`], then one city per line.
///
/// Fields may be quoted RFC 4180 style (`"Brgy. Tinigao, Kalibo"`, `""` for a quote);
/// `\r\n` line endings and a final empty line are accepted. Every error names its 1-based
/// line number.
///
/// ```
/// use nearby_data::{parse_cities, DataError};
///
/// let text = "geonameid,name,country,latitude,longitude,population\n\
///             1,\"Springfield, East\",US,39.8,-89.64,116250\n";
/// let cities = parse_cities(text)?;
/// assert_eq!(cities[0].name, "Springfield, East");
///
/// let bad = "geonameid,name,country,latitude,longitude,population\n1,X,US,91,0,5\n";
/// assert!(matches!(parse_cities(bad), Err(DataError::Parse { line: 2, .. })));
/// # Ok::<(), DataError>(())
/// ```
pub fn parse_cities(text: &str) -> Result<Vec<City>, DataError> {
    // One trailing newline ends the last row; any other empty line is an error.
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut lines = body.split('\n').enumerate();
    let header = lines.next().map_or("", |(_, l)| l);
    if header.strip_suffix('\r').unwrap_or(header) != CITIES_HEADER {
        return Err(DataError::Parse {
            line: 1,
            message: format!("expected header {CITIES_HEADER:?}, found {header:?}"),
        });
    }
    let mut out = Vec::with_capacity(body.len() / 45);
    for (index, raw) in lines {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let city = parse_row(line).map_err(|message| DataError::Parse {
            line: index + 1,
            message,
        })?;
        out.push(city);
    }
    Ok(out)
}

fn parse_row(line: &str) -> Result<City, String> {
    let fields = split_record(line)?;
    let count = fields.len();
    let Ok([id, name, country, lat, lon, pop]) = <[String; 6]>::try_from(fields) else {
        return Err(format!("expected 6 fields, found {count}"));
    };
    let geonameid = id.parse().map_err(|_| format!("bad geonameid {id:?}"))?;
    if name.is_empty() {
        return Err("empty name".to_owned());
    }
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!("bad country code {country:?}"));
    }
    let latitude = parse_coord(&lat, 90.0, "latitude")?;
    let longitude = parse_coord(&lon, 180.0, "longitude")?;
    let population = pop.parse().map_err(|_| format!("bad population {pop:?}"))?;
    Ok(City {
        geonameid,
        name,
        country,
        latitude,
        longitude,
        population,
    })
}

fn parse_coord(text: &str, limit: f64, what: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && (-limit..=limit).contains(&v) => Ok(v),
        _ => Err(format!(
            "bad {what} {text:?} (expected a number in [-{limit}, {limit}])"
        )),
    }
}
