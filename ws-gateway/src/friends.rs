//! Friendships (mutual, by consent) and location sharing ("ghost mode").
//!
//! - `Memory` (the embedded default): a map behind a mutex, lost on restart.
//! - `Postgres` (given `DATABASE_URL`): tables `friendships`, `friend_requests` and `sharing`,
//!   shared by every node.
//!
//! A friendship is stored once per direction so "friends of u" is one index range. Sharing is
//! on by default (being a mutual friend is the consent); a user can turn it off, optionally
//! until a time, after which it flips back.
//!
//! Every change to who may see a user (a friendship made or ended, a sharing setting) appends
//! the users concerned to the **audience log**, in the same transaction as the change and in
//! commit order. Every gateway node reads the log (see [`crate::audience`]), so a change
//! reaches every node even when the pub/sub message announcing it is lost.

use crate::friends_pg::PgFriends;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// Most friends one user may have.
pub const MAX_FRIENDS: usize = 5_000;
/// Most outgoing requests one user may have pending.
pub const MAX_PENDING_REQUESTS: usize = 1_000;

/// How precisely a friend sees a user.
///
/// ```
/// use nearby_ws_gateway::friends::Precision;
/// assert_eq!(Precision::parse("approximate"), Some(Precision::Approximate));
/// assert_eq!(Precision::Hidden.as_str(), "hidden");
/// assert!(Precision::Approximate < Precision::Exact, "narrower is smaller");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Precision {
    /// Nothing: `friend_gone`, absent from snapshots.
    Hidden,
    /// The centre of the H3 resolution-7 cell (about 5 km²) that holds the position.
    Approximate,
    /// The position itself.
    #[default]
    Exact,
}

impl Precision {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Hidden => "hidden",
            Precision::Approximate => "approximate",
            Precision::Exact => "exact",
        }
    }

    /// From the wire name.
    pub fn parse(text: &str) -> Option<Precision> {
        match text {
            "hidden" => Some(Precision::Hidden),
            "approximate" => Some(Precision::Approximate),
            "exact" => Some(Precision::Exact),
            _ => None,
        }
    }
}

/// Whether a user shares their location with their friends, and how precisely by default.
///
/// ```
/// use nearby_ws_gateway::friends::Sharing;
/// let ghost_for_an_hour = Sharing { enabled: false, until_ms: Some(3_600_000), ..Sharing::default() };
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
    /// What friends without a setting of their own see: exact or approximate.
    pub precision: Precision,
}

impl Default for Sharing {
    fn default() -> Self {
        Self {
            enabled: true,
            until_ms: None,
            precision: Precision::Exact,
        }
    }
}

/// What a user lets one friend see, overriding their default, optionally until a time (after
/// which the default applies again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FriendSetting {
    /// Exact, approximate or hidden.
    pub precision: Precision,
    /// Unix milliseconds at which the setting ends; `None` for until changed.
    pub until_ms: Option<i64>,
}

impl FriendSetting {
    /// Whether the setting still applies at `now_ms`.
    pub fn applies(&self, now_ms: i64) -> bool {
        self.until_ms.is_none_or(|until| now_ms < until)
    }
}

/// What a friend grants a viewer: the friend's sharing and their setting for that viewer.
///
/// ```
/// use nearby_ws_gateway::friends::{FriendSetting, Grant, Precision, Sharing};
/// let grant = Grant {
///     sharing: Sharing { precision: Precision::Approximate, ..Sharing::default() },
///     setting: Some(FriendSetting { precision: Precision::Exact, until_ms: Some(100) }),
/// };
/// assert_eq!(grant.precision_at(50), Precision::Exact);
/// assert_eq!(grant.precision_at(100), Precision::Approximate, "expired: the default again");
/// let ghost = Grant { sharing: Sharing { enabled: false, ..grant.sharing }, ..grant };
/// assert_eq!(ghost.precision_at(50), Precision::Hidden, "ghost mode hides from everyone");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// The friend's own sharing setting (ghost mode, default precision).
    pub sharing: Sharing,
    /// The friend's setting for this viewer, if any.
    pub setting: Option<FriendSetting>,
}

impl Grant {
    /// What the viewer sees of the friend at `now_ms`.
    pub fn precision_at(&self, now_ms: i64) -> Precision {
        if !self.sharing.effective(now_ms) {
            return Precision::Hidden;
        }
        match self.setting {
            Some(setting) if setting.applies(now_ms) => setting.precision,
            _ => self.sharing.precision,
        }
    }

