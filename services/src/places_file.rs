//! Place files: CSV with a header naming at least `id,name,latitude,longitude` (optional
//! `category`, other columns ignored, RFC 4180 quoting), or a GeoJSON FeatureCollection of
//! Points with `id`, `name` and `category` properties; and the bundled GeoNames places.
//!
//! A file loads whole or not at all: the first bad row stops the load with an error naming
//! the file and the line (the feature, for GeoJSON).

use crate::business::{
    Business, BusinessId, BusinessRef, Category, FieldError, Name, check_category, check_id,
    check_name, position,
};
use crate::catalog::{Catalog, CatalogBuilder};
use geo_index::LatLng;
use std::borrow::Cow;
use std::fmt;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// Why a place file was refused.
///
/// ```
/// use nearby_services::places_file::parse_csv;
/// let err = parse_csv("id,name,latitude,longitude\n1,Home,91,0\n".as_bytes(), "x.csv".as_ref())
///     .unwrap_err();
/// assert_eq!(err.to_string(), "x.csv:2: latitude: must be a number in [-90, 90]");
/// ```
#[derive(Debug)]
pub struct PlacesFileError {
    /// The file.
    pub path: PathBuf,
    /// Line (CSV) or feature number (GeoJSON), 1-based; 0 for the file as a whole.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PlacesFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
        }
    }
}

impl std::error::Error for PlacesFileError {}

/// Reads a place file, CSV or GeoJSON (by extension `.geojson`/`.json`, or content starting
/// with `{`).
///
/// # Errors
/// The first problem, with file and line.
///
/// ```
/// let err = nearby_services::places_file::load("/no/such/file.csv".as_ref()).unwrap_err();
/// assert_eq!(err.line, 0);
/// ```
pub fn load(path: &Path) -> Result<Vec<Business>, PlacesFileError> {
    let text = std::fs::read(path).map_err(|err| PlacesFileError {
        path: path.to_path_buf(),
        line: 0,
        message: err.to_string(),
    })?;
    let is_json = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("geojson" | "json")
    ) || text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if is_json {
        parse_geojson(&text, path)
    } else {
        parse_csv(text.as_slice(), path)
    }
}

/// Parses CSV place rows.
///
/// # Errors
/// A missing required column, or the first bad row.
///
/// ```
/// use nearby_services::places_file::parse_csv;
/// let csv = "name,id,latitude,longitude,extra\n\"Bar, The\",b1,1.5,2.5,x\n";
/// let places = parse_csv(csv.as_bytes(), "p.csv".as_ref())?;
/// assert_eq!(places[0].name.as_str(), "Bar, The");
/// # Ok::<(), nearby_services::places_file::PlacesFileError>(())
/// ```
pub fn parse_csv(
    reader: impl std::io::Read,
    path: &Path,
) -> Result<Vec<Business>, PlacesFileError> {
    let mut places = Vec::new();
    visit_csv(reader, path, |business| places.push(business.to_business()))?;
    Ok(places)
}

