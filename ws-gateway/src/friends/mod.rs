//! Friendships (mutual, by consent) and location sharing ("ghost mode").
//!
//! - `Memory` (the embedded default, [`memory`]): maps behind a mutex, lost on restart.
//! - `Postgres` (given `DATABASE_URL`, [`postgres`]): tables `friendships`,
//!   `friend_requests`, `sharing` and `friend_sharing`, shared by every node.
//!
//! The rules (consent, the limits, what ending a friendship clears, what each change logs)
//! are written once, in `rules.rs`, against the narrow [`FriendTx`] trait each backend
//! implements (`store.rs`); [`conformance`] is the test suite every backend passes.
//!
//! A friendship is stored once per direction so "friends of u" is one index range. Sharing is
//! on by default (being a mutual friend is the consent); a user can turn it off, optionally
//! until a time, after which it flips back.
//!
//! Every change to who may see a user (a friendship made or ended, a sharing setting) appends
//! the users concerned to the **audience log**, in the same transaction as the change and in
//! commit order. Every gateway node reads the log (see [`crate::audience`]), so a change
//! reaches every node even when the pub/sub message announcing it is lost.

#[doc(hidden)]
pub mod conformance;
pub mod memory;
pub mod postgres;
mod rules;
mod store;

pub use memory::MemoryFriends;
pub use postgres::PgFriends;
pub use store::FriendTx;

use std::collections::HashSet;
use std::sync::Arc;

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

/// A limit a change would pass; its text names the number from the constant.
///
/// ```
/// use nearby_ws_gateway::friends::Limit;
/// assert_eq!(Limit::Friends.to_string(), "5000 friends");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// [`MAX_FRIENDS`].
    Friends,
    /// [`MAX_PENDING_REQUESTS`].
    PendingRequests,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::Friends => write!(f, "{MAX_FRIENDS} friends"),
            Limit::PendingRequests => write!(f, "{MAX_PENDING_REQUESTS} pending friend requests"),
        }
    }
}

/// Why a backend could not answer: the underlying error (sqlx's for PostgreSQL), kept whole
/// so its own source chain survives.
///
/// It displays as that error and its `source()` is that error's source (it is a transparent
/// wrapper). Two failures compare equal when they display the same, so [`FriendError`] can
/// stay `PartialEq` for the tests.
#[derive(Debug)]
pub struct StoreFailure(Box<dyn std::error::Error + Send + Sync + 'static>);

impl StoreFailure {
    /// Wraps the underlying error (or a message).
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self(error.into())
    }
}

impl std::fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for StoreFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for StoreFailure {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for StoreFailure {}

/// A refused or failed friendship operation.
///
/// `Unavailable` displays its cause as well as keeping it as `source()`: the gateway logs
/// errors with `%err`, and those lines must keep saying what failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FriendError {
    /// Asking oneself.
    #[error("a user cannot befriend themselves")]
    SelfRequest,
    /// Past [`MAX_FRIENDS`] or [`MAX_PENDING_REQUESTS`].
    #[error("limit reached: {0}")]
    LimitReached(Limit),
    /// The database failed or cannot be reached.
    #[error("friend store unavailable: {0}")]
    Unavailable(#[source] StoreFailure),
    /// This store is read-only: nodes sharing a bus without a shared database serve the same
    /// seed file and must never diverge (see [`FriendStore::freeze`]).
    #[error(
        "friendships and sharing are read-only here: the nodes share Redis without a \
         database and serve the same --friends file; set DATABASE_URL to change them"
    )]
    ReadOnly,
}

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
            FriendStore::Memory(store) => store.remove(user, other),
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
                .filter(|&user| store.sharing(user).effective(now_ms))
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
            FriendStore::Memory(store) => store.set_sharing(user, sharing),
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
            FriendStore::Memory(store) => store.set_friend_setting(user, friend, setting),
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
            FriendStore::Memory(store) => store.log_fault().map(|()| store.log_head()),
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
            FriendStore::Memory(store) => store.log_fault().map(|()| store.log_after(cursor)),
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
