//! The in-memory backend: maps behind a mutex, lost on restart (the embedded default).

use super::rules::{self, run_now};
use super::{
    Audience, FriendError, FriendSetting, FriendTx, Grant, LOG_PAGE, LogPage, RequestOutcome,
    Requests, Sharing,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

/// The in-memory store: every change runs the shared rules under one mutex.
#[derive(Default)]
pub struct MemoryFriends {
    inner: Mutex<MemoryInner>,
    pub(super) read_only: std::sync::atomic::AtomicBool,
    /// Faults the unit tests inject: reads of grants that fail, a log that cannot be read.
    #[cfg(test)]
    pub(crate) faults: Mutex<Faults>,
}

/// Faults injected by the unit tests (see `MemoryFriends::faults`).
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Faults {
    /// This many grant or audience reads fail next.
    pub failing_reads: u32,
    /// Every read of the audience log fails while set.
    pub log_down: bool,
}

impl MemoryFriends {
    #[cfg(test)]
    pub(crate) fn read_fault(&self) -> Result<(), FriendError> {
        let mut faults = self
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if faults.failing_reads > 0 {
            faults.failing_reads -= 1;
            return Err(FriendError::Unavailable(super::StoreFailure::new(
                "injected fault",
            )));
        }
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn log_fault(&self) -> Result<(), FriendError> {
        let faults = self
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if faults.log_down {
            return Err(FriendError::Unavailable(super::StoreFailure::new(
                "injected fault",
            )));
        }
        Ok(())
    }

    #[cfg(not(test))]
    pub(crate) fn read_fault(&self) -> Result<(), FriendError> {
        Ok(())
    }

    #[cfg(not(test))]
    pub(crate) fn log_fault(&self) -> Result<(), FriendError> {
        Ok(())
    }
}

/// Entries the in-memory audience log keeps; a reader further behind is told the log is
/// incomplete.
const MEMORY_LOG_ENTRIES: usize = 100_000;

#[derive(Default)]
struct MemoryInner {
    friends: HashMap<u64, HashSet<u64>>,
    /// (from, to) pairs.
    requests: HashSet<(u64, u64)>,
    outgoing: HashMap<u64, usize>,
    sharing: HashMap<u64, Sharing>,
    /// `(user, friend)`: what `user` lets `friend` see.
    settings: HashMap<(u64, u64), FriendSetting>,
    /// Pairs applied by [`FriendStore::seed`], never applied again.
    seeded: HashSet<(u64, u64)>,
    /// The audience log: `(sequence number, user)`, the last [`MEMORY_LOG_ENTRIES`].
    log: VecDeque<(i64, u64)>,
    last_seq: i64,
}

impl MemoryInner {
    /// Appends `user` to the audience log (under the store's lock: log order is change order).
    fn log_change(&mut self, user: u64) {
        self.last_seq += 1;
        self.log.push_back((self.last_seq, user));
        if self.log.len() > MEMORY_LOG_ENTRIES {
            self.log.pop_front();
        }
    }

    fn log_head(&self) -> i64 {
        self.last_seq
    }

    fn log_after(&self, cursor: i64) -> LogPage {
        let oldest = self.log.front().map_or(self.last_seq + 1, |&(seq, _)| seq);
        let start = self.log.partition_point(|&(seq, _)| seq <= cursor);
        LogPage {
            entries: self
                .log
                .iter()
                .skip(start)
                .take(LOG_PAGE)
                .copied()
                .collect(),
            // Sequence numbers are contiguous here: entries were dropped iff the oldest kept
            // is past the one after the cursor.
            complete: oldest <= cursor + 1,
        }
    }

    fn drop_request(&mut self, from: u64, to: u64) -> bool {
        let dropped = self.requests.remove(&(from, to));
        if dropped && let Some(count) = self.outgoing.get_mut(&from) {
            *count = count.saturating_sub(1);
        }
        dropped
    }

    fn friend_count(&self, user: u64) -> usize {
        self.friends.get(&user).map_or(0, HashSet::len)
    }

    fn are_friends(&self, a: u64, b: u64) -> bool {
        self.friends.get(&a).is_some_and(|f| f.contains(&b))
    }

    fn add_friendship(&mut self, a: u64, b: u64) -> bool {
        let new = self.friends.entry(a).or_default().insert(b);
        self.friends.entry(b).or_default().insert(a);
        new
    }
}

/// A change on the memory store: its state, borrowed under the mutex for the whole rule.
struct MemoryTx<'a>(&'a mut MemoryInner);

impl FriendTx for MemoryTx<'_> {
    async fn are_friends(&mut self, a: u64, b: u64) -> Result<bool, FriendError> {
        Ok(self.0.are_friends(a, b))
    }

    async fn has_request(&mut self, from: u64, to: u64) -> Result<bool, FriendError> {
        Ok(self.0.requests.contains(&(from, to)))
    }

    async fn friend_count(&mut self, user: u64) -> Result<usize, FriendError> {
        Ok(self.0.friend_count(user))
    }

    async fn outgoing_requests(&mut self, user: u64) -> Result<usize, FriendError> {
        Ok(self.0.outgoing.get(&user).copied().unwrap_or(0))
    }

    async fn add_request(&mut self, from: u64, to: u64) -> Result<(), FriendError> {
        if self.0.requests.insert((from, to)) {
            *self.0.outgoing.entry(from).or_default() += 1;
        }
        Ok(())
    }

    async fn drop_requests(&mut self, a: u64, b: u64) -> Result<bool, FriendError> {
        Ok(self.0.drop_request(a, b) | self.0.drop_request(b, a))
    }

    async fn add_friendship(&mut self, a: u64, b: u64) -> Result<bool, FriendError> {
        Ok(self.0.add_friendship(a, b))
    }

    async fn drop_friendship(&mut self, a: u64, b: u64) -> Result<bool, FriendError> {
        let mut ended = false;
        if let Some(friends) = self.0.friends.get_mut(&a) {
            ended |= friends.remove(&b);
        }
        if let Some(friends) = self.0.friends.get_mut(&b) {
            ended |= friends.remove(&a);
        }
        Ok(ended)
    }

    async fn put_setting(
        &mut self,
        user: u64,
        friend: u64,
        setting: Option<FriendSetting>,
    ) -> Result<(), FriendError> {
        match setting {
            Some(setting) => self.0.settings.insert((user, friend), setting),
            None => self.0.settings.remove(&(user, friend)),
        };
        Ok(())
    }

    async fn put_sharing(&mut self, user: u64, sharing: Sharing) -> Result<(), FriendError> {
        if sharing == Sharing::default() {
            self.0.sharing.remove(&user);
        } else {
            self.0.sharing.insert(user, sharing);
        }
        Ok(())
    }

    async fn log(&mut self, users: &[u64]) -> Result<(), FriendError> {
        for &user in users {
            self.0.log_change(user);
        }
        Ok(())
    }
}