    /// The instants (Unix ms) at which what the viewer sees may change by time alone.
    pub fn flips(&self) -> impl Iterator<Item = i64> {
        self.sharing
            .until_ms
            .into_iter()
            .chain(self.setting.and_then(|setting| setting.until_ms))
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
    /// This store is read-only: nodes sharing a bus without a shared database serve the same
    /// seed file and must never diverge (see [`FriendStore::freeze`]).
    ReadOnly,
}

impl std::fmt::Display for FriendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FriendError::SelfRequest => f.write_str("a user cannot befriend themselves"),
            FriendError::LimitReached(what) => write!(f, "limit reached: {what}"),
            FriendError::Unavailable(detail) => write!(f, "friend store unavailable: {detail}"),
            FriendError::ReadOnly => f.write_str(
                "friendships and sharing are read-only here: the nodes share Redis without a \
                 database and serve the same --friends file; set DATABASE_URL to change them",
            ),
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

/// What a user's session needs to know about who they see and who sees them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Audience {
    /// The user's own sharing setting.
    pub sharing: Sharing,
    /// Each friend with what the friend grants this user, ascending by id.
    pub friends: Vec<(u64, Grant)>,
}

/// Entries of the audience log after a cursor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogPage {
    /// `(sequence number, user)` in commit order: `user`'s audience changed.
    pub entries: Vec<(i64, u64)>,
    /// False when entries after the cursor were already trimmed from the log: whoever read
    /// it must assume that anything may have changed.
    pub complete: bool,
}

