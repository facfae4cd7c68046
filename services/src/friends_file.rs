//! The `--friends` seed file: CSV rows `user_id,friend_id` (an optional header row), each a
//! mutual friendship.

use std::path::Path;

/// Reads a friends file.
///
/// # Errors
/// The file cannot be read, or a row is not two unsigned 64-bit ids (the message names the
/// line).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("nearby-friends-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("friends.csv");
/// std::fs::write(&path, "user_id,friend_id\n1,2\n2,3\n").unwrap();
/// assert_eq!(nearby_services::friends_file::load(&path).unwrap(), vec![(1, 2), (2, 3)]);
/// ```
pub fn load(path: &Path) -> Result<Vec<(u64, u64)>, String> {
    let file = std::fs::File::open(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    parse(file, &path.display().to_string())
}

/// Parses friends CSV from `reader`; `name` prefixes error messages (`name:line: ...`).
///
/// # Errors
/// A row is not two distinct unsigned 64-bit ids, or the input is not readable CSV.
///
/// ```
/// use nearby_services::friends_file::parse;
/// assert_eq!(parse("1,2\n\n3, 4\n".as_bytes(), "f.csv").unwrap(), vec![(1, 2), (3, 4)]);
/// assert!(parse("1,2\n5,5\n".as_bytes(), "f.csv").unwrap_err().starts_with("f.csv:2:"));
/// ```
pub fn parse(reader: impl std::io::Read, name: &str) -> Result<Vec<(u64, u64)>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(reader);
    let mut pairs = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let line = index + 1;
        let record = record.map_err(|err| format!("{name}:{line}: {err}"))?;
        if record.len() == 1 && record.get(0).is_some_and(str::is_empty) {
            continue;
        }
        let parse = |i: usize| record.get(i).and_then(|field| field.parse::<u64>().ok());
        match (record.len(), parse(0), parse(1)) {
            (2, Some(a), Some(b)) if a != b => pairs.push((a, b)),
            (2, Some(a), Some(_)) => {
                return Err(format!(
                    "{name}:{line}: user {a} cannot befriend themselves"
                ));
            }
            _ if line == 1 => {} // a header row
            _ => {
                return Err(format!(
                    "{name}:{line}: expected `user_id,friend_id` (two unsigned 64-bit integers)"
                ));
            }
        }
    }
    Ok(pairs)
}
