//! Friendships (mutual, by consent) and location sharing ("ghost mode").
//!
//! - `Memory` (the embedded default): a map behind a mutex, lost on restart.
//! - `Postgres` (given `DATABASE_URL`): tables `friendships`, `friend_requests` and `sharing`,
//!   shared by every node.
//!
//! A friendship is stored once per direction so "friends of u" is one index range. Sharing is
//! on by default (being a mutual friend is the consent); a user can turn it off, optionally
//! until a time, after which it flips back.

use crate::friends_pg::PgFriends;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// Most friends one user may have.
pub const MAX_FRIENDS: usize = 5_000;
/// Most outgoing requests one user may have pending.
pub const MAX_PENDING_REQUESTS: usize = 1_000;

/// Whether a user shares their location with their friends.
///
/// ```
/// use nearby_ws_gateway::friends::Sharing;
/// let ghost_for_an_hour = Sharing { enabled: false, until_ms: Some(3_600_000) };
/// assert!(!ghost_for_an_hour.effective(0));
/// assert!(ghost_for_an_hour.effective(3_600_000));
/// assert!(Sharing::default().effective(0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sharing {
    /// Sharing on or off.
    pub enabled: bool,
    /// Unix milliseconds at which `enabled` flips; `None` for until changed.
    pub until_ms: Option<i64>,
}

impl Default for Sharing {
    fn default() -> Self {
        Self {
            enabled: true,
            until_ms: None,
        }
    }
}

impl Sharing {
    /// Whether the user shares at `now_ms`.
    pub fn effective(&self, now_ms: i64) -> bool {
        match self.until_ms {
            Some(until) if now_ms >= until => !self.enabled,
            _ => self.enabled,
        }
    }
}

/// The result of a friend request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestOutcome {
    /// Waiting for the other user to accept.
    Pending,
    /// The other user had already asked: the two are now friends.
    Friends,
    /// They were already friends; nothing changed.
    AlreadyFriends,
}

/// A refused or failed friendship operation.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FriendError {
    /// Asking oneself.
    SelfRequest,
    /// Past [`MAX_FRIENDS`] or [`MAX_PENDING_REQUESTS`].
    LimitReached(&'static str),
    /// The database failed or cannot be reached.
    Unavailable(String),
}

impl std::fmt::Display for FriendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FriendError::SelfRequest => f.write_str("a user cannot befriend themselves"),
            FriendError::LimitReached(what) => write!(f, "limit reached: {what}"),
            FriendError::Unavailable(detail) => write!(f, "friend store unavailable: {detail}"),
        }
    }
}

impl std::error::Error for FriendError {}

/// Pending requests of one user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requests {
    /// Users who asked this user, ascending.
    pub incoming: Vec<u64>,
    /// Users this user asked, ascending.
    pub outgoing: Vec<u64>,
}

/// Where friendships and sharing live.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use nearby_ws_gateway::friends::{FriendStore, RequestOutcome};
/// let store = FriendStore::memory();
/// assert_eq!(store.request(1, 2).await?, RequestOutcome::Pending);
/// assert!(store.friends(1).await?.is_empty());
/// assert!(store.accept(2, 1).await?);
/// assert_eq!(store.friends(1).await?, vec![2]);
/// # Ok::<(), nearby_ws_gateway::friends::FriendError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub enum FriendStore {
    /// In memory.
    Memory(Arc<MemoryFriends>),
    /// In PostgreSQL.
    Postgres(PgFriends),
}

impl FriendStore {
    /// An empty in-memory store.
    pub fn memory() -> Self {
        FriendStore::Memory(Arc::new(MemoryFriends::default()))
    }

    /// Friends of `user`, ascending.
    ///
    /// # Errors
    /// [`FriendError::Unavailable`] when the database fails.
    pub async fn friends(&self, user: u64) -> Result<Vec<u64>, FriendError> {
        match self {
            FriendStore::Memory(store) => Ok(store.friends(user)),
            FriendStore::Postgres(store) => store.friends(user).await,
        }
    }