/// Reads CSV place rows one at a time, handing each, checked, to `row`: nothing is kept, so
/// a file of any size streams through in constant memory. Returns the number of rows.
///
/// # Errors
/// A missing required column, or the first bad row (rows before it were already handed
/// over).
///
/// ```
/// use nearby_services::places_file::visit_csv;
/// let csv = "id,name,latitude,longitude,category\na,A,1,2,Cafe\n";
/// let mut seen = Vec::new();
/// visit_csv(csv.as_bytes(), "p.csv".as_ref(), |b| seen.push((b.id.to_owned(), b.category.map(str::to_owned))))?;
/// assert_eq!(seen, [("a".to_owned(), Some("cafe".to_owned()))]);
/// # Ok::<(), nearby_services::places_file::PlacesFileError>(())
/// ```
pub fn visit_csv(
    reader: impl std::io::Read,
    path: &Path,
    mut row: impl FnMut(BusinessRef<'_>),
) -> Result<u64, PlacesFileError> {
    let mut failed = None;
    let rows = split_csv(reader, path, |raw| match check_row(&raw) {
        Ok((id, name, position, category)) => {
            row(BusinessRef {
                id,
                name,
                position,
                category: category.as_deref(),
            });
            ControlFlow::Continue(())
        }
        Err(err) => {
            failed = Some(row_error(path, raw.line, &err));
            ControlFlow::Break(())
        }
    })?;
    failed.map_or(Ok(rows), Err)
}

/// One CSV row's fields, not yet checked: id, name, latitude, longitude, category (empty
/// when the file has no category column).
struct RawRow<'a> {
    line: u64,
    fields: [&'a [u8]; 5],
}

/// Splits CSV into rows (RFC 4180 quoting), picking the place columns by the header, and
/// hands each to `raw` until it breaks. Returns the rows read.
fn split_csv(
    reader: impl std::io::Read,
    path: &Path,
    mut raw: impl FnMut(RawRow<'_>) -> ControlFlow<()>,
) -> Result<u64, PlacesFileError> {
    let error = |line: u64, message: String| PlacesFileError {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut csv = csv::ReaderBuilder::new()
        .flexible(false)
        .buffer_capacity(1 << 16)
        .from_reader(reader);
    let headers = csv
        .headers()
        .map_err(|err| error(1, format!("unreadable header: {err}")))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let required = |name: &str| {
        column(name).ok_or_else(|| {
            error(
                1,
                format!("the header must name id, name, latitude and longitude (missing {name})"),
            )
        })
    };
    let columns = [
        Some(required("id")?),
        Some(required("name")?),
        Some(required("latitude")?),
        Some(required("longitude")?),
        column("category"),
    ];
    // One record reused for every row: no allocation per row.
    let mut record = csv::ByteRecord::new();
    let mut rows = 0;
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Ok(rows),
            Err(err) => {
                let line = err.position().map_or(0, csv::Position::line);
                return Err(error(line, format!("unreadable row: {err}")));
            }
        }
        let line = record.position().map_or(0, csv::Position::line);
        let fields = columns.map(|c| c.and_then(|i| record.get(i)).unwrap_or_default());
        rows += 1;
        if raw(RawRow { line, fields }).is_break() {
            return Ok(rows);
        }
    }
}

/// The checked parts of a row: id, name (trimmed), position, category (lowercased).
type CheckedRow<'a> = (&'a str, &'a str, LatLng, Option<Cow<'a, str>>);

/// Checks a row's fields with the rules of [`crate::business`].
fn check_row<'a>(raw: &RawRow<'a>) -> Result<CheckedRow<'a>, FieldError> {
    let [id, name, latitude, longitude, category] = raw.fields;
    let text = |bytes: &'a [u8], field_name: &'static str| {
        std::str::from_utf8(bytes).map_err(|_| FieldError::new(field_name, "is not valid UTF-8"))
    };
    check_fields([
        text(id, "id")?,
        text(name, "name")?,
        text(latitude, "latitude")?,
        text(longitude, "longitude")?,
        text(category, "category")?,
    ])
}

/// Checks a row's fields, already text: id, name, latitude, longitude, category.
fn check_fields(fields: [&str; 5]) -> Result<CheckedRow<'_>, FieldError> {
    let [id, name, latitude, longitude, category] = fields;
    let number = |text: &str, field_name: &'static str| {
        text.trim()
            .parse::<f64>()
            .map_err(|_| FieldError::new(field_name, format!("{text:?} is not a number")))
    };
    let category = match category.trim() {
        "" => None,
        c => Some(check_category(c)?),
    };
    Ok((
        check_id(id.trim())?,
        check_name(name)?,
        position(
            number(latitude, "latitude")?,
            number(longitude, "longitude")?,
        )?,
        category,
    ))
}

fn row_error(path: &Path, line: u64, err: &FieldError) -> PlacesFileError {
    PlacesFileError {
        path: path.to_path_buf(),
        line,
        message: err.to_string(),
    }
}

