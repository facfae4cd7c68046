//! Business records and their validation: invalid values are refused here, at the boundary,
//! so the rest of the service only ever sees checked ones.

use geo_index::LatLng;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// Longest accepted id, in bytes.
pub const MAX_ID_LEN: usize = 64;
/// Longest accepted name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest accepted category, in characters.
pub const MAX_CATEGORY_CHARS: usize = 64;

/// Why a field was refused. `field` names the offending input field.
///
/// ```
/// use nearby_services::business::BusinessId;
/// let err = BusinessId::new("has space").unwrap_err();
/// assert_eq!(err.field, "id");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The input field, as the client spelled it.
    pub field: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

impl FieldError {
    /// A new field error.
    ///
    /// ```
    /// # use nearby_services::business::FieldError;
    /// assert_eq!(FieldError::new("name", "must not be empty").field, "name");
    /// ```
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// A business id: 1 to 64 characters from `A-Z a-z 0-9 . _ : -`, so it is safe in a URL path
/// and a log line as it is.
///
/// ```
/// use nearby_services::business::BusinessId;
/// assert_eq!(BusinessId::new("geonames:2988507")?.as_str(), "geonames:2988507");
/// assert!(BusinessId::new("").is_err());
/// assert!(BusinessId::new("a/b").is_err());
/// # Ok::<(), nearby_services::business::FieldError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct BusinessId(Arc<str>);

impl BusinessId {
    /// Validates an id.
    ///
    /// # Errors
    /// Empty, longer than [`MAX_ID_LEN`], or a character outside the allowed set.
    ///
    /// ```
    /// # use nearby_services::business::BusinessId;
    /// assert!(BusinessId::new(&"x".repeat(65)).is_err());
    /// ```
    pub fn new(id: &str) -> Result<Self, FieldError> {
        check_id(id).map(|id| Self(Arc::from(id)))
    }

    /// An id already checked by [`check_id`] (as the catalog's stored ids are).
    pub(crate) fn trusted(id: &str) -> Self {
        Self(Arc::from(id))
    }

    /// The id as text.
    ///
    /// ```
    /// # use nearby_services::business::BusinessId;
    /// assert_eq!(BusinessId::new("a1")?.as_str(), "a1");
    /// # Ok::<(), nearby_services::business::FieldError>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BusinessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated business name: trimmed, non-empty, at most [`MAX_NAME_CHARS`] characters, no
/// control characters.
///
/// ```
/// use nearby_services::business::Name;
/// assert_eq!(Name::new("  Café de Flore ")?.as_str(), "Café de Flore");
/// assert!(Name::new("   ").is_err());
/// # Ok::<(), nearby_services::business::FieldError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Name(Box<str>);

impl Name {
    /// Validates a name.
    ///
    /// # Errors
    /// Empty after trimming, too long, or containing control characters.
    ///
    /// ```
    /// # use nearby_services::business::Name;
    /// assert!(Name::new("tab\there").is_err());
    /// ```
    pub fn new(name: &str) -> Result<Self, FieldError> {
        check_name(name).map(|name| Self(name.into()))
    }

    /// A name already checked by [`check_name`].
    pub(crate) fn trusted(name: &str) -> Self {
        Self(name.into())
    }

    /// The name as text.
    ///
    /// ```
    /// # use nearby_services::business::Name;
    /// assert_eq!(Name::new("Bo")?.as_str(), "Bo");
    /// # Ok::<(), nearby_services::business::FieldError>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated category: trimmed, non-empty, at most [`MAX_CATEGORY_CHARS`] characters of
/// `a-z 0-9 _ -` (lowercased on the way in, so filters match regardless of case).
///
/// ```
/// use nearby_services::business::Category;
/// assert_eq!(Category::new("Gas_Station")?.as_str(), "gas_station");
/// assert!(Category::new("a b").is_err());
/// # Ok::<(), nearby_services::business::FieldError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Category(Arc<str>);

impl Category {
    /// Validates a category.
    ///
    /// # Errors
    /// Empty, too long, or characters outside `a-z 0-9 _ -`.
    ///
    /// ```
    /// # use nearby_services::business::Category;
    /// assert!(Category::new("").is_err());
    /// ```
    pub fn new(category: &str) -> Result<Self, FieldError> {
        check_category(category).map(|category| Self(Arc::from(&*category)))
    }

    /// A category already checked by [`check_category`].
    pub(crate) fn from_checked(category: &str) -> Self {
        Self(Arc::from(category))
    }

