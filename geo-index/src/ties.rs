//! The caller's tie order: an index answers nearest first and breaks ties by [`EntryId`]
//! (the order its keysets resume in), but a caller usually has its own key, such as a
//! business id, and wants equal distances in that order, page after page.
//!
//! [`TieOrder::ties_by`] reorders each run of equal distance by the caller's comparison,
//! lazily: it reads one answer past a run to see where the run ends, never more. Resuming
//! after `(distance, key)` is then a query resumed at that distance (keyset
//! `(distance.next_down(), EntryId::MAX)`, so the whole run is read again) and the run's
//! answers up to the key skipped: see [`TieOrder::ties_by`]'s example.
//!
//! [`EntryId`]: crate::EntryId

use std::cmp::Ordering;
use std::iter::Peekable;

use crate::Neighbour;

/// Something at a distance from a query centre: what [`TieOrder::ties_by`] groups by.
///
/// ```
/// use geo_index::{LatLng, Neighbour, Ranked};
/// let n = Neighbour { id: 1, position: LatLng::new(0.0, 0.0)?, distance_m: 3.5 };
/// assert_eq!(n.distance_m(), 3.5);
/// # Ok::<(), geo_index::Error>(())
/// ```
pub trait Ranked {
    /// Distance from the query centre in metres (never NaN).
    fn distance_m(&self) -> f64;
}

impl Ranked for Neighbour {
    fn distance_m(&self) -> f64 {
        self.distance_m
    }
}

/// Orders the ties of a nearest-first sequence by the caller's comparison.
///
/// ```
/// use geo_index::{Keyset, LatLng, QuadTree, Query, SpatialIndex, TieOrder};
///
/// let here = LatLng::new(10.0, 20.0)?;
/// // Three entries at one spot; the caller's key is a name, in another order than the ids.
/// let names = ["carol", "alice", "bob"];
/// let index = QuadTree::build(vec![(0, here), (1, here), (2, here)]);
/// let by_name = |a: &geo_index::Neighbour, b: &geo_index::Neighbour| {
///     names[a.id as usize].cmp(names[b.id as usize])
/// };
///
/// let first: Vec<&str> = index
///     .search(Query::within(here, 10.0)?)
///     .ties_by(by_name)
///     .take(2)
///     .map(|n| names[n.id as usize])
///     .collect();
/// assert_eq!(first, ["alice", "bob"]);
///
/// // Resume after (0 m, "bob"): read the run at 0 m again and skip up to the key.
/// let rest: Vec<&str> = index
///     .search(Query::within(here, 10.0)?.after(Keyset { distance_m: 0.0f64.next_down(), id: u32::MAX }))
///     .ties_by(by_name)
///     .skip_while(|n| n.distance_m == 0.0 && names[n.id as usize] <= "bob")
///     .map(|n| names[n.id as usize])
///     .collect();
/// assert_eq!(rest, ["carol"]);
/// # Ok::<(), geo_index::Error>(())
/// ```
pub trait TieOrder: Iterator + Sized
where
    Self::Item: Ranked,
{
    /// The same items, each run of equal distance sorted by `compare` (a stable sort:
    /// items `compare` finds equal keep their order). The input must be nearest first.
    fn ties_by<F>(self, compare: F) -> TiesBy<Self, F>
    where
        F: FnMut(&Self::Item, &Self::Item) -> Ordering,
    {
        TiesBy {
            inner: self.peekable(),
            run: Vec::new(),
            compare,
        }
    }
}

impl<I> TieOrder for I
where
    I: Iterator,
    I::Item: Ranked,
{
}

/// The iterator [`TieOrder::ties_by`] returns.
///
/// ```
/// use geo_index::{LatLng, Neighbour, TieOrder};
/// let at = |id, distance_m| Neighbour { id, position: LatLng::new(0.0, 0.0).unwrap(), distance_m };
/// let ids: Vec<u32> = vec![at(1, 1.0), at(3, 2.0), at(2, 2.0)]
///     .into_iter()
///     .ties_by(|a, b| a.id.cmp(&b.id))
///     .map(|n| n.id)
///     .collect();
/// assert_eq!(ids, [1, 2, 3]);
/// ```
pub struct TiesBy<I: Iterator, F> {
    inner: Peekable<I>,
    /// The rest of the current run, last first (so `pop` yields in order).
    run: Vec<I::Item>,
    compare: F,
}

impl<I, F> Iterator for TiesBy<I, F>
where
    I: Iterator,
    I::Item: Ranked,
    F: FnMut(&I::Item, &I::Item) -> Ordering,
{
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        if let Some(item) = self.run.pop() {
            return Some(item);
        }
        let first = self.inner.next()?;
        let distance_m = first.distance_m();
        // The common case, a distance nobody else has, costs one peek and no allocation.
        if self
            .inner
            .peek()
            .is_none_or(|next| next.distance_m() != distance_m)
        {
            return Some(first);
        }
        self.run.push(first);
        while let Some(item) = self.inner.next_if(|next| next.distance_m() == distance_m) {
            self.run.push(item);
        }
        let compare = &mut self.compare;
        self.run.sort_by(|a, b| compare(a, b));
        self.run.reverse();
        self.run.pop()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (low, high) = self.inner.size_hint();
        let buffered = self.run.len();
        (
            low.saturating_add(buffered),
            high.and_then(|high| high.checked_add(buffered)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LatLng;
    use proptest::prelude::*;

    fn at(id: u32, distance_m: f64) -> Neighbour {
        Neighbour {
            id,
            position: LatLng::new(0.0, 0.0).expect("valid"),
            distance_m,
        }
    }

    #[test]
    fn equal_keys_keep_their_order_and_runs_do_not_mix() {
        // Keys are id / 10: 11 and 12 compare equal and must stay in input order.
        let input = vec![at(12, 1.0), at(11, 1.0), at(5, 1.0), at(1, 2.0), at(0, 3.0)];
        let ids: Vec<u32> = input
            .into_iter()
            .ties_by(|a, b| (a.id / 10).cmp(&(b.id / 10)))
            .map(|n| n.id)
            .collect();
        assert_eq!(ids, [5, 12, 11, 1, 0]);
    }

    proptest! {
        /// Against a full sort by (distance, key): the adaptor is that sort, lazily.
        #[test]
        fn is_a_sort_by_distance_then_key(
            mut items in proptest::collection::vec((0u8..6, 0u32..1000), 0..200),
            keys in proptest::collection::vec(0u16..20, 1000),
        ) {
            // Nearest first, ties in id order (what an index yields).
            items.sort_by_key(|&(distance, id)| (distance, id));
            let input: Vec<Neighbour> =
                items.iter().map(|&(d, id)| at(id, f64::from(d) * 1.5)).collect();
            let key = |n: &Neighbour| keys[n.id as usize];
            let mut expected = input.clone();
            expected.sort_by(|a, b| a.distance_m.total_cmp(&b.distance_m).then(key(a).cmp(&key(b))));
            let got: Vec<Neighbour> =
                input.into_iter().ties_by(|a, b| key(a).cmp(&key(b))).collect();
            prop_assert_eq!(got, expected);
        }
    }
}
