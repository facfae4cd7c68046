//! Tags: one of 64 small labels an entry may carry (the service maps categories onto them),
//! which let the quadtree skip whole subtrees that hold no entry with the wanted tag.

use crate::Error;

/// One of 64 labels, `0..=63`. [`Tag::UNTAGGED`] (63) is what an entry inserted without a tag
/// carries, in every index kind.
///
/// ```
/// use geo_index::Tag;
/// assert_eq!(Tag::new(5)?.bit(), 1 << 5);
/// assert!(Tag::new(64).is_err());
/// # Ok::<(), geo_index::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(u8);

impl Tag {
    /// The tag of entries inserted without one.
    pub const UNTAGGED: Tag = Tag(63);

    /// Tag number `n`.
    ///
    /// # Errors
    /// [`Error::InvalidTag`] unless `n < 64`.
    ///
    /// ```
    /// # use geo_index::Tag;
    /// assert_eq!(Tag::new(63)?, Tag::UNTAGGED);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub const fn new(n: u8) -> Result<Tag, Error> {
        if n < 64 {
            Ok(Tag(n))
        } else {
            Err(Error::InvalidTag(n))
        }
    }

    /// The tag's number.
    ///
    /// ```
    /// # use geo_index::Tag;
    /// assert_eq!(Tag::new(7)?.get(), 7);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The tag as one bit of a 64-bit set.
    ///
    /// ```
    /// # use geo_index::Tag;
    /// assert_eq!(Tag::UNTAGGED.bit(), 1 << 63);
    /// ```
    pub const fn bit(self) -> u64 {
        1 << self.0
    }
}
