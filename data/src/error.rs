//! The crate's one error type.

use std::fmt;

/// Everything that can go wrong in this crate.
///
/// ```
/// use nearby_data::{DataError, parse_cities};
///
/// let err = parse_cities("wrong,header\n").unwrap_err();
/// assert!(matches!(err, DataError::Parse { line: 1, .. }));
/// assert!(err.to_string().starts_with("line 1:"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataError {
    /// A row of a cities CSV could not be parsed.
    Parse {
        /// 1-based line number in the input (the header is line 1).
        line: usize,
        /// What was wrong with it.
        message: String,
    },
    /// A [`City`](crate::City) handed to the [`Generator`](crate::Generator) is unusable.
    InvalidCity {
        /// Its index in the slice given to [`Generator::new`](crate::Generator::new).
        index: usize,
        /// What was wrong with it.
        message: String,
    },
    /// The [`Generator`](crate::Generator) got no city with a population above zero.
    NoPopulation,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parse { line, message } => write!(f, "line {line}: {message}"),
            Self::InvalidCity { index, message } => write!(f, "city #{index}: {message}"),
            Self::NoPopulation => f.write_str("no city with a population above zero"),
        }
    }
}

impl std::error::Error for DataError {}