/// Most entries one read of the audience log returns.
pub const LOG_PAGE: usize = 10_000;

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

    /// Makes an in-memory store read-only from now on (seeding excepted): every change answers
    /// [`FriendError::ReadOnly`]. Nodes that share a bus but not a database use it, so no node
    /// ever holds friendships or sharing another node does not. A no-op for PostgreSQL.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use nearby_ws_gateway::friends::{FriendError, FriendStore};
    /// let store = FriendStore::memory();
    /// store.seed(&[(1, 2)]).await?;
    /// store.freeze();
    /// assert_eq!(store.remove(1, 2).await, Err(FriendError::ReadOnly));
    /// assert_eq!(store.friends(1).await?, vec![2]);
    /// # Ok::<(), FriendError>(())
    /// # }).unwrap();
    /// ```
    pub fn freeze(&self) {
        if let FriendStore::Memory(store) = self {
            store
                .read_only
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    fn writable(&self) -> Result<(), FriendError> {
        match self {
            FriendStore::Memory(store)
                if store.read_only.load(std::sync::atomic::Ordering::Acquire) =>
            {
                Err(FriendError::ReadOnly)
            }
            _ => Ok(()),
        }
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
        self.writable()?;
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
        self.writable()?;
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
        self.writable()?;
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
        self.writable()?;
        match self {
            FriendStore::Memory(store) => {
                store.set_sharing(user, sharing);
                Ok(())
            }
            FriendStore::Postgres(store) => store.set_sharing(user, sharing).await,
        }
    }

    /// Makes each pair mutual friends (seeding from a file); returns how many friendships
    /// were new. A pair is applied at most once in the life of the store: a friendship seeded
    /// and later ended through the API is not re-created by seeding the same file again.
    ///
    /// # Errors
    /// The database.
    pub async fn seed(&self, pairs: &[(u64, u64)]) -> Result<usize, FriendError> {
        match self {
            FriendStore::Memory(store) => Ok(store.seed(pairs)),
            FriendStore::Postgres(store) => store.seed(pairs).await,
        }
    }

    /// The user's sharing setting and their friends with each friend's sharing setting.
    ///
    /// # Errors
    /// The database.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use nearby_ws_gateway::friends::{FriendStore, Grant, Sharing};
    /// let store = FriendStore::memory();
    /// store.seed(&[(1, 2)]).await?;
    /// let ghost = Sharing { enabled: false, ..Sharing::default() };
    /// store.set_sharing(2, ghost).await?;
    /// let audience = store.audience(1).await?;
    /// assert_eq!(audience.friends, vec![(2, Grant { sharing: ghost, setting: None })]);
    /// assert_eq!(audience.sharing, Sharing::default());
    /// # Ok::<(), nearby_ws_gateway::friends::FriendError>(())
    /// # }).unwrap();
    /// ```
    pub async fn audience(&self, user: u64) -> Result<Audience, FriendError> {
        match self {
            FriendStore::Memory(store) => store.read_fault().map(|()| store.audience(user)),
            FriendStore::Postgres(store) => store.audience(user).await,
        }
    }

    /// What `friend` grants `viewer` if the two are friends, `None` if they are not.
    ///
    /// # Errors
    /// The database.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use nearby_ws_gateway::friends::{FriendSetting, FriendStore, Grant, Precision};
    /// let store = FriendStore::memory();
    /// store.seed(&[(1, 2)]).await?;
    /// assert_eq!(store.grant(1, 2).await?, Some(Grant::default()));
    /// let blur = FriendSetting { precision: Precision::Approximate, until_ms: None };
    /// assert!(store.set_friend_setting(2, 1, Some(blur)).await?);
    /// assert_eq!(store.grant(1, 2).await?.map(|g| g.setting), Some(Some(blur)));
    /// assert_eq!(store.grant(1, 3).await?, None);
    /// # Ok::<(), nearby_ws_gateway::friends::FriendError>(())
    /// # }).unwrap();
    /// ```
    pub async fn grant(&self, viewer: u64, friend: u64) -> Result<Option<Grant>, FriendError> {
        match self {
            FriendStore::Memory(store) => store.read_fault().map(|()| store.grant(viewer, friend)),
            FriendStore::Postgres(store) => store.grant(viewer, friend).await,
        }
    }

    /// Sets (or with `None` clears) what `user` lets `friend` see; false when they are not
    /// friends (nothing changed). Appends `user` to the audience log.
    ///
    /// # Errors
    /// The database, or a read-only store.
    pub async fn set_friend_setting(
        &self,
        user: u64,
        friend: u64,
        setting: Option<FriendSetting>,
    ) -> Result<bool, FriendError> {
        self.writable()?;
        match self {
            FriendStore::Memory(store) => Ok(store.set_friend_setting(user, friend, setting)),
            FriendStore::Postgres(store) => store.set_friend_setting(user, friend, setting).await,
        }
    }

    /// What `user` lets `friend` see: `None` when they are not friends, else the user's
    /// sharing and the setting for that friend if one applies at `now_ms`.
    ///
    /// # Errors
    /// The database.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use nearby_ws_gateway::friends::{FriendSetting, FriendStore, Precision};
    /// let store = FriendStore::memory();
    /// store.seed(&[(1, 2)]).await?;
    /// let hidden_until = FriendSetting { precision: Precision::Hidden, until_ms: Some(1_000) };
    /// store.set_friend_setting(1, 2, Some(hidden_until)).await?;
    /// assert_eq!(store.friend_setting(1, 2, 999).await?.map(|g| g.setting), Some(Some(hidden_until)));
    /// assert_eq!(store.friend_setting(1, 2, 1_000).await?.map(|g| g.setting), Some(None));
    /// assert_eq!(store.friend_setting(1, 3, 0).await?, None);
    /// # Ok::<(), nearby_ws_gateway::friends::FriendError>(())
    /// # }).unwrap();
    /// ```
    pub async fn friend_setting(
        &self,
        user: u64,
        friend: u64,
        now_ms: i64,
    ) -> Result<Option<Grant>, FriendError> {
        // The grant `user` gives `friend` is `grant(friend, user)` seen from the other side.
        let grant = self.grant(friend, user).await?;
        Ok(grant.map(|grant| Grant {
            setting: grant.setting.filter(|setting| setting.applies(now_ms)),
            ..grant
        }))
    }

    /// The last sequence number of the audience log (0 when empty).
    ///
    /// # Errors
    /// The database.
    pub async fn log_head(&self) -> Result<i64, FriendError> {
        match self {
            FriendStore::Memory(store) => store.log_fault().map(|()| store.lock().log_head()),
            FriendStore::Postgres(store) => store.log_head().await,
        }
    }

    /// Up to [`LOG_PAGE`] audience log entries after `cursor`, in commit order.
    ///
    /// # Errors
    /// The database.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use nearby_ws_gateway::friends::{FriendStore, Sharing};
    /// let store = FriendStore::memory();
    /// let head = store.log_head().await?;
    /// store.seed(&[(1, 2)]).await?;
    /// store.remove(2, 1).await?;
    /// let page = store.log_after(head).await?;
    /// let users: Vec<u64> = page.entries.iter().map(|&(_, user)| user).collect();
    /// assert_eq!(users, vec![1, 2, 2, 1]);
    /// assert!(page.complete);
    /// # Ok::<(), nearby_ws_gateway::friends::FriendError>(())
    /// # }).unwrap();
    /// ```
    pub async fn log_after(&self, cursor: i64) -> Result<LogPage, FriendError> {
        match self {
            FriendStore::Memory(store) => {
                store.log_fault().map(|()| store.lock().log_after(cursor))
            }
            FriendStore::Postgres(store) => store.log_after(cursor).await,
        }
    }

    /// Drops audience log entries older than `age` (every node reads the log within
    /// seconds; a node that was away longer reloads every session instead).
    ///
    /// # Errors
    /// The database.
    pub async fn trim_log(&self, age: std::time::Duration) -> Result<(), FriendError> {
        match self {
            // The memory log is bounded by its length instead.
            FriendStore::Memory(_) => Ok(()),
            FriendStore::Postgres(store) => store.trim_log(age).await,
        }
    }
}

/// The in-memory store.
#[derive(Default)]
pub struct MemoryFriends {
    inner: Mutex<MemoryInner>,
    read_only: std::sync::atomic::AtomicBool,
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
    fn read_fault(&self) -> Result<(), FriendError> {
        let mut faults = self
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if faults.failing_reads > 0 {
            faults.failing_reads -= 1;
            return Err(FriendError::Unavailable("injected fault".to_owned()));
        }
        Ok(())
    }

    #[cfg(test)]
    fn log_fault(&self) -> Result<(), FriendError> {
        let faults = self
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if faults.log_down {
            return Err(FriendError::Unavailable("injected fault".to_owned()));
        }
        Ok(())
    }

    #[cfg(not(test))]
    fn read_fault(&self) -> Result<(), FriendError> {
        Ok(())
    }

    #[cfg(not(test))]
    fn log_fault(&self) -> Result<(), FriendError> {
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
    fn befriend(&mut self, a: u64, b: u64) -> bool {
        self.drop_request(a, b);
        self.drop_request(b, a);
        let new = self.friends.entry(a).or_default().insert(b);
        self.friends.entry(b).or_default().insert(a);
        if new {
            self.log_change(a);
            self.log_change(b);
        }
        new
    }

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
        let requests = inner.drop_request(user, other) | inner.drop_request(other, user);
        let mut ended = false;
        if let Some(friends) = inner.friends.get_mut(&user) {
            ended |= friends.remove(&other);
        }
        if let Some(friends) = inner.friends.get_mut(&other) {
            ended |= friends.remove(&user);
        }
        if ended {
            // Befriending again starts from the default.
            inner.settings.remove(&(user, other));
            inner.settings.remove(&(other, user));
            inner.log_change(user);
            inner.log_change(other);
        }
        requests || ended
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
        inner.log_change(user);
    }

    fn seed(&self, pairs: &[(u64, u64)]) -> usize {
        let mut inner = self.lock();
        let mut applied = 0;
        for &(a, b) in pairs.iter().filter(|(a, b)| a != b) {
            if inner.seeded.insert((a.min(b), a.max(b))) && inner.befriend(a, b) {
                applied += 1;
            }
        }
        applied
    }

    fn set_friend_setting(&self, user: u64, friend: u64, setting: Option<FriendSetting>) -> bool {
        let mut inner = self.lock();
        if !inner
            .friends
            .get(&user)
            .is_some_and(|f| f.contains(&friend))
        {
            return false;
        }
        match setting {
            Some(setting) => inner.settings.insert((user, friend), setting),
            None => inner.settings.remove(&(user, friend)),
        };
        inner.log_change(user);
        true
    }

    fn audience(&self, user: u64) -> Audience {
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

    fn grant(&self, viewer: u64, friend: u64) -> Option<Grant> {
        let inner = self.lock();
        let friends = inner.friends.get(&viewer)?.contains(&friend);
        friends.then(|| inner.grant_of(friend, viewer))
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
    fn the_audience_log_follows_every_change_in_order() {
        let store = MemoryFriends::default();
        store.seed(&[(1, 2)]);
        let head = store.lock().log_head();
        store.set_sharing(
            1,
            Sharing {
                enabled: false,
                ..Sharing::default()
            },
        );
        store.request(3, 1).unwrap();
        assert_eq!(
            store.lock().log_head(),
            head + 1,
            "a request changes nobody's audience"
        );
        store.accept(1, 3).unwrap();
        store.remove(2, 1);
        let page = store.lock().log_after(head);
        let users: Vec<u64> = page.entries.iter().map(|&(_, user)| user).collect();
        assert_eq!(users, vec![1, 1, 3, 2, 1]);
        assert!(page.complete);
        let head = store.lock().log_head();
        assert!(store.lock().log_after(head).entries.is_empty());
    }

    #[test]
    fn a_reader_behind_the_kept_log_is_told_it_is_incomplete() {
        let store = MemoryFriends::default();
        for _ in 0..MEMORY_LOG_ENTRIES + 2 {
            store.set_sharing(7, Sharing::default());
        }
        let inner = store.lock();
        assert!(!inner.log_after(0).complete);
        assert!(!inner.log_after(1).complete);
        assert!(inner.log_after(2).complete);
        assert_eq!(inner.log_after(2).entries.len(), LOG_PAGE);
    }

    #[test]
    fn a_seeded_pair_is_applied_once_and_never_resurrected() {
        let store = MemoryFriends::default();
        assert_eq!(store.seed(&[(1, 2), (2, 1), (3, 3)]), 1);
        assert!(store.remove(1, 2));
        assert_eq!(store.seed(&[(2, 1)]), 0);
        assert!(store.friends(1).is_empty());
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