impl MemoryFriends {
    fn lock(&self) -> MutexGuard<'_, MemoryInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn friends(&self, user: u64) -> Vec<u64> {
        let mut friends: Vec<u64> = self
            .lock()
            .friends
            .get(&user)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        friends.sort_unstable();
        friends
    }

    pub(super) fn request(&self, from: u64, to: u64) -> Result<RequestOutcome, FriendError> {
        run_now(rules::request(&mut MemoryTx(&mut self.lock()), from, to))
    }

    pub(super) fn accept(&self, user: u64, from: u64) -> Result<bool, FriendError> {
        run_now(rules::accept(&mut MemoryTx(&mut self.lock()), user, from))
    }

    pub(super) fn remove(&self, user: u64, other: u64) -> Result<bool, FriendError> {
        run_now(rules::remove(&mut MemoryTx(&mut self.lock()), user, other))
    }

    pub(super) fn requests(&self, user: u64) -> Requests {
        let inner = self.lock();
        let mut requests = Requests::default();
        for &(from, to) in &inner.requests {
            if to == user {
                requests.incoming.push(from);
            }
            if from == user {
                requests.outgoing.push(to);
            }
        }
        requests.incoming.sort_unstable();
        requests.outgoing.sort_unstable();
        requests
    }

    pub(super) fn sharing(&self, user: u64) -> Sharing {
        self.lock().sharing.get(&user).copied().unwrap_or_default()
    }

    pub(super) fn set_sharing(&self, user: u64, sharing: Sharing) -> Result<(), FriendError> {
        run_now(rules::set_sharing(
            &mut MemoryTx(&mut self.lock()),
            user,
            sharing,
        ))
    }

    /// Seeding: each pair at most once in the store's life, befriended like an accepted
    /// request (pending requests between the two settled), without the limits.
    pub(super) fn seed(&self, pairs: &[(u64, u64)]) -> usize {
        let mut inner = self.lock();
        let mut applied = 0;
        for &(a, b) in pairs.iter().filter(|(a, b)| a != b) {
            if inner.seeded.insert((a.min(b), a.max(b))) {
                inner.drop_request(a, b);
                inner.drop_request(b, a);
                if inner.add_friendship(a, b) {
                    inner.log_change(a);
                    inner.log_change(b);
                    applied += 1;
                }
            }
        }
        applied
    }

    pub(super) fn set_friend_setting(
        &self,
        user: u64,
        friend: u64,
        setting: Option<FriendSetting>,
    ) -> Result<bool, FriendError> {
        run_now(rules::set_friend_setting(
            &mut MemoryTx(&mut self.lock()),
            user,
            friend,
            setting,
        ))
    }

    pub(super) fn audience(&self, user: u64) -> Audience {
        let inner = self.lock();
        let mut friends: Vec<(u64, Grant)> = inner
            .friends
            .get(&user)
            .into_iter()
            .flatten()
            .map(|&friend| (friend, inner.grant_of(friend, user)))
            .collect();
        friends.sort_unstable_by_key(|&(friend, _)| friend);
        Audience {
            sharing: inner.sharing.get(&user).copied().unwrap_or_default(),
            friends,
        }
    }

    pub(super) fn grant(&self, viewer: u64, friend: u64) -> Option<Grant> {
        let inner = self.lock();
        let friends = inner.friends.get(&viewer)?.contains(&friend);
        friends.then(|| inner.grant_of(friend, viewer))
    }

    pub(super) fn log_head(&self) -> i64 {
        self.lock().log_head()
    }

    pub(super) fn log_after(&self, cursor: i64) -> LogPage {
        self.lock().log_after(cursor)
    }
}

impl MemoryInner {
    /// What `friend` grants `viewer` (whether or not they are friends).
    fn grant_of(&self, friend: u64, viewer: u64) -> Grant {
        Grant {
            sharing: self.sharing.get(&friend).copied().unwrap_or_default(),
            setting: self.settings.get(&(friend, viewer)).copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::friends::{FriendStore, conformance};

    #[tokio::test]
    async fn passes_the_shared_suite() {
        let store = FriendStore::memory();
        conformance::run(&store, 0).await;
        // Again on the same store, at other users: nothing in the suite leans on a fresh store
        // (PostgreSQL runs it on a database other tests share).
        conformance::run(&store, 1 << 40).await;
    }

    #[test]
    fn a_reader_behind_the_kept_log_is_told_it_is_incomplete() {
        let store = MemoryFriends::default();
        for _ in 0..MEMORY_LOG_ENTRIES + 2 {
            assert_eq!(store.set_sharing(7, Sharing::default()), Ok(()));
        }
        let inner = store.lock();
        assert!(!inner.log_after(0).complete);
        assert!(!inner.log_after(1).complete);
        assert!(inner.log_after(2).complete);
        assert_eq!(inner.log_after(2).entries.len(), LOG_PAGE);
    }
}