    /// `from` asks `to`. A request the other way already pending makes them friends at once.
    ///
    /// # Errors
    /// Asking oneself, a limit, or the database.
    pub async fn request(&self, from: u64, to: u64) -> Result<RequestOutcome, FriendError> {
        if from == to {
            return Err(FriendError::SelfRequest);
        }
        match self {
            FriendStore::Memory(store) => store.request(from, to),
            FriendStore::Postgres(store) => store.request(from, to).await,
        }
    }

    /// `user` accepts the request of `from`; false if there is none.
    ///
    /// # Errors
    /// A limit, or the database.
    pub async fn accept(&self, user: u64, from: u64) -> Result<bool, FriendError> {
        match self {
            FriendStore::Memory(store) => store.accept(user, from),
            FriendStore::Postgres(store) => store.accept(user, from).await,
        }
    }

    /// Ends the friendship of `user` and `other` and any request between them, either way;
    /// false if there was nothing to end.
    ///
    /// # Errors
    /// The database.
    pub async fn remove(&self, user: u64, other: u64) -> Result<bool, FriendError> {
        match self {
            FriendStore::Memory(store) => Ok(store.remove(user, other)),
            FriendStore::Postgres(store) => store.remove(user, other).await,
        }
    }

    /// Pending requests to and from `user`.
    ///
    /// # Errors
    /// The database.
    pub async fn requests(&self, user: u64) -> Result<Requests, FriendError> {
        match self {
            FriendStore::Memory(store) => Ok(store.requests(user)),
            FriendStore::Postgres(store) => store.requests(user).await,
        }
    }

    /// The sharing setting of `user`.
    ///
    /// # Errors
    /// The database.
    pub async fn sharing(&self, user: u64) -> Result<Sharing, FriendError> {
        match self {
            FriendStore::Memory(store) => Ok(store.sharing(user)),
            FriendStore::Postgres(store) => store.sharing(user).await,
        }
    }

    /// The users among `users` who share at `now_ms`.
    ///
    /// # Errors
    /// The database.
    pub async fn sharing_now(
        &self,
        users: &[u64],
        now_ms: i64,
    ) -> Result<HashSet<u64>, FriendError> {
        match self {
            FriendStore::Memory(store) => Ok(users
                .iter()
                .copied()
                .filter(|&u| store.sharing(u).effective(now_ms))
                .collect()),
            FriendStore::Postgres(store) => store.sharing_now(users, now_ms).await,
        }
    }

    /// Sets the sharing of `user`.
    ///
    /// # Errors
    /// The database.
    pub async fn set_sharing(&self, user: u64, sharing: Sharing) -> Result<(), FriendError> {
        match self {
            FriendStore::Memory(store) => {
                store.set_sharing(user, sharing);
                Ok(())
            }
            FriendStore::Postgres(store) => store.set_sharing(user, sharing).await,
        }
    }

    /// Makes each pair mutual friends (seeding from a file); returns how many pairs were new.
    ///
    /// # Errors
    /// The database.
    pub async fn seed(&self, pairs: &[(u64, u64)]) -> Result<usize, FriendError> {
        match self {
            FriendStore::Memory(store) => Ok(store.seed(pairs)),
            FriendStore::Postgres(store) => store.seed(pairs).await,
        }
    }
}

/// The in-memory store.
#[derive(Default)]
pub struct MemoryFriends {
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    friends: HashMap<u64, HashSet<u64>>,
    /// (from, to) pairs.
    requests: HashSet<(u64, u64)>,
    outgoing: HashMap<u64, usize>,
    sharing: HashMap<u64, Sharing>,
}

impl MemoryInner {
    fn befriend(&mut self, a: u64, b: u64) -> bool {
        self.drop_request(a, b);
        self.drop_request(b, a);
        let new = self.friends.entry(a).or_default().insert(b);
        self.friends.entry(b).or_default().insert(a);
        new
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
}

impl MemoryFriends {
    fn lock(&self) -> MutexGuard<'_, MemoryInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn friends(&self, user: u64) -> Vec<u64> {
        let mut friends: Vec<u64> = self
            .lock()
            .friends
            .get(&user)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        friends.sort_unstable();
        friends
    }