/// Loads a place file straight into a catalog, every business at `revision`: CSV streams
/// row by row into the catalog's compact storage (no intermediate list of businesses), so
/// memory during the load stays close to the catalog's own.
///
/// # Errors
/// As [`load`].
///
/// ```
/// let err = nearby_services::places_file::load_catalog("/no/such/file.csv".as_ref(), 0);
/// assert!(err.is_err());
/// ```
pub fn load_catalog(path: &Path, revision: i64) -> Result<Catalog, PlacesFileError> {
    use std::io::{BufRead, BufReader};
    let error = |message: String| PlacesFileError {
        path: path.to_path_buf(),
        line: 0,
        message,
    };
    let file = std::fs::File::open(path).map_err(|err| error(err.to_string()))?;
    let size = file.metadata().map_or(0, |m| m.len());
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let head = reader.fill_buf().map_err(|err| error(err.to_string()))?;
    let first = head.iter().find(|b| !b.is_ascii_whitespace()).copied();
    // Rows in the file, estimated from the first megabyte: the id table is sized once
    // instead of growing (each growth re-hashes every id read so far).
    let lines_in_head = head.iter().filter(|&&b| b == b'\n').count().max(1);
    let bytes_per_row = (head.len() / lines_in_head).max(8) as u64;
    let is_json = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("geojson" | "json")
    ) || first == Some(b'{');
    if is_json {
        return load(path).map(|places| Catalog::build(places, revision));
    }
    // Estimates only; room reserved but never written costs little memory, and the builder
    // gives back what is left over.
    let rows = usize::try_from(size / bytes_per_row + size / bytes_per_row / 50).unwrap_or(0);
    let text_bytes = usize::try_from(size / 2).unwrap_or(0);
    let mut builder = CatalogBuilder::with_capacity(rows, text_bytes);
    // Two stages on two threads: this one splits rows, the other checks and stores them
    // (checking and the id hashing are about as much work as splitting). Batches keep the
    // hand-over cheap; the bounded channel keeps splitting from running far ahead. The first
    // bad row stops both.
    let (batches, received) = std::sync::mpsc::sync_channel::<RawBatch>(4);
    std::thread::scope(|scope| {
        let storing = scope.spawn(move || {
            for batch in received {
                // CSV splits at ASCII bytes, which never occur inside a multi-byte character:
                // when the batch is valid UTF-8 as a whole, so is every field in it, and one
                // validation of the batch replaces five per row.
                let text = std::str::from_utf8(&batch.bytes).ok();
                for (i, raw) in batch.rows().enumerate() {
                    let checked = match text {
                        Some(text) => check_fields(batch.fields_in(text, i)),
                        None => check_row(&raw),
                    };
                    let (id, name, position, category) =
                        checked.map_err(|err| row_error(path, raw.line, &err))?;
                    let business = BusinessRef {
                        id,
                        name,
                        position,
                        category: category.as_deref(),
                    };
                    builder.push(business, revision);
                }
            }
            Ok(builder)
        });
        let mut batch = RawBatch::default();
        let split = split_csv(reader, path, |raw| {
            batch.push(&raw);
            if batch.ends.len() == RawBatch::ROWS {
                // A closed channel means the storing thread stopped at a bad row.
                if batches.send(std::mem::take(&mut batch)).is_err() {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        let _ = batches.send(batch);
        drop(batches);
        let stored: Result<CatalogBuilder, PlacesFileError> = storing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // Both may have failed (the splitter sent every row before the one it could not
        // read): the first problem in the file is the one to report.
        match (split, stored) {
            (Ok(_), Ok(builder)) => Ok(builder.finish()),
            (Err(unreadable), Err(refused)) if refused.line < unreadable.line => Err(refused),
            (Err(unreadable), _) => Err(unreadable),
            (Ok(_), Err(refused)) => Err(refused),
        }
    })
}

/// Rows handed from the splitting thread to the storing one: their fields back to back, and
/// where each ends.
#[derive(Default)]
struct RawBatch {
    bytes: Vec<u8>,
    ends: Vec<(u64, [usize; 5])>,
}

impl RawBatch {
    const ROWS: usize = 4096;

    fn push(&mut self, raw: &RawRow<'_>) {
        let ends = raw.fields.map(|field| {
            self.bytes.extend_from_slice(field);
            self.bytes.len()
        });
        self.ends.push((raw.line, ends));
    }

    /// Row `i`'s fields as slices of `text`, the batch's bytes already validated as UTF-8.
    fn fields_in<'a>(&self, text: &'a str, i: usize) -> [&'a str; 5] {
        let start = match i.checked_sub(1).and_then(|before| self.ends.get(before)) {
            Some((_, ends)) => ends[4],
            None => 0,
        };
        let ends = self.ends.get(i).map_or([start; 5], |(_, ends)| *ends);
        let mut from = start;
        ends.map(|end| {
            let field = text.get(from..end).unwrap_or_default();
            from = end;
            field
        })
    }

    fn rows(&self) -> impl Iterator<Item = RawRow<'_>> {
        let mut start = 0;
        self.ends.iter().map(move |&(line, ends)| {
            let fields = ends.map(|end| {
                let field = self.bytes.get(start..end).unwrap_or_default();
                start = end;
                field
            });
            RawRow { line, fields }
        })
    }
}

/// Parses a GeoJSON FeatureCollection of Points.
///
/// # Errors
/// Not a FeatureCollection, or the first bad feature (numbered from 1).
///
/// ```
/// use nearby_services::places_file::parse_geojson;
/// let json = r#"{"type":"FeatureCollection","features":[
///   {"type":"Feature","geometry":{"type":"Point","coordinates":[2.35,48.85]},
///    "properties":{"id":7,"name":"Chez Nous","category":"restaurant"}}]}"#;
/// let places = parse_geojson(json.as_bytes(), "p.geojson".as_ref())?;
/// assert_eq!((places[0].id.as_str(), places[0].position.lat()), ("7", 48.85));
/// # Ok::<(), nearby_services::places_file::PlacesFileError>(())
/// ```
pub fn parse_geojson(text: &[u8], path: &Path) -> Result<Vec<Business>, PlacesFileError> {
    use serde_json::Value;
    let error = |line: u64, message: String| PlacesFileError {
        path: path.to_path_buf(),
        line,
        message,
    };
    let document: Value =
        serde_json::from_slice(text).map_err(|err| error(0, format!("invalid JSON: {err}")))?;
    if document.get("type").and_then(Value::as_str) != Some("FeatureCollection") {
        return Err(error(0, "expected a GeoJSON FeatureCollection".into()));
    }
    let features = document
        .get("features")
        .and_then(Value::as_array)
        .ok_or_else(|| error(0, "the FeatureCollection has no features array".into()))?;
    let mut places = Vec::with_capacity(features.len());
    for (i, feature) in features.iter().enumerate() {
        let number = i as u64 + 1;
        let at = |message: String| error(number, format!("feature {number}: {message}"));
        let geometry = feature
            .get("geometry")
            .ok_or_else(|| at("no geometry".into()))?;
        if geometry.get("type").and_then(Value::as_str) != Some("Point") {
            return Err(at("geometry must be a Point".into()));
        }
        let coordinates = geometry
            .get("coordinates")
            .and_then(Value::as_array)
            .filter(|c| c.len() >= 2)
            .ok_or_else(|| at("coordinates must be [longitude, latitude]".into()))?;
        let properties = feature.get("properties").unwrap_or(&Value::Null);
        let text_of = |key: &str| match properties.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let business = (|| {
            let lng = coordinates[0]
                .as_f64()
                .ok_or_else(|| FieldError::new("longitude", "must be a number"))?;
            let lat = coordinates[1]
                .as_f64()
                .ok_or_else(|| FieldError::new("latitude", "must be a number"))?;
            Ok::<_, FieldError>(Business {
                id: BusinessId::new(&text_of("id").unwrap_or_default())?,
                name: Name::new(&text_of("name").unwrap_or_default())?,
                position: position(lat, lng)?,
                category: text_of("category").map(|c| Category::new(&c)).transpose()?,
            })
        })()
        .map_err(|err| at(err.to_string()))?;
        places.push(business);
    }
    Ok(places)
}

/// The bundled real-world places: GeoNames cities with a population of at least 1000
/// (CC-BY 4.0), ids `geonames:<id>`, category `city` (100,000 people or more), `town`
/// (10,000 or more) or `village`.
///
/// # Errors
/// Only if the bundled file were corrupt.
///
/// ```
/// let places = nearby_services::places_file::bundled()?;
/// assert!(places.len() >= 100_000);
/// # Ok::<(), nearby_services::places_file::PlacesFileError>(())
/// ```
pub fn bundled() -> Result<Vec<Business>, PlacesFileError> {
    let error = |message: String| PlacesFileError {
        path: PathBuf::from("data/cities1000.csv"),
        line: 0,
        message,
    };
    let cities = nearby_data::cities().map_err(|err| error(err.to_string()))?;
    let city = Category::new("city").map_err(|e| error(e.to_string()))?;
    let town = Category::new("town").map_err(|e| error(e.to_string()))?;
    let village = Category::new("village").map_err(|e| error(e.to_string()))?;
    cities
        .into_iter()
        .map(|c| {
            Ok(Business {
                id: BusinessId::new(&format!("geonames:{}", c.geonameid))?,
                name: Name::new(&c.name)?,
                position: position(c.latitude, c.longitude)?,
                category: Some(match c.population {
                    100_000.. => city.clone(),
                    10_000.. => town.clone(),
                    _ => village.clone(),
                }),
            })
        })
        .collect::<Result<Vec<_>, FieldError>>()
        .map_err(|err| error(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> Result<Vec<Business>, PlacesFileError> {
        parse_csv(text.as_bytes(), Path::new("places.csv"))
    }

    #[test]
    fn csv_columns_in_any_order_with_quotes_and_extras() {
        let places = csv("extra,LONGITUDE,name,id,latitude,category\n\
             x,2.35,\"Café, \"\"Le\"\" Bar\",a1,48.85,Cafe\n\
             y,-0.5,Plain,a2,51.5,\n")
        .unwrap();
        assert_eq!(places.len(), 2);
        assert_eq!(places[0].name.as_str(), "Café, \"Le\" Bar");
        assert_eq!(
            places[0].category.as_ref().map(Category::as_str),
            Some("cafe")
        );
        assert_eq!(places[1].category, None);
        assert_eq!(places[1].position.lng(), -0.5);
    }

    #[test]
    fn csv_errors_name_the_file_and_line() {
        let cases = [
            ("id,name,latitude\n", 1, "missing longitude"),
            (
                "id,name,latitude,longitude\na,A,1,2\nb,B,x,2\n",
                3,
                "latitude",
            ),
            (
                "id,name,latitude,longitude\na,A,1,2\n\"b c\",B,1,2\n",
                3,
                "id",
            ),
            ("id,name,latitude,longitude\na,A,1,2\nb,,1,2\n", 3, "name"),
            ("id,name,latitude,longitude\na,A,1,200\n", 2, "longitude"),
            (
                "id,name,latitude,longitude\na,A,1,2,extra\n",
                2,
                "unreadable row",
            ),
        ];
        for (text, line, needle) in cases {
            let err = csv(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("places.csv:{line}: ")),
                "{message}"
            );
            assert!(message.contains(needle), "{message}");
        }
    }

    #[test]
    fn geojson_errors_name_the_feature() {
        let path = Path::new("p.geojson");
        let err = parse_geojson(b"{\"type\":\"Feature\"}", path).unwrap_err();
        assert!(err.to_string().contains("FeatureCollection"));
        let text = br#"{"type":"FeatureCollection","features":[
            {"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},"properties":{"id":"a","name":"A"}},
            {"type":"Feature","geometry":{"type":"LineString","coordinates":[[1,2],[3,4]]},"properties":{"id":"b","name":"B"}}]}"#;
        let err = parse_geojson(text, path).unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        assert!(err.to_string().contains("Point"));
        let err = parse_geojson(b"not json", path).unwrap_err();
        assert_eq!(err.line, 0);
    }

    #[test]
    fn load_catalog_streams_every_row_in_batches_and_stops_at_a_bad_one() {
        let dir = std::env::temp_dir().join(format!("nearby-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("places.csv");
        // More rows than a batch, an id repeated (the last row wins), rows with and without
        // a category.
        let mut text = String::from("id,name,latitude,longitude,category\n");
        for i in 0..10_000 {
            let category = if i % 3 == 0 { "" } else { "Cafe" };
            text.push_str(&format!(
                "p{i},Place {i},{},{},{category}\n",
                i % 80,
                i % 170
            ));
        }
        text.push_str("p7,Moved,1.5,2.5,bar\n");
        std::fs::write(&path, &text).unwrap();
        let catalog = load_catalog(&path, 4).unwrap();
        assert_eq!(catalog.len(), 10_000);
        let id = |s: &str| BusinessId::new(s).unwrap();
        let moved = catalog.get(&id("p7")).unwrap();
        assert_eq!((moved.name.as_str(), moved.position.lat()), ("Moved", 1.5));
        assert_eq!(moved.category.as_ref().map(Category::as_str), Some("bar"));
        let plain = catalog.get(&id("p9999")).unwrap();
        assert_eq!((plain.name.as_str(), plain.category), ("Place 9999", None));
        assert_eq!(catalog.revision(&id("p5000")), Some(4));

        text.push_str("p10001,Bad,95,0,\n");
        std::fs::write(&path, &text).unwrap();
        let Err(err) = load_catalog(&path, 4) else {
            panic!("a bad row must stop the load")
        };
        assert_eq!(err.line, 10_003, "{err}");
        assert!(err.message.contains("latitude"), "{err}");

        // Invalid UTF-8 in a name: the batch fails validation as a whole, and the row is
        // found and named field by field.
        let mut bytes = b"id,name,latitude,longitude\n".to_vec();
        for i in 0..5_000 {
            bytes.extend_from_slice(format!("q{i},Caf\u{e9} {i},1,2\n").as_bytes());
        }
        bytes.extend_from_slice(b"q5000,Bad \xff name,1,2\n");
        std::fs::write(&path, &bytes).unwrap();
        let Err(err) = load_catalog(&path, 4) else {
            panic!("invalid UTF-8 must stop the load")
        };
        assert_eq!(err.line, 5_002, "{err}");
        assert_eq!(err.message, "name: is not valid UTF-8");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bundled_places_are_all_valid() {
        let places = bundled().unwrap();
        assert!(places.len() >= 100_000);
        assert!(places.iter().all(|p| p.category.is_some()));
    }
}
