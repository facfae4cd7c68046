//! Which node owns a user: rendezvous (highest random weight) hashing of the user id over
//! the live nodes.
//!
//! Every node computes the same owner from the same membership, with no coordination: each
//! node gets a score per user and the highest score wins (ties, which need equal 64-bit
//! scores, go to the smaller node id). When a node joins, only the users it now wins move
//! (about 1/N of them); when one leaves, only its own users move. The hash is spelled out
//! here (FNV-1a over the node id, SplitMix64's finaliser to mix) rather than taken from
//! `std`'s `DefaultHasher`, whose output may change between Rust releases: nodes built by
//! different compilers must agree.

/// FNV-1a, 64-bit, over `bytes`.
///
/// ```
/// // The published FNV-1a test vectors.
/// assert_eq!(nearby_ws_gateway::ring::fnv1a(b""), 0xcbf2_9ce4_8422_2325);
/// assert_eq!(nearby_ws_gateway::ring::fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
/// ```
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// SplitMix64's finaliser: a bijection on `u64` that spreads every input bit over the output.
///
/// ```
/// assert_eq!(nearby_ws_gateway::ring::mix(0), 0);
/// assert_ne!(nearby_ws_gateway::ring::mix(1), nearby_ws_gateway::ring::mix(2));
/// ```
pub fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The score of the node whose id hashes to `node_key` (see [`node_key`]) for `user`.
///
/// ```
/// use nearby_ws_gateway::ring::{node_key, score};
/// let a = node_key("node-a");
/// assert_eq!(score(a, 42), score(a, 42));
/// assert_ne!(score(a, 42), score(node_key("node-b"), 42));
/// ```
pub fn score(node_key: u64, user: u64) -> u64 {
    // The user is mixed before it meets the node key so that consecutive user ids do not
    // produce correlated scores on every node.
    mix(node_key ^ mix(user.wrapping_add(0x9e37_79b9_7f4a_7c15)))
}

/// The hash of a node id that [`score`] takes.
///
/// ```
/// assert_eq!(nearby_ws_gateway::ring::node_key("a"), nearby_ws_gateway::ring::fnv1a(b"a"));
/// ```
pub fn node_key(node_id: &str) -> u64 {
    fnv1a(node_id.as_bytes())
}

/// The index in `nodes` (pairs of node id and [`node_key`]) of the node that owns `user`, or
/// `None` if there are no nodes.
///
/// ```
/// use nearby_ws_gateway::ring::{node_key, owner};
/// let nodes: Vec<(&str, u64)> = ["a", "b", "c"].iter().map(|id| (*id, node_key(id))).collect();
/// let chosen = nodes[owner(&nodes, 7).unwrap()].0;
/// // Removing a node other than the owner does not move the user.
/// let fewer: Vec<(&str, u64)> = nodes.iter().copied().filter(|n| n.0 == chosen || n.0 != "c").collect();
/// assert_eq!(fewer[owner(&fewer, 7).unwrap()].0, chosen);
/// let none: [(&str, u64); 0] = [];
/// assert_eq!(owner(&none, 7), None);
/// ```
pub fn owner<S: AsRef<str>>(nodes: &[(S, u64)], user: u64) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for (index, (id, key)) in nodes.iter().enumerate() {
        let candidate = score(*key, user);
        let better = match best {
            None => true,
            Some((best_index, best_score)) => {
                candidate > best_score
                    || (candidate == best_score && id.as_ref() < nodes[best_index].0.as_ref())
            }
        };
        if better {
            best = Some((index, candidate));
        }
    }
    best.map(|(index, _)| index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[&str]) -> Vec<(String, u64)> {
        ids.iter()
            .map(|id| ((*id).to_owned(), node_key(id)))
            .collect()
    }

    #[test]
    fn reference_values_do_not_change_between_builds() {
        // Pinned outputs: if these change, nodes of different versions would disagree on
        // owners during a rolling upgrade.
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(mix(1), 0x5692_161d_100b_05e5);
        assert_eq!(score(node_key("node-1"), 1), 0xf8a1_39ec_e89a_d38b);
        let three = nodes(&["node-1", "node-2", "node-3"]);
        let owners: Vec<usize> = (0..12).map(|user| owner(&three, user).unwrap()).collect();
        assert_eq!(owners, [2, 0, 1, 1, 2, 2, 0, 0, 1, 0, 0, 1]);
    }

    #[test]
    fn the_order_of_nodes_does_not_matter() {
        let forward = nodes(&["a", "b", "c", "d"]);
        let mut backward = forward.clone();
        backward.reverse();
        for user in 0..10_000 {
            assert_eq!(
                forward[owner(&forward, user).unwrap()].0,
                backward[owner(&backward, user).unwrap()].0
            );
        }
    }

    #[test]
    fn users_spread_evenly_and_only_the_joiners_share_moves() {
        let three = nodes(&["n1", "n2", "n3"]);
        let four = nodes(&["n1", "n2", "n3", "n4"]);
        let users = 100_000u64;
        let mut counts = [0u64; 4];
        let mut moved = 0;
        for user in 0..users {
            let before = &three[owner(&three, user).unwrap()].0;
            let after = &four[owner(&four, user).unwrap()].0;
            counts[owner(&four, user).unwrap()] += 1;
            if before != after {
                // A user only ever moves to the node that joined.
                assert_eq!(after, "n4", "user {user} moved between old nodes");
                moved += 1;
            }
        }
        for count in counts {
            let share = count as f64 / users as f64;
            assert!((share - 0.25).abs() < 0.01, "share {share}");
        }
        let moved_share = moved as f64 / users as f64;
        assert!((moved_share - 0.25).abs() < 0.01, "moved {moved_share}");
    }
}
