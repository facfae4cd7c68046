//! The catalog's business records, stored compactly: at ten million businesses and more a
//! `Business` value per record (three heap strings, a hash map entry with its own copy of the
//! key) cost about 200 bytes a business, several times the geo index itself.
//!
//! Here a record is its id and name back to back in one text arena, a packed span into it,
//! a revision and a category code; the id table is a hash table of entry ids that finds an
//! entry by comparing the id text it points at, so no id is stored twice. Positions live in
//! the geo index only. Replaced and removed text is reclaimed by compacting the arena once it
//! is mostly garbage.

use crate::business::{Business, BusinessRef, Category};
use foldhash::fast::RandomState;
use geo_index::EntryId;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use std::collections::HashMap;
use std::hash::BuildHasher;

/// A span: the text offset in the low 40 bits, then the id's length (7 bits: ids are at
/// most 64 bytes), then the name's (10 bits: names are at most 200 characters, 800 bytes).
/// A vacant entry holds [`VACANT`], which no real span can equal (its id length would be 127).
const VACANT: u64 = u64::MAX;
const OFFSET_BITS: u32 = 40;
const ID_BITS: u32 = 7;
const NAME_BITS: u32 = 10;
const _: () = assert!(OFFSET_BITS + ID_BITS + NAME_BITS <= 64);
const _: () = assert!(crate::business::MAX_ID_LEN < (1 << ID_BITS) - 1);
const _: () = assert!(crate::business::MAX_NAME_CHARS * 4 < 1 << NAME_BITS);

/// No category.
const NO_CATEGORY: u32 = 0;

/// Arena bytes below which garbage is never compacted away (small catalogs are cheap).
const COMPACT_FLOOR: usize = 1 << 20;

/// Every record by entry id. See the module documentation.
#[derive(Default)]
pub(super) struct Records {
    text: String,
    spans: Vec<u64>,
    revisions: Vec<i64>,
    /// 0 for none, else 1 + an index into `category_names`.
    categories: Vec<u32>,
    category_names: Vec<Category>,
    /// (Looked up once per record stored: a fast hasher, like the id table's.)
    category_codes: HashMap<Category, u32, RandomState>,
    by_id: HashTable<EntryId>,
    hasher: RandomState,
    free: Vec<EntryId>,
    live: usize,
    /// Arena bytes no live record points at.
    garbage: usize,
}

/// The stored form of a record, as [`Records::put`] takes it.
pub(super) struct NewRecord<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub category: Option<&'a str>,
    pub revision: i64,
}

impl<'a> From<(&'a Business, i64)> for NewRecord<'a> {
    fn from((business, revision): (&'a Business, i64)) -> Self {
        Self {
            id: business.id.as_str(),
            name: business.name.as_str(),
            category: business.category.as_ref().map(Category::as_str),
            revision,
        }
    }
}

impl Records {
    /// Room for `count` records with `text_bytes` of ids and names in all.
    pub(super) fn reserve(&mut self, count: usize, text_bytes: usize) {
        self.text.reserve(text_bytes);
        self.spans.reserve(count);
        self.revisions.reserve(count);
        self.categories.reserve(count);
        // The id table is sized by `index_ids`, from the exact count.
    }

