//! Friendships and sharing in PostgreSQL (tables created by the service's migrations:
//! `services/migrations/0002_friends.sql`).

use crate::friends::{
    FriendError, MAX_FRIENDS, MAX_PENDING_REQUESTS, RequestOutcome, Requests, Sharing,
};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::HashSet;

/// User ids are `u64`; the database holds the same bits as `BIGINT`.
fn to_db(user: u64) -> i64 {
    i64::from_ne_bytes(user.to_ne_bytes())
}

fn from_db(user: i64) -> u64 {
    u64::from_ne_bytes(user.to_ne_bytes())
}

fn unavailable(err: sqlx::Error) -> FriendError {
    FriendError::Unavailable(err.to_string())
}

/// The PostgreSQL store; cheap to clone.
#[derive(Clone, Debug)]
pub struct PgFriends {
    pool: PgPool,
}

impl PgFriends {
    /// A store on `pool`, whose database has been migrated by the service.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
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

    async fn friend_count(
        tx: &mut Transaction<'_, Postgres>,
        user: u64,
    ) -> Result<i64, FriendError> {
        sqlx::query_scalar("SELECT count(*) FROM friendships WHERE user_id = $1")
            .bind(to_db(user))
            .fetch_one(&mut **tx)
            .await
            .map_err(unavailable)
    }

    async fn befriend(
        tx: &mut Transaction<'_, Postgres>,
        a: u64,
        b: u64,
    ) -> Result<(), FriendError> {
        for user in [a, b] {
            if Self::friend_count(tx, user).await? >= MAX_FRIENDS as i64 {
                return Err(FriendError::LimitReached("5000 friends"));
            }
        }
        sqlx::query("DELETE FROM friend_requests WHERE (from_id = $1 AND to_id = $2) OR (from_id = $2 AND to_id = $1)")
            .bind(to_db(a))
            .bind(to_db(b))
            .execute(&mut **tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO friendships (user_id, friend_id) VALUES ($1, $2), ($2, $1) ON CONFLICT DO NOTHING",
        )
        .bind(to_db(a))
        .bind(to_db(b))
        .execute(&mut **tx)
        .await
        .map_err(unavailable)?;
        Ok(())
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

    pub(crate) async fn request(&self, from: u64, to: u64) -> Result<RequestOutcome, FriendError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        Self::lock_pair(&mut tx, from, to).await?;
        let already: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM friendships WHERE user_id = $1 AND friend_id = $2)",
        )
        .bind(to_db(from))
        .bind(to_db(to))
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        if already {
            return Ok(RequestOutcome::AlreadyFriends);
        }
        let reverse: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM friend_requests WHERE from_id = $2 AND to_id = $1)",
        )
        .bind(to_db(from))
        .bind(to_db(to))
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        if reverse {
            Self::befriend(&mut tx, from, to).await?;
            tx.commit().await.map_err(unavailable)?;
            return Ok(RequestOutcome::Friends);
        }
        let outgoing: i64 =
            sqlx::query_scalar("SELECT count(*) FROM friend_requests WHERE from_id = $1")
                .bind(to_db(from))
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable)?;
        if outgoing >= MAX_PENDING_REQUESTS as i64 {
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM friend_requests WHERE from_id = $1 AND to_id = $2)",
            )
            .bind(to_db(from))
            .bind(to_db(to))
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
            if !exists {
                return Err(FriendError::LimitReached("1000 pending friend requests"));
            }
        }
        sqlx::query(
            "INSERT INTO friend_requests (from_id, to_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(to_db(from))
        .bind(to_db(to))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(RequestOutcome::Pending)
    }

    pub(crate) async fn accept(&self, user: u64, from: u64) -> Result<bool, FriendError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        Self::lock_pair(&mut tx, user, from).await?;
        let pending: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM friend_requests WHERE from_id = $1 AND to_id = $2)",
        )
        .bind(to_db(from))
        .bind(to_db(user))
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        if !pending {
            return Ok(false);
        }
        Self::befriend(&mut tx, user, from).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    pub(crate) async fn remove(&self, user: u64, other: u64) -> Result<bool, FriendError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        Self::lock_pair(&mut tx, user, other).await?;
        let friendships = sqlx::query(
            "DELETE FROM friendships WHERE (user_id = $1 AND friend_id = $2) OR (user_id = $2 AND friend_id = $1)",
        )
        .bind(to_db(user))
        .bind(to_db(other))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        let requests = sqlx::query(
            "DELETE FROM friend_requests WHERE (from_id = $1 AND to_id = $2) OR (from_id = $2 AND to_id = $1)",
        )
        .bind(to_db(user))
        .bind(to_db(other))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        tx.commit().await.map_err(unavailable)?;
        Ok(friendships + requests > 0)
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
        let row = sqlx::query("SELECT enabled, until_ms FROM sharing WHERE user_id = $1")
            .bind(to_db(user))
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(row.map_or_else(Sharing::default, |row| Sharing {
            enabled: row.get(0),
            until_ms: row.get(1),
        }))
    }

    pub(crate) async fn sharing_now(
        &self,
        users: &[u64],
        now_ms: i64,
    ) -> Result<HashSet<u64>, FriendError> {
        let ids: Vec<i64> = users.iter().copied().map(to_db).collect();
        // Users without a row share (the default); those with one share if it says so now.
        let rows = sqlx::query(
            "SELECT id FROM unnest($1::bigint[]) AS id \
             WHERE NOT EXISTS (SELECT 1 FROM sharing s WHERE s.user_id = id \
               AND (CASE WHEN s.until_ms IS NOT NULL AND $2 >= s.until_ms \
                    THEN NOT s.enabled ELSE s.enabled END) = false)",
        )
        .bind(&ids)
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(rows.iter().map(|row| from_db(row.get(0))).collect())
    }

    pub(crate) async fn set_sharing(&self, user: u64, sharing: Sharing) -> Result<(), FriendError> {
        if sharing == Sharing::default() {
            sqlx::query("DELETE FROM sharing WHERE user_id = $1")
                .bind(to_db(user))
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
        } else {
            sqlx::query(
                "INSERT INTO sharing (user_id, enabled, until_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id) DO UPDATE SET enabled = EXCLUDED.enabled, until_ms = EXCLUDED.until_ms",
            )
            .bind(to_db(user))
            .bind(sharing.enabled)
            .bind(sharing.until_ms)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        }
        Ok(())
    }

    pub(crate) async fn seed(&self, pairs: &[(u64, u64)]) -> Result<usize, FriendError> {
        let mut written = 0;
        for chunk in pairs.chunks(10_000) {
            let (mut users, mut friends) = (Vec::new(), Vec::new());
            for &(a, b) in chunk.iter().filter(|(a, b)| a != b) {
                users.extend([to_db(a), to_db(b)]);
                friends.extend([to_db(b), to_db(a)]);
            }
            let inserted = sqlx::query(
                "INSERT INTO friendships (user_id, friend_id) \
                 SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING",
            )
            .bind(&users)
            .bind(&friends)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?
            .rows_affected();
            written += usize::try_from(inserted / 2).unwrap_or(usize::MAX);
        }
        Ok(written)
    }
}
