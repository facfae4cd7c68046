//! Friendships and sharing in PostgreSQL (tables created by the service's migrations:
//! `services/migrations/0002_friends.sql`, `0003_audience.sql`, `0004_sharing_controls.sql`).
//!
//! Every change is one transaction that first takes the two users' advisory locks, then runs
//! the shared rule over [`PgTx`]; the audience log is appended last, right before the commit.

use super::rules;
use super::{
    Audience, FriendError, FriendSetting, FriendTx, Grant, LOG_PAGE, LogPage, Precision,
    RequestOutcome, Requests, Sharing, StoreFailure,
};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::HashSet;

/// The advisory lock that serialises audience log appends (two 32-bit keys: a key space apart
/// from the single 64-bit keys of [`PgFriends::lock_pair`]).
const LOG_LOCK: (i32, i32) = (0x6e65_6172, 1);

/// User ids are `u64`; the database holds the same bits as `BIGINT`.
fn to_db(user: u64) -> i64 {
    i64::from_ne_bytes(user.to_ne_bytes())
}

fn from_db(user: i64) -> u64 {
    u64::from_ne_bytes(user.to_ne_bytes())
}

/// A sharing setting from columns `enabled, until_ms, precision` starting at `first` (NULLs:
/// the default).
fn sharing_of(row: &sqlx::postgres::PgRow, first: usize) -> Sharing {
    match row.get::<Option<bool>, _>(first) {
        Some(enabled) => Sharing {
            enabled,
            until_ms: row.get(first + 1),
            precision: precision_of(row.get(first + 2)),
        },
        None => Sharing::default(),
    }
}

/// A per-friend setting from columns `precision, until_ms` starting at `first`.
fn setting_of(row: &sqlx::postgres::PgRow, first: usize) -> Option<FriendSetting> {
    let precision: Option<String> = row.get(first);
    precision.map(|precision| FriendSetting {
        precision: precision_of(Some(precision)),
        until_ms: row.get(first + 1),
    })
}

/// The schema's CHECK constraints allow only the three names; anything else would be a
/// corrupted row, read as the narrowest.
fn precision_of(text: Option<String>) -> Precision {
    match text {
        None => Precision::Exact,
        Some(text) => Precision::parse(&text).unwrap_or(Precision::Hidden),
    }
}

fn grant_of(row: &sqlx::postgres::PgRow, first: usize) -> Grant {
    Grant {
        sharing: sharing_of(row, first),
        setting: setting_of(row, first + 3),
    }
}

fn unavailable(err: sqlx::Error) -> FriendError {
    FriendError::Unavailable(StoreFailure::new(err))
}

/// The PostgreSQL store; cheap to clone.
#[derive(Clone, Debug)]
pub struct PgFriends {
    /// Session loads (a reconnect storm may drain it).
    pool: PgPool,
    /// Changes, the audience log and the re-reads that apply a change: kept apart so that a
    /// storm of connects cannot delay an unfriend or ghost mode.
    control: PgPool,
}

impl PgFriends {
    /// A store on `pool`, whose database has been migrated by the service.
    pub fn new(pool: PgPool) -> Self {
        Self {
            control: pool.clone(),
            pool,
        }
    }

    /// Uses `control` for changes, the audience log and the re-reads that apply a change.
    #[must_use]
    pub fn with_control_pool(self, control: PgPool) -> Self {
        Self { control, ..self }
    }