    /// Gives back the room reserved but not used (after a bulk load).
    pub(super) fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.spans.shrink_to_fit();
        self.revisions.shrink_to_fit();
        self.categories.shrink_to_fit();
        let hasher = &self.hasher;
        let (text, spans) = (&self.text, &self.spans);
        self.by_id
            .shrink_to_fit(|&e| hasher.hash_one(id_in(text, spans, e)));
    }

    /// Number of records.
    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// The entry holding business `id`.
    pub(super) fn entry_of(&self, id: &str) -> Option<EntryId> {
        let hash = self.hasher.hash_one(id);
        self.by_id
            .find(hash, |&e| id_in(&self.text, &self.spans, e) == id)
            .copied()
    }

    /// The id of entry `entry`, if it holds a record.
    pub(super) fn id(&self, entry: EntryId) -> Option<&str> {
        self.parts(entry).map(|(id, _)| id)
    }

    /// The revision of entry `entry`, if it holds a record.
    pub(super) fn revision(&self, entry: EntryId) -> Option<i64> {
        self.parts(entry)?;
        self.revisions.get(entry as usize).copied()
    }

    /// The category of entry `entry`, if it holds a record that has one.
    pub(super) fn category(&self, entry: EntryId) -> Option<&str> {
        let code = *self.categories.get(entry as usize)?;
        code.checked_sub(1)
            .and_then(|i| self.category_names.get(i as usize))
            .map(Category::as_str)
    }

    /// Entry `entry`'s record at `position` (the index holds positions).
    pub(super) fn view(
        &self,
        entry: EntryId,
        position: geo_index::LatLng,
    ) -> Option<BusinessRef<'_>> {
        let (id, name) = self.parts(entry)?;
        Some(BusinessRef {
            id,
            name,
            position,
            category: self.category(entry),
        })
    }

    /// Every entry holding a record, in entry order.
    pub(super) fn entries(&self) -> impl Iterator<Item = EntryId> + '_ {
        self.spans
            .iter()
            .enumerate()
            .filter(|(_, span)| **span != VACANT)
            .filter_map(|(entry, _)| EntryId::try_from(entry).ok())
    }

    /// Stores `record`, replacing the one with the same id: its entry (the same as before for
    /// a replaced record) and whether it replaced one.
    pub(super) fn put(&mut self, record: NewRecord<'_>) -> (EntryId, bool) {
        // One probe finds the id or the slot for it (this is the hot loop of a bulk load).
        let hash = self.hasher.hash_one(record.id);
        let hasher = &self.hasher;
        let (text, spans) = (&self.text, &self.spans);
        let (entry, replaced) = match self.by_id.entry(
            hash,
            |&e| id_in(text, spans, e) == record.id,
            |&e| hasher.hash_one(id_in(text, spans, e)),
        ) {
            Entry::Occupied(held) => (*held.get(), true),
            Entry::Vacant(slot) => {
                let entry = match self.free.pop() {
                    Some(entry) => entry,
                    // Entry ids are dense: one per live record plus freed ones awaiting
                    // reuse, far below 2^32 for any catalog that fits in memory (the geo
                    // index refuses more anyway).
                    None => EntryId::try_from(self.spans.len()).unwrap_or(EntryId::MAX),
                };
                slot.insert(entry);
                (entry, false)
            }
        };
        let index = entry as usize;
        if index >= self.spans.len() {
            self.spans.resize(index + 1, VACANT);
            self.revisions.resize(index + 1, 0);
            self.categories.resize(index + 1, NO_CATEGORY);
        }
        if replaced {
            self.garbage += self.span_len(entry);
        } else {
            self.live += 1;
        }
        let span = self.append(record.id, record.name);
        let category = self.category_code(record.category);
        self.spans[index] = span;
        self.revisions[index] = record.revision;
        self.categories[index] = category;
        if replaced {
            self.compact_if_wasteful();
        }
        (entry, replaced)
    }

    /// Appends `record` as a new entry without looking its id up (a bulk load): returns the
    /// entry and the id's hash, for [`Records::index_ids`] to finish the job.
    pub(super) fn push_unindexed(&mut self, record: NewRecord<'_>) -> (EntryId, u64) {
        // Entry ids are dense (see `put`); a builder starts from empty records.
        let entry = EntryId::try_from(self.spans.len()).unwrap_or(EntryId::MAX);
        let span = self.append(record.id, record.name);
        let category = self.category_code(record.category);
        self.spans.push(span);
        self.revisions.push(record.revision);
        self.categories.push(category);
        self.live += 1;
        (entry, self.hasher.hash_one(record.id))
    }

    /// Enters every entry pushed by [`Records::push_unindexed`] (their id hashes, by entry)
    /// into the id table. Of entries sharing an id the last is kept; the earlier ones are
    /// vacated and returned.
    pub(super) fn index_ids(&mut self, id_hashes: &[u64]) -> Vec<EntryId> {
        let mut superseded = Vec::new();
        let hasher = &self.hasher;
        let (text, spans) = (&self.text, &self.spans);
        let (from, to) = (self.by_id.len(), id_hashes.len());
        self.by_id.reserve(to.saturating_sub(from), |&e| {
            hasher.hash_one(id_in(text, spans, e))
        });
        for (entry, &hash) in (0..).zip(id_hashes) {
            let id = id_in(text, spans, entry);
            match self.by_id.entry(
                hash,
                |&e| id_in(text, spans, e) == id,
                |&e| hasher.hash_one(id_in(text, spans, e)),
            ) {
                Entry::Occupied(mut held) => {
                    superseded.push(std::mem::replace(held.get_mut(), entry))
                }
                Entry::Vacant(slot) => {
                    slot.insert(entry);
                }
            }
        }
        for &entry in &superseded {
            self.vacate(entry);
        }
        superseded
    }

    /// Removes the record of business `id`; returns its entry.
    pub(super) fn remove(&mut self, id: &str) -> Option<EntryId> {
        let hash = self.hasher.hash_one(id);
        let (text, spans) = (&self.text, &self.spans);
        let entry = self
            .by_id
            .find_entry(hash, |&e| id_in(text, spans, e) == id)
            .ok()?
            .remove()
            .0;
        self.vacate(entry);
        self.compact_if_wasteful();
        Some(entry)
    }

    /// Frees `entry`, which the id table no longer holds.
    fn vacate(&mut self, entry: EntryId) {
        self.garbage += self.span_len(entry);
        let index = entry as usize;
        self.spans[index] = VACANT;
        self.categories[index] = NO_CATEGORY;
        self.free.push(entry);
        self.live -= 1;
    }

    /// Bytes held, for `/metrics` and the benchmarks: capacities, not lengths, since that is
    /// what the allocator keeps.
    pub(super) fn heap_bytes(&self) -> usize {
        self.text.capacity()
            + self.spans.capacity() * size_of::<u64>()
            + self.revisions.capacity() * size_of::<i64>()
            + self.categories.capacity() * size_of::<u32>()
            + self.free.capacity() * size_of::<EntryId>()
            // A hashbrown table: one entry and one control byte per bucket.
            + self.by_id.capacity() * (size_of::<EntryId>() + 1) * 8 / 7
    }

    fn parts(&self, entry: EntryId) -> Option<(&str, &str)> {
        let span = *self.spans.get(entry as usize)?;
        if span == VACANT {
            return None;
        }
        let (start, id_len, name_len) = unpack(span);
        let id = self.text.get(start..start + id_len)?;
        let name = self.text.get(start + id_len..start + id_len + name_len)?;
        Some((id, name))
    }

    fn span_len(&self, entry: EntryId) -> usize {
        match self.spans.get(entry as usize) {
            Some(&span) if span != VACANT => {
                let (_, id_len, name_len) = unpack(span);
                id_len + name_len
            }
            _ => 0,
        }
    }

    fn append(&mut self, id: &str, name: &str) -> u64 {
        let start = self.text.len();
        self.text.push_str(id);
        self.text.push_str(name);
        pack(start, id.len(), name.len())
    }

    fn category_code(&mut self, category: Option<&str>) -> u32 {
        let Some(category) = category else {
            return NO_CATEGORY;
        };
        if let Some(&code) = self.category_codes.get(category) {
            return code;
        }
        let name = Category::from_checked(category);
        self.category_names.push(name.clone());
        // More than 2^32 categories cannot fit in memory alongside their businesses.
        let code = u32::try_from(self.category_names.len()).unwrap_or(u32::MAX);
        self.category_codes.insert(name, code);
        code
    }

    /// Rewrites the arena without garbage once garbage is most of it: amortised O(1) per
    /// change, since at least as many bytes were written as are copied.
    fn compact_if_wasteful(&mut self) {
        if self.garbage < COMPACT_FLOOR || self.garbage * 2 < self.text.len() {
            return;
        }
        let mut text = String::with_capacity(self.text.len() - self.garbage);
        for span in &mut self.spans {
            if *span == VACANT {
                continue;
            }
            let (start, id_len, name_len) = unpack(*span);
            let bytes = self
                .text
                .get(start..start + id_len + name_len)
                .unwrap_or("");
            let new_start = text.len();
            text.push_str(bytes);
            *span = pack(new_start, id_len, name_len);
        }
        self.text = text;
        self.garbage = 0;
    }
}