    /// The category as text.
    ///
    /// ```
    /// # use nearby_services::business::Category;
    /// assert_eq!(Category::new("cafe")?.as_str(), "cafe");
    /// # Ok::<(), nearby_services::business::FieldError>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Category {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Checks an id without copying it: the rules of [`BusinessId::new`].
///
/// # Errors
/// As [`BusinessId::new`].
///
/// ```
/// use nearby_services::business::check_id;
/// assert_eq!(check_id("a:1")?, "a:1");
/// assert!(check_id("a b").is_err());
/// # Ok::<(), nearby_services::business::FieldError>(())
/// ```
pub fn check_id(id: &str) -> Result<&str, FieldError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(FieldError::new(
            "id",
            format!("must be 1 to {MAX_ID_LEN} characters"),
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(FieldError::new(
            "id",
            "may only contain letters, digits and . _ : -",
        ));
    }
    Ok(id)
}

/// Checks a name without copying it: the rules of [`Name::new`]; returns it trimmed.
///
/// # Errors
/// As [`Name::new`].
///
/// ```
/// use nearby_services::business::check_name;
/// assert_eq!(check_name(" Bo ")?, "Bo");
/// # Ok::<(), nearby_services::business::FieldError>(())
/// ```
pub fn check_name(name: &str) -> Result<&str, FieldError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(FieldError::new("name", "must not be empty"));
    }
    // Most names are short ASCII: their length in characters is their length in bytes.
    if name.len() > MAX_NAME_CHARS && name.chars().count() > MAX_NAME_CHARS {
        return Err(FieldError::new(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(name)
}

/// Checks a category without copying it unless it must be lowercased: the rules of
/// [`Category::new`].
///
/// # Errors
/// As [`Category::new`].
///
/// ```
/// use nearby_services::business::check_category;
/// assert_eq!(check_category("Cafe")?, "cafe");
/// # Ok::<(), nearby_services::business::FieldError>(())
/// ```
pub fn check_category(category: &str) -> Result<std::borrow::Cow<'_, str>, FieldError> {
    let category = category.trim();
    if category.is_empty()
        || (category.len() > MAX_CATEGORY_CHARS && category.chars().count() > MAX_CATEGORY_CHARS)
    {
        return Err(FieldError::new(
            "category",
            format!("must be 1 to {MAX_CATEGORY_CHARS} characters"),
        ));
    }
    if !category
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    {
        return Err(FieldError::new(
            "category",
            "may only contain letters, digits, _ and -",
        ));
    }
    Ok(if category.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(category.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(category)
    })
}

/// Checks a latitude/longitude pair, naming the field at fault.
///
/// # Errors
/// A [`FieldError`] for `latitude` or `longitude`.
///
/// ```
/// use nearby_services::business::position;
/// assert!(position(48.85, 2.35).is_ok());
/// assert_eq!(position(91.0, 0.0).unwrap_err().field, "latitude");
/// assert_eq!(position(0.0, f64::NAN).unwrap_err().field, "longitude");
/// ```
pub fn position(latitude: f64, longitude: f64) -> Result<LatLng, FieldError> {
    LatLng::new(latitude, longitude).map_err(|err| match err {
        geo_index::Error::InvalidLatitude(_) => {
            FieldError::new("latitude", "must be a number in [-90, 90]")
        }
        _ => FieldError::new("longitude", "must be a number in [-180, 180]"),
    })
}

/// A business as stored and served.
///
/// ```
/// use nearby_services::business::{Business, BusinessId, Name, position};
/// let b = Business {
///     id: BusinessId::new("b1")?,
///     name: Name::new("Le Bar")?,
///     position: position(48.85, 2.35)?,
///     category: None,
/// };
/// assert_eq!(b.id.as_str(), "b1");
/// # Ok::<(), nearby_services::business::FieldError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Business {
    /// Unique id.
    pub id: BusinessId,
    /// Display name.
    pub name: Name,
    /// Where it is.
    pub position: LatLng,
    /// What kind of business, if known.
    pub category: Option<Category>,
}

/// A business borrowed from the catalog, whose compact storage holds no [`Business`] values:
/// what a search page is made of, serialised without copying.
///
/// ```
/// use nearby_services::business::{Business, BusinessId, BusinessRef, Name, position};
/// let b = Business { id: BusinessId::new("b1")?, name: Name::new("Bar")?, position: position(1.0, 2.0)?, category: None };
/// let view = BusinessRef::from(&b);
/// assert_eq!(view.id, "b1");
/// assert_eq!(view.to_business(), b);
/// # Ok::<(), nearby_services::business::FieldError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BusinessRef<'a> {
    /// Unique id.
    pub id: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Where it is.
    pub position: LatLng,
    /// What kind of business, if known.
    pub category: Option<&'a str>,
}

impl BusinessRef<'_> {
    /// An owned copy. The parts were checked when they were stored.
    ///
    /// ```
    /// # use nearby_services::business::{Business, BusinessId, BusinessRef, Name, position};
    /// let b = Business { id: BusinessId::new("b1")?, name: Name::new("Bar")?, position: position(1.0, 2.0)?, category: None };
    /// assert_eq!(BusinessRef::from(&b).to_business().name.as_str(), "Bar");
    /// # Ok::<(), nearby_services::business::FieldError>(())
    /// ```
    pub fn to_business(&self) -> Business {
        Business {
            id: BusinessId::trusted(self.id),
            name: Name::trusted(self.name),
            position: self.position,
            category: self.category.map(Category::from_checked),
        }
    }
}

impl<'a> From<&'a Business> for BusinessRef<'a> {
    fn from(business: &'a Business) -> Self {
        Self {
            id: business.id.as_str(),
            name: business.name.as_str(),
            position: business.position,
            category: business.category.as_ref().map(Category::as_str),
        }
    }
}