    /// Appends `users` to the audience log; the last statement of a change's transaction, so
    /// the log lock is held only until the commit right after it.
    async fn log_changes(
        tx: &mut Transaction<'_, Postgres>,
        users: &[u64],
    ) -> Result<(), FriendError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(LOG_LOCK.0)
            .bind(LOG_LOCK.1)
            .execute(&mut **tx)
            .await
            .map_err(unavailable)?;
        let ids: Vec<i64> = users.iter().copied().map(to_db).collect();
        sqlx::query("INSERT INTO audience_log (user_id) SELECT * FROM unnest($1::bigint[])")
            .bind(&ids)
            .execute(&mut **tx)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub(crate) async fn audience(&self, user: u64) -> Result<Audience, FriendError> {
        // A grant: the friend's sharing (`s`) and their setting for the viewer (`fs`).
        let (friends, sharing) = tokio::join!(
            sqlx::query(
                "SELECT f.friend_id, s.enabled, s.until_ms, s.precision, fs.precision, fs.until_ms \
                 FROM friendships f LEFT JOIN sharing s ON s.user_id = f.friend_id \
                 LEFT JOIN friend_sharing fs ON fs.user_id = f.friend_id AND fs.friend_id = f.user_id \
                 WHERE f.user_id = $1"
            )
            .bind(to_db(user))
            .fetch_all(&self.pool),
            self.sharing_on(&self.pool, user),
        );
        let mut friends: Vec<(u64, Grant)> = friends
            .map_err(unavailable)?
            .iter()
            .map(|row| (from_db(row.get(0)), grant_of(row, 1)))
            .collect();
        friends.sort_unstable_by_key(|&(friend, _)| friend);
        Ok(Audience {
            sharing: sharing?,
            friends,
        })
    }

    pub(crate) async fn grant(
        &self,
        viewer: u64,
        friend: u64,
    ) -> Result<Option<Grant>, FriendError> {
        let row = sqlx::query(
            "SELECT s.enabled, s.until_ms, s.precision, fs.precision, fs.until_ms \
             FROM friendships f LEFT JOIN sharing s ON s.user_id = f.friend_id \
             LEFT JOIN friend_sharing fs ON fs.user_id = f.friend_id AND fs.friend_id = f.user_id \
             WHERE f.user_id = $1 AND f.friend_id = $2",
        )
        .bind(to_db(viewer))
        .bind(to_db(friend))
        .fetch_optional(&self.control)
        .await
        .map_err(unavailable)?;
        Ok(row.map(|row| grant_of(&row, 0)))
    }

    pub(crate) async fn log_head(&self) -> Result<i64, FriendError> {
        sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM audience_log")
            .fetch_one(&self.control)
            .await
            .map_err(unavailable)
    }

