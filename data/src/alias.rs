//! Walker's alias method in exact integer arithmetic: O(1) weighted draws.
//!
//! Each bucket carries a payload (the generator stores a city's precomputed constants
//! there), so a draw that keeps its bucket touches a single cache line, and a draw that
//! takes the alias lands, in population-skewed data, on one of the few big cities whose
//! buckets stay cached.

use crate::SplitMix64;

/// One bucket: index `i` is kept when a draw in `[0, total)` is below `threshold`,
/// otherwise `alias` is taken.
#[derive(Debug, Clone)]
#[repr(align(64))]
struct Bucket<T> {
    threshold: u64,
    alias: u32,
    payload: T,
}

/// Draws index `i` with probability exactly `weights[i] / sum(weights)`, with a payload
/// per index.
#[derive(Debug, Clone)]
pub(crate) struct AliasTable<T> {
    buckets: Vec<Bucket<T>>,
    /// Sum of the weights: every bucket holds this much probability mass.
    total: u64,
}

impl<T> AliasTable<T> {
    /// Builds the table (Vose's construction) from `(weight, payload)` pairs. Returns
    /// `None` when there are none, more than `u32::MAX`, or all weights are zero.
    pub(crate) fn new(items: impl IntoIterator<Item = (u32, T)>) -> Option<Self> {
        let (weights, payloads): (Vec<u32>, Vec<T>) = items.into_iter().unzip();
        let n = u32::try_from(weights.len()).ok().filter(|&n| n > 0)?;
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        if total == 0 {
            return None;
        }
        // Bucket i starts with mass weights[i] * n and must end up holding exactly `total`.
        let full = u128::from(total);
        let mut mass: Vec<u128> = weights
            .iter()
            .map(|&w| u128::from(w) * u128::from(n))
            .collect();
        let mut threshold = vec![total; weights.len()];
        let mut alias: Vec<u32> = (0..n).collect();
        let (mut small, mut large): (Vec<u32>, Vec<u32>) =
            (0..n).partition(|&i| mass[i as usize] < full);
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            let (si, li) = (s as usize, l as usize);
            // mass[si] < full = total, so it fits in u64.
            threshold[si] = u64::try_from(mass[si]).unwrap_or(total);
            alias[si] = l;
            mass[li] -= full - mass[si];
            if mass[li] < full {
                large.pop();
                small.push(l);
            }
        }
        // Whatever remains holds exactly `full` (the arithmetic is exact) and keeps its
        // own index: `threshold` and `alias` already say so.
        let buckets = threshold
            .into_iter()
            .zip(alias)
            .zip(payloads)
            .map(|((threshold, alias), payload)| Bucket {
                threshold,
                alias,
                payload,
            })
            .collect();
        Some(Self { buckets, total })
    }

    /// Draws an index (two numbers from `rng`).
    pub(crate) fn sample(&self, rng: &mut SplitMix64) -> usize {
        let i = rng.below(self.buckets.len() as u64) as usize;
        let bucket = &self.buckets[i];
        if rng.below(self.total) < bucket.threshold {
            i
        } else {
            bucket.alias as usize
        }
    }

    /// The payload of index `i`.
    pub(crate) fn payload(&self, i: usize) -> &T {
        &self.buckets[i].payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact probability of each index, from the table itself.
    fn exact<T>(table: &AliasTable<T>) -> Vec<f64> {
        let n = table.buckets.len() as f64;
        let t = table.total as f64;
        let mut p = vec![0.0; table.buckets.len()];
        for (i, b) in table.buckets.iter().enumerate() {
            p[i] += b.threshold as f64 / t / n;
            p[b.alias as usize] += (t - b.threshold as f64) / t / n;
        }
        p
    }

    #[test]
    fn reproduces_weights_exactly() {
        let weights = [5, 0, 1, 1000, 7, 7, 0, 3];
        let table = AliasTable::new(weights.iter().map(|&w| (w, ()))).expect("valid");
        let total: u32 = weights.iter().sum();
        for (p, &w) in exact(&table).iter().zip(&weights) {
            assert!((p - f64::from(w) / f64::from(total)).abs() < 1e-12);
        }
    }

    #[test]
    fn never_draws_zero_weight() {
        let table = AliasTable::new([(0, 'a'), (3, 'b'), (0, 'c'), (1, 'd')]).expect("valid");
        let mut rng = SplitMix64::new(1);
        let mut counts = [0; 4];
        for _ in 0..10_000 {
            counts[table.sample(&mut rng)] += 1;
        }
        assert_eq!((counts[0], counts[2]), (0, 0));
        assert!((7_000..8_000).contains(&counts[1]));
        assert_eq!(*table.payload(1), 'b');
    }

    #[test]
    fn rejects_degenerate_input() {
        assert!(AliasTable::<()>::new([]).is_none());
        assert!(AliasTable::new([(0, ()), (0, ())]).is_none());
        assert!(AliasTable::new([(1, ())]).is_some());
    }
}