fn pack(start: usize, id_len: usize, name_len: usize) -> u64 {
    debug_assert!(start < 1 << OFFSET_BITS && id_len < (1 << ID_BITS) - 1);
    debug_assert!(name_len < 1 << NAME_BITS);
    start as u64 | (id_len as u64) << OFFSET_BITS | (name_len as u64) << (OFFSET_BITS + ID_BITS)
}

fn unpack(span: u64) -> (usize, usize, usize) {
    (
        (span & ((1 << OFFSET_BITS) - 1)) as usize,
        ((span >> OFFSET_BITS) & ((1 << ID_BITS) - 1)) as usize,
        (span >> (OFFSET_BITS + ID_BITS) & ((1 << NAME_BITS) - 1)) as usize,
    )
}

/// The id text of `entry` (empty for a vacant entry, which the id table never holds).
fn id_in<'a>(text: &'a str, spans: &[u64], entry: EntryId) -> &'a str {
    match spans.get(entry as usize) {
        Some(&span) if span != VACANT => {
            let (start, id_len, _) = unpack(span);
            text.get(start..start + id_len).unwrap_or("")
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(id: &'a str, name: &'a str, category: Option<&'a str>) -> NewRecord<'a> {
        NewRecord {
            id,
            name,
            category,
            revision: 1,
        }
    }

    #[test]
    fn put_find_replace_remove_and_reuse() {
        let mut records = Records::default();
        let (a, replaced) = records.put(record("a", "Alpha", Some("cafe")));
        assert!(!replaced);
        let (b, _) = records.put(record("b", "Beta", None));
        assert_eq!(records.entry_of("a"), Some(a));
        assert_eq!(records.entry_of("b"), Some(b));
        assert_eq!(records.entry_of("c"), None);
        assert_eq!(records.category(a), Some("cafe"));
        assert_eq!(records.category(b), None);

        let (again, replaced) = records.put(record("a", "Alpha Two", Some("bar")));
        assert_eq!((again, replaced), (a, true));
        let here = geo_index::LatLng::new(1.0, 2.0).expect("valid");
        let view = records.view(a, here).expect("held");
        assert_eq!(
            (view.id, view.name, view.category),
            ("a", "Alpha Two", Some("bar"))
        );

        assert_eq!(records.remove("a"), Some(a));
        assert_eq!(records.remove("a"), None);
        assert_eq!(records.entry_of("a"), None);
        assert!(records.view(a, here).is_none());
        assert_eq!(records.len(), 1);
        let (c, _) = records.put(record("c", "Gamma", None));
        assert_eq!(c, a, "a freed entry is reused");
        assert_eq!(records.entries().collect::<Vec<_>>(), vec![a, b]);
    }

    #[test]
    fn compaction_keeps_every_record() {
        let mut records = Records::default();
        let name = "n".repeat(200);
        let ids: Vec<String> = (0..1000).map(|i| format!("id{i}")).collect();
        for round in 0..30 {
            for (i, id) in ids.iter().enumerate() {
                if (i + round) % 7 == 0 {
                    records.remove(id);
                } else {
                    records.put(NewRecord {
                        revision: round as i64,
                        ..record(id, &name, Some(if i % 2 == 0 { "even" } else { "odd" }))
                    });
                }
            }
        }
        assert!(
            records.text.len() < 2_500_000,
            "garbage was compacted away (30 rounds wrote 5 MB)"
        );
        let here = geo_index::LatLng::new(0.0, 0.0).expect("valid");
        for (i, id) in ids.iter().enumerate() {
            let held = records.entry_of(id).and_then(|e| records.view(e, here));
            if (i + 29) % 7 == 0 {
                assert!(held.is_none());
            } else {
                let view = held.expect("held");
                assert_eq!((view.id, view.name.len()), (id.as_str(), 200));
                assert_eq!(view.category, Some(if i % 2 == 0 { "even" } else { "odd" }));
                let entry = records.entry_of(id).expect("held");
                assert_eq!(records.revision(entry), Some(29));
            }
        }
    }
}