    fn request(&self, from: u64, to: u64) -> Result<RequestOutcome, FriendError> {
        let mut inner = self.lock();
        if inner.friends.get(&from).is_some_and(|f| f.contains(&to)) {
            return Ok(RequestOutcome::AlreadyFriends);
        }
        if inner.requests.contains(&(to, from)) {
            if inner.friend_count(from) >= MAX_FRIENDS || inner.friend_count(to) >= MAX_FRIENDS {
                return Err(FriendError::LimitReached("5000 friends"));
            }
            inner.befriend(from, to);
            return Ok(RequestOutcome::Friends);
        }
        if inner.requests.contains(&(from, to)) {
            return Ok(RequestOutcome::Pending);
        }
        if inner.outgoing.get(&from).copied().unwrap_or(0) >= MAX_PENDING_REQUESTS {
            return Err(FriendError::LimitReached("1000 pending friend requests"));
        }
        inner.requests.insert((from, to));
        *inner.outgoing.entry(from).or_default() += 1;
        Ok(RequestOutcome::Pending)
    }

    fn accept(&self, user: u64, from: u64) -> Result<bool, FriendError> {
        let mut inner = self.lock();
        if !inner.requests.contains(&(from, user)) {
            return Ok(false);
        }
        if inner.friend_count(from) >= MAX_FRIENDS || inner.friend_count(user) >= MAX_FRIENDS {
            return Err(FriendError::LimitReached("5000 friends"));
        }
        inner.befriend(user, from);
        Ok(true)
    }

    fn remove(&self, user: u64, other: u64) -> bool {
        let mut inner = self.lock();
        let mut removed = inner.drop_request(user, other) | inner.drop_request(other, user);
        if let Some(friends) = inner.friends.get_mut(&user) {
            removed |= friends.remove(&other);
        }
        if let Some(friends) = inner.friends.get_mut(&other) {
            removed |= friends.remove(&user);
        }
        removed
    }

    fn requests(&self, user: u64) -> Requests {
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

    fn sharing(&self, user: u64) -> Sharing {
        self.lock().sharing.get(&user).copied().unwrap_or_default()
    }

    fn set_sharing(&self, user: u64, sharing: Sharing) {
        let mut inner = self.lock();
        if sharing == Sharing::default() {
            inner.sharing.remove(&user);
        } else {
            inner.sharing.insert(user, sharing);
        }
    }

    fn seed(&self, pairs: &[(u64, u64)]) -> usize {
        let mut inner = self.lock();
        pairs
            .iter()
            .filter(|(a, b)| a != b)
            .filter(|&&(a, b)| inner.befriend(a, b))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_flow() {
        let store = MemoryFriends::default();
        assert_eq!(store.request(1, 2), Ok(RequestOutcome::Pending));
        assert_eq!(store.request(1, 2), Ok(RequestOutcome::Pending));
        assert_eq!(
            store.requests(2),
            Requests {
                incoming: vec![1],
                outgoing: vec![]
            }
        );
        assert_eq!(store.accept(1, 2), Ok(false), "only the asked side accepts");
        assert!(store.friends(1).is_empty());
        assert_eq!(store.accept(2, 1), Ok(true));
        assert_eq!(store.friends(2), vec![1]);
        assert_eq!(store.request(2, 1), Ok(RequestOutcome::AlreadyFriends));
        assert!(store.remove(2, 1));
        assert!(store.friends(1).is_empty() && store.friends(2).is_empty());
        assert!(!store.remove(2, 1));
    }

    #[test]
    fn crossing_requests_make_friends() {
        let store = MemoryFriends::default();
        assert_eq!(store.request(3, 4), Ok(RequestOutcome::Pending));
        assert_eq!(store.request(4, 3), Ok(RequestOutcome::Friends));
        assert_eq!(store.friends(3), vec![4]);
        assert_eq!(store.requests(3), Requests::default());
    }

    #[test]
    fn pending_requests_are_limited() {
        let store = MemoryFriends::default();
        for to in 0..MAX_PENDING_REQUESTS as u64 {
            assert_eq!(store.request(u64::MAX, to), Ok(RequestOutcome::Pending));
        }
        assert!(matches!(
            store.request(u64::MAX, 1 << 40),
            Err(FriendError::LimitReached(_))
        ));
        assert!(store.remove(u64::MAX, 0));
        assert_eq!(
            store.request(u64::MAX, 1 << 40),
            Ok(RequestOutcome::Pending)
        );
    }
}