    pub(crate) async fn log_after(&self, cursor: i64) -> Result<LogPage, FriendError> {
        let rows = sqlx::query(
            "SELECT seq, user_id FROM audience_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(cursor)
        .bind(i64::try_from(LOG_PAGE).unwrap_or(i64::MAX))
        .fetch_all(&self.control)
        .await
        .map_err(unavailable)?;
        // Read after the entries: a trim that ran in between shows here, so `complete` is
        // never claimed for a page that lost entries.
        let trimmed: i64 = sqlx::query_scalar("SELECT upto FROM audience_log_trim")
            .fetch_one(&self.control)
            .await
            .map_err(unavailable)?;
        Ok(LogPage {
            entries: rows
                .iter()
                .map(|row| (row.get::<i64, _>(0), from_db(row.get(1))))
                .collect(),
            complete: trimmed <= cursor,
        })
    }

    pub(crate) async fn trim_log(&self, age: std::time::Duration) -> Result<(), FriendError> {
        let age_s = age.as_secs_f64();
        sqlx::query(
            "WITH trimmed AS (DELETE FROM audience_log \
               WHERE at < now() - make_interval(secs => $1) RETURNING seq) \
             UPDATE audience_log_trim SET upto = greatest(upto, (SELECT max(seq) FROM trimmed)) \
             WHERE EXISTS (SELECT 1 FROM trimmed)",
        )
        .bind(age_s)
        .execute(&self.control)
        .await
        .map_err(unavailable)?;
        // Expired per-friend settings no longer apply (readers check `until_ms`); drop them.
        sqlx::query("DELETE FROM friend_sharing WHERE until_ms < $1")
            .bind(crate::clock::now_ms())
            .execute(&self.control)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn sharing_on(&self, pool: &PgPool, user: u64) -> Result<Sharing, FriendError> {
        let row =
            sqlx::query("SELECT enabled, until_ms, precision FROM sharing WHERE user_id = $1")
                .bind(to_db(user))
                .fetch_optional(pool)
                .await
                .map_err(unavailable)?;
        Ok(row.map_or_else(Sharing::default, |row| sharing_of(&row, 0)))
    }

    pub(crate) async fn friends(&self, user: u64) -> Result<Vec<u64>, FriendError> {
        let rows = sqlx::query("SELECT friend_id FROM friendships WHERE user_id = $1")
            .bind(to_db(user))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        let mut friends: Vec<u64> = rows
            .iter()
            .map(|row| row.get::<i64, _>(0))
            .map(from_db)
            .collect();
        friends.sort_unstable();
        Ok(friends)
    }

    /// Serialises changes that involve a user: concurrent requests between the same two users
    /// would otherwise both see "no request the other way" and leave two pending requests.
    async fn lock_pair(
        tx: &mut Transaction<'_, Postgres>,
        a: u64,
        b: u64,
    ) -> Result<(), FriendError> {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        sqlx::query("SELECT pg_advisory_xact_lock($1), pg_advisory_xact_lock($2)")
            .bind(to_db(low))
            .bind(to_db(high))
            .execute(&mut **tx)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub(crate) async fn requests(&self, user: u64) -> Result<Requests, FriendError> {
        let rows = sqlx::query(
            "SELECT from_id, to_id FROM friend_requests WHERE from_id = $1 OR to_id = $1",
        )
        .bind(to_db(user))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let mut requests = Requests::default();
        for row in rows {
            let (from, to) = (from_db(row.get(0)), from_db(row.get(1)));
            if to == user {
                requests.incoming.push(from);
            } else {
                requests.outgoing.push(to);
            }
        }
        requests.incoming.sort_unstable();
        requests.outgoing.sort_unstable();
        Ok(requests)
    }

    pub(crate) async fn sharing(&self, user: u64) -> Result<Sharing, FriendError> {
        self.sharing_on(&self.pool, user).await
    }

    pub(crate) async fn sharing_now(
        &self,
        users: &[u64],
        now_ms: i64,
    ) -> Result<HashSet<u64>, FriendError> {
        let ids: Vec<i64> = users.iter().copied().map(to_db).collect();
        // Only users with a row can differ from the default (sharing); whether they share
        // now is `Sharing::effective`, the one rule.
        let rows = sqlx::query(
            "SELECT user_id, enabled, until_ms, precision FROM sharing \
             WHERE user_id = ANY($1::bigint[])",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let mut sharing: HashSet<u64> = users.iter().copied().collect();
        for row in &rows {
            if !sharing_of(row, 1).effective(now_ms) {
                sharing.remove(&from_db(row.get(0)));
            }
        }
        Ok(sharing)
    }

    /// Starts a change: a transaction on the control pool holding the advisory locks of the
    /// two users (of one user when both are the same).
    async fn begin(&self, a: u64, b: u64) -> Result<PgTx, FriendError> {
        let mut tx = self.control.begin().await.map_err(unavailable)?;
        Self::lock_pair(&mut tx, a, b).await?;
        Ok(PgTx {
            tx,
            log: Vec::new(),
        })
    }

    pub(crate) async fn request(&self, from: u64, to: u64) -> Result<RequestOutcome, FriendError> {
        let mut tx = self.begin(from, to).await?;
        let outcome = rules::request(&mut tx, from, to).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    pub(crate) async fn accept(&self, user: u64, from: u64) -> Result<bool, FriendError> {
        let mut tx = self.begin(user, from).await?;
        let accepted = rules::accept(&mut tx, user, from).await?;
        tx.commit().await?;
        Ok(accepted)
    }

    pub(crate) async fn remove(&self, user: u64, other: u64) -> Result<bool, FriendError> {
        let mut tx = self.begin(user, other).await?;
        let removed = rules::remove(&mut tx, user, other).await?;
        tx.commit().await?;
        Ok(removed)
    }

    pub(crate) async fn set_sharing(&self, user: u64, sharing: Sharing) -> Result<(), FriendError> {
        // The user's own lock serialises this with their friendship changes.
        let mut tx = self.begin(user, user).await?;
        rules::set_sharing(&mut tx, user, sharing).await?;
        tx.commit().await
    }

    pub(crate) async fn set_friend_setting(
        &self,
        user: u64,
        friend: u64,
        setting: Option<FriendSetting>,
    ) -> Result<bool, FriendError> {
        let mut tx = self.begin(user, friend).await?;
        let changed = rules::set_friend_setting(&mut tx, user, friend, setting).await?;
        tx.commit().await?;
        Ok(changed)
    }

    pub(crate) async fn seed(&self, pairs: &[(u64, u64)]) -> Result<usize, FriendError> {
        // Upgraded from a version that did not record seeded pairs: record this file's pairs
        // without re-creating any (see `0003_audience.sql`).
        let legacy = sqlx::query("DELETE FROM friend_seeds_legacy RETURNING singleton")
            .fetch_optional(&self.control)
            .await
            .map_err(unavailable)?
            .is_some();
        if legacy {
            tracing::warn!(
                "database seeded before seed pairs were recorded: the file's pairs are recorded as applied, none re-created"
            );
        }
        let mut applied = 0;
        for chunk in pairs.chunks(10_000) {
            let (mut lows, mut highs) = (Vec::new(), Vec::new());
            for &(a, b) in chunk.iter().filter(|(a, b)| a != b) {
                lows.push(to_db(a.min(b)));
                highs.push(to_db(a.max(b)));
            }
            // Only pairs never seeded before are befriended: one the users ended through the
            // API stays ended, however often the file is applied.
            let mut tx = self.control.begin().await.map_err(unavailable)?;
            let rows = sqlx::query(
                "INSERT INTO friend_seeds (user_a, user_b) \
                 SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING \
                 RETURNING user_a, user_b",
            )
            .bind(&lows)
            .bind(&highs)
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
            if legacy {
                tx.commit().await.map_err(unavailable)?;
                continue;
            }
            let (mut users, mut friends) = (Vec::new(), Vec::new());
            for row in &rows {
                let (a, b): (i64, i64) = (row.get(0), row.get(1));
                users.extend([a, b]);
                friends.extend([b, a]);
            }
            if !users.is_empty() {
                let inserted = sqlx::query(
                    "INSERT INTO friendships (user_id, friend_id) \
                     SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING",
                )
                .bind(&users)
                .bind(&friends)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?
                .rows_affected();
                // Pairs that were already friends (through the API) are recorded, not counted.
                applied += usize::try_from(inserted / 2).unwrap_or(usize::MAX);
                let changed: Vec<u64> = users.iter().copied().map(from_db).collect();
                Self::log_changes(&mut tx, &changed).await?;
            }
            tx.commit().await.map_err(unavailable)?;
        }
        Ok(applied)
    }
}

/// A change in PostgreSQL: a transaction holding the two users' advisory locks; the users to
/// append to the audience log are gathered and written last, right before the commit.
pub struct PgTx {
    tx: Transaction<'static, Postgres>,
    log: Vec<u64>,
}

impl PgTx {
    /// Appends the gathered users to the audience log (the last statement, so the log's
    /// lock is held only until the commit right after it) and commits.
    async fn commit(mut self) -> Result<(), FriendError> {
        if !self.log.is_empty() {
            PgFriends::log_changes(&mut self.tx, &self.log).await?;
        }
        self.tx.commit().await.map_err(unavailable)
    }

    async fn exists(&mut self, sql: &'static str, a: u64, b: u64) -> Result<bool, FriendError> {
        sqlx::query_scalar(sql)
            .bind(to_db(a))
            .bind(to_db(b))
            .fetch_one(&mut *self.tx)
            .await
            .map_err(unavailable)
    }

    async fn count(&mut self, sql: &'static str, user: u64) -> Result<usize, FriendError> {
        let count: i64 = sqlx::query_scalar(sql)
            .bind(to_db(user))
            .fetch_one(&mut *self.tx)
            .await
            .map_err(unavailable)?;
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }

    async fn execute(&mut self, sql: &'static str, a: u64, b: u64) -> Result<u64, FriendError> {
        Ok(sqlx::query(sql)
            .bind(to_db(a))
            .bind(to_db(b))
            .execute(&mut *self.tx)
            .await
            .map_err(unavailable)?
            .rows_affected())
    }
}

impl FriendTx for PgTx {
    async fn are_friends(&mut self, a: u64, b: u64) -> Result<bool, FriendError> {
        self.exists(
            "SELECT EXISTS (SELECT 1 FROM friendships WHERE user_id = $1 AND friend_id = $2)",
            a,
            b,
        )
        .await
    }

    async fn has_request(&mut self, from: u64, to: u64) -> Result<bool, FriendError> {
        self.exists(
            "SELECT EXISTS (SELECT 1 FROM friend_requests WHERE from_id = $1 AND to_id = $2)",
            from,
            to,
        )
        .await
    }

    async fn friend_count(&mut self, user: u64) -> Result<usize, FriendError> {
        self.count("SELECT count(*) FROM friendships WHERE user_id = $1", user)
            .await
    }

    async fn outgoing_requests(&mut self, user: u64) -> Result<usize, FriendError> {
        self.count(
            "SELECT count(*) FROM friend_requests WHERE from_id = $1",
            user,
        )
        .await
    }

    async fn add_request(&mut self, from: u64, to: u64) -> Result<(), FriendError> {
        self.execute(
            "INSERT INTO friend_requests (from_id, to_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            from,
            to,
        )
        .await
        .map(drop)
    }

    async fn drop_requests(&mut self, a: u64, b: u64) -> Result<bool, FriendError> {
        let dropped = self
            .execute(
                "DELETE FROM friend_requests \
                 WHERE (from_id = $1 AND to_id = $2) OR (from_id = $2 AND to_id = $1)",
                a,
                b,
            )
            .await?;
        Ok(dropped > 0)
    }

    async fn add_friendship(&mut self, a: u64, b: u64) -> Result<bool, FriendError> {
        let added = self
            .execute(
                "INSERT INTO friendships (user_id, friend_id) VALUES ($1, $2), ($2, $1) \
                 ON CONFLICT DO NOTHING",
                a,
                b,
            )
            .await?;
        Ok(added > 0)
    }

    async fn drop_friendship(&mut self, a: u64, b: u64) -> Result<bool, FriendError> {
        let dropped = self
            .execute(
                "DELETE FROM friendships \
                 WHERE (user_id = $1 AND friend_id = $2) OR (user_id = $2 AND friend_id = $1)",
                a,
                b,
            )
            .await?;
        Ok(dropped > 0)
    }

    async fn put_setting(
        &mut self,
        user: u64,
        friend: u64,
        setting: Option<FriendSetting>,
    ) -> Result<(), FriendError> {
        match setting {
            Some(setting) => sqlx::query(
                "INSERT INTO friend_sharing (user_id, friend_id, precision, until_ms) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, friend_id) \
                 DO UPDATE SET precision = EXCLUDED.precision, until_ms = EXCLUDED.until_ms",
            )
            .bind(to_db(user))
            .bind(to_db(friend))
            .bind(setting.precision.as_str())
            .bind(setting.until_ms),
            None => sqlx::query("DELETE FROM friend_sharing WHERE user_id = $1 AND friend_id = $2")
                .bind(to_db(user))
                .bind(to_db(friend)),
        }
        .execute(&mut *self.tx)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn put_sharing(&mut self, user: u64, sharing: Sharing) -> Result<(), FriendError> {
        if sharing == Sharing::default() {
            sqlx::query("DELETE FROM sharing WHERE user_id = $1")
                .bind(to_db(user))
                .execute(&mut *self.tx)
                .await
                .map_err(unavailable)?;
        } else {
            sqlx::query(
                "INSERT INTO sharing (user_id, enabled, until_ms, precision) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id) DO UPDATE SET enabled = EXCLUDED.enabled, \
                 until_ms = EXCLUDED.until_ms, precision = EXCLUDED.precision",
            )
            .bind(to_db(user))
            .bind(sharing.enabled)
            .bind(sharing.until_ms)
            .bind(sharing.precision.as_str())
            .execute(&mut *self.tx)
            .await
            .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn log(&mut self, users: &[u64]) -> Result<(), FriendError> {
        self.log.extend_from_slice(users);
        Ok(())
    }
}
