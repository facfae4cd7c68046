//! Opaque keyset cursors for search paging.
//!
//! A cursor holds the `(distance, id)` of the last result served and a fingerprint of the
//! query it belongs to, base64url-encoded. The fingerprint makes a cursor replayed against a
//! different query a clear 400 instead of a silently wrong page.

use crate::business::BusinessId;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const VERSION: u8 = 1;
/// Version byte, distance bits, fingerprint.
const HEADER_LEN: usize = 1 + 8 + 8;

/// Where the next page starts.
///
/// ```
/// use nearby_services::business::BusinessId;
/// use nearby_services::cursor::Cursor;
/// let cursor = Cursor { distance_m: 12.5, id: BusinessId::new("b7")?, fingerprint: 99 };
/// assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
/// assert_eq!(Cursor::decode("not a cursor"), None);
/// # Ok::<(), nearby_services::business::FieldError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Cursor {
    /// Distance of the last result served, metres.
    pub distance_m: f64,
    /// Id of the last result served.
    pub id: BusinessId,
    /// [`fingerprint`] of the query the cursor belongs to.
    pub fingerprint: u64,
}

impl Cursor {
    /// The cursor as an opaque URL-safe string.
    ///
    /// ```
    /// # use nearby_services::{business::BusinessId, cursor::Cursor};
    /// let text = Cursor { distance_m: 1.0, id: BusinessId::new("a")?, fingerprint: 0 }.encode();
    /// assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    /// # Ok::<(), nearby_services::business::FieldError>(())
    /// ```
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(HEADER_LEN + self.id.as_str().len());
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.distance_m.to_bits().to_be_bytes());
        bytes.extend_from_slice(&self.fingerprint.to_be_bytes());
        bytes.extend_from_slice(self.id.as_str().as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Parses a cursor; `None` for anything this service did not produce.
    ///
    /// ```
    /// # use nearby_services::cursor::Cursor;
    /// assert_eq!(Cursor::decode(""), None);
    /// ```
    pub fn decode(text: &str) -> Option<Cursor> {
        if text.len() > 256 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() <= HEADER_LEN || bytes[0] != VERSION {
            return None;
        }
        let distance_m = f64::from_bits(u64::from_be_bytes(bytes[1..9].try_into().ok()?));
        if !(distance_m.is_finite() && distance_m >= 0.0) {
            return None;
        }
        let fingerprint = u64::from_be_bytes(bytes[9..17].try_into().ok()?);
        let id = BusinessId::new(std::str::from_utf8(&bytes[HEADER_LEN..]).ok()?).ok()?;
        Some(Cursor {
            distance_m,
            id,
            fingerprint,
        })
    }
}

/// A stable 64-bit fingerprint (FNV-1a) of a search's parameters, paging aside.
///
/// ```
/// use nearby_services::cursor::fingerprint;
/// assert_eq!(fingerprint(1.0, 2.0, 3.0, None), fingerprint(1.0, 2.0, 3.0, None));
/// assert_ne!(fingerprint(1.0, 2.0, 3.0, None), fingerprint(1.0, 2.0, 3.0, Some("cafe")));
/// ```
pub fn fingerprint(latitude: f64, longitude: f64, radius_m: f64, category: Option<&str>) -> u64 {
    let mut hash = Fnv1a::new();
    for number in [latitude, longitude, radius_m] {
        hash.feed(&number.to_bits().to_be_bytes());
    }
    hash.category(category)
}

/// A stable 64-bit fingerprint (FNV-1a) of a search of kind `kind` (`"nearest"`, `"bbox"`,
/// `"polygon"`...) over `numbers` (its coordinates), paging aside: a cursor of one search
/// replayed against another is refused.
///
/// ```
/// use nearby_services::cursor::fingerprint_of;
/// assert_eq!(fingerprint_of("bbox", [1.0, 2.0], None), fingerprint_of("bbox", [1.0, 2.0], None));
/// assert_ne!(fingerprint_of("bbox", [1.0, 2.0], None), fingerprint_of("nearest", [1.0, 2.0], None));
/// ```
pub fn fingerprint_of(
    kind: &str,
    numbers: impl IntoIterator<Item = f64>,
    category: Option<&str>,
) -> u64 {
    let mut hash = Fnv1a::new();
    hash.feed(kind.as_bytes());
    hash.feed(&[0xff]);
    for number in numbers {
        hash.feed(&number.to_bits().to_be_bytes());
    }
    hash.category(category)
}

/// FNV-1a over the bytes fed, the one hash both fingerprints use.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// Feeds the category (or its absence, told apart from any category) and finishes.
    fn category(mut self, category: Option<&str>) -> u64 {
        match category {
            Some(category) => {
                self.feed(&[1]);
                self.feed(category.as_bytes());
            }
            None => self.feed(&[0]),
        }
        self.0
    }
}
