//! The shared test suite every friends backend must pass: each rule of [`super::rules`] and
//! each read, observed through [`FriendStore`]. The memory store runs it in this crate's unit
//! tests, PostgreSQL in `services/tests/storage_conformance.rs` (a throwaway server).
//!
//! Users are numbered from `base`, so one database can host several runs; the store must not
//! be read-only.

use super::{
    FriendError, FriendSetting, FriendStore, Grant, Limit, MAX_FRIENDS, MAX_PENDING_REQUESTS,
    Precision, RequestOutcome, Requests, Sharing,
};

/// Runs every check against `store`, panicking at the first difference.
///
/// # Panics
/// When the backend breaks a rule (that is what it is for).
pub async fn run(store: &FriendStore, base: u64) {
    consent(store, base).await;
    crossing_requests(store, base + 100).await;
    refusals(store, base + 200).await;
    pending_limit(store, base + 1_000).await;
    friend_limit(store, base + 10_000).await;
    ending_clears_settings(store, base + 20_000).await;
    sharing(store, base + 20_100).await;
    audience_log(store, base + 20_200).await;
    seeding(store, base + 20_300).await;
}

async fn consent(store: &FriendStore, u: u64) {
    let (a, b) = (u + 1, u + 2);
    assert_eq!(store.request(a, b).await, Ok(RequestOutcome::Pending));
    assert_eq!(store.request(a, b).await, Ok(RequestOutcome::Pending));
    assert_eq!(
        store.requests(b).await,
        Ok(Requests {
            incoming: vec![a],
            outgoing: vec![]
        })
    );
    assert_eq!(
        store.requests(a).await,
        Ok(Requests {
            incoming: vec![],
            outgoing: vec![b]
        })
    );
    assert_eq!(
        store.accept(a, b).await,
        Ok(false),
        "only the asked side accepts"
    );
    assert_eq!(store.friends(a).await, Ok(vec![]));
    assert_eq!(store.accept(b, a).await, Ok(true));
    assert_eq!(store.friends(a).await, Ok(vec![b]));
    assert_eq!(store.friends(b).await, Ok(vec![a]));
    assert_eq!(store.requests(b).await, Ok(Requests::default()));
    assert_eq!(
        store.request(b, a).await,
        Ok(RequestOutcome::AlreadyFriends)
    );
    assert_eq!(
        store.accept(b, a).await,
        Ok(false),
        "nothing left to accept"
    );
    assert_eq!(store.remove(b, a).await, Ok(true));
    assert_eq!(store.friends(a).await, Ok(vec![]));
    assert_eq!(store.friends(b).await, Ok(vec![]));
    assert_eq!(store.remove(b, a).await, Ok(false));
    // A pending request alone is something to remove (a withdrawal or a refusal).
    assert_eq!(store.request(a, b).await, Ok(RequestOutcome::Pending));
    assert_eq!(store.remove(b, a).await, Ok(true));
    assert_eq!(store.requests(a).await, Ok(Requests::default()));
}

async fn crossing_requests(store: &FriendStore, u: u64) {
    let (a, b) = (u + 1, u + 2);
    assert_eq!(store.request(a, b).await, Ok(RequestOutcome::Pending));
    assert_eq!(store.request(b, a).await, Ok(RequestOutcome::Friends));
    assert_eq!(store.friends(a).await, Ok(vec![b]));
    assert_eq!(store.requests(a).await, Ok(Requests::default()));
    assert_eq!(store.requests(b).await, Ok(Requests::default()));
}

async fn refusals(store: &FriendStore, u: u64) {
    let a = u + 1;
    let refused = store.request(a, a).await;
    assert_eq!(refused, Err(FriendError::SelfRequest));
    assert_eq!(store.requests(a).await, Ok(Requests::default()));
    // User ids use all 64 bits (PostgreSQL stores the same bits as a negative BIGINT).
    let (high, higher) = (u64::MAX - u, u64::MAX - u - 1);
    assert_eq!(
        store.request(high, higher).await,
        Ok(RequestOutcome::Pending)
    );
    assert_eq!(store.accept(higher, high).await, Ok(true));
    assert_eq!(store.friends(higher).await, Ok(vec![high]));
    assert_eq!(store.remove(high, higher).await, Ok(true));
}

async fn pending_limit(store: &FriendStore, u: u64) {
    let asker = u;
    for to in 1..=MAX_PENDING_REQUESTS as u64 {
        assert_eq!(
            store.request(asker, u + to).await,
            Ok(RequestOutcome::Pending)
        );
    }
    let one_too_many = u + MAX_PENDING_REQUESTS as u64 + 1;
    let refused = store.request(asker, one_too_many).await;
    assert_eq!(
        refused,
        Err(FriendError::LimitReached(Limit::PendingRequests))
    );
    assert_eq!(
        refused.map_err(|err| err.to_string()),
        Err(format!(
            "limit reached: {MAX_PENDING_REQUESTS} pending friend requests"
        ))
    );
    assert!(
        store
            .requests(one_too_many)
            .await
            .is_ok_and(|r| r.incoming.is_empty()),
        "a refused request leaves nothing behind"
    );
    assert_eq!(
        store.request(asker, u + 1).await,
        Ok(RequestOutcome::Pending),
        "asking again at the limit is still the one request"
    );
    // Being asked is not limited, and a request the other way still makes friends.
    assert_eq!(
        store.request(one_too_many, asker).await,
        Ok(RequestOutcome::Pending)
    );
    assert_eq!(
        store.request(u + 1, asker).await,
        Ok(RequestOutcome::Friends)
    );
    assert_eq!(
        store.request(asker, one_too_many).await,
        Ok(RequestOutcome::Friends),
        "crossing an incoming request is not a new outgoing one"
    );
    assert_eq!(
        store
            .request(asker, u + MAX_PENDING_REQUESTS as u64 + 2)
            .await,
        Ok(RequestOutcome::Pending),
        "the friendship settled a request, which freed a slot"
    );
}

async fn friend_limit(store: &FriendStore, u: u64) {
    let popular = u;
    let pairs: Vec<(u64, u64)> = (1..=MAX_FRIENDS as u64).map(|i| (popular, u + i)).collect();
    assert_eq!(store.seed(&pairs).await, Ok(MAX_FRIENDS));
    let (late, later) = (u + MAX_FRIENDS as u64 + 1, u + MAX_FRIENDS as u64 + 2);
    assert_eq!(
        store.request(late, popular).await,
        Ok(RequestOutcome::Pending)
    );
    let refused = store.accept(popular, late).await;
    assert_eq!(refused, Err(FriendError::LimitReached(Limit::Friends)));
    assert_eq!(
        refused.map_err(|err| err.to_string()),
        Err(format!("limit reached: {MAX_FRIENDS} friends"))
    );
    assert!(
        store
            .requests(popular)
            .await
            .is_ok_and(|r| r.incoming == vec![late]),
        "a refused acceptance leaves the request pending"
    );
    assert_eq!(
        store.request(popular, later).await,
        Ok(RequestOutcome::Pending)
    );
    assert_eq!(
        store.request(later, popular).await,
        Err(FriendError::LimitReached(Limit::Friends)),
        "crossing requests obey the limit of either side"
    );
    assert_eq!(store.remove(popular, u + 1).await, Ok(true));
    assert_eq!(store.accept(popular, late).await, Ok(true));
    assert_eq!(
        store.friends(popular).await.map(|f| f.len()),
        Ok(MAX_FRIENDS)
    );
}

async fn ending_clears_settings(store: &FriendStore, u: u64) {
    let (a, b, stranger) = (u + 1, u + 2, u + 3);
    let blur = FriendSetting {
        precision: Precision::Approximate,
        until_ms: None,
    };
    assert_eq!(store.set_friend_setting(a, b, Some(blur)).await, Ok(false));
    assert_eq!(store.seed(&[(a, b)]).await, Ok(1));
    assert_eq!(store.grant(b, a).await, Ok(Some(Grant::default())));
    assert_eq!(store.grant(b, stranger).await, Ok(None));
    let head = store.log_head().await.unwrap_or(i64::MAX);
    assert_eq!(
        store.set_friend_setting(a, stranger, Some(blur)).await,
        Ok(false)
    );
    assert_eq!(
        store.log_after(head).await.map(|page| page.entries.len()),
        Ok(0),
        "no change, no log entry"
    );
    assert_eq!(store.set_friend_setting(a, b, Some(blur)).await, Ok(true));
    assert_eq!(
        store.grant(b, a).await.map(|g| g.map(|g| g.setting)),
        Ok(Some(Some(blur)))
    );
    let audience = store.audience(b).await;
    assert_eq!(
        audience.map(|a| a.friends),
        Ok(vec![(
            a,
            Grant {
                sharing: Sharing::default(),
                setting: Some(blur)
            }
        )])
    );
    let until = FriendSetting {
        precision: Precision::Hidden,
        until_ms: Some(1_000),
    };
    assert_eq!(store.set_friend_setting(a, b, Some(until)).await, Ok(true));
    assert_eq!(
        store
            .friend_setting(a, b, 999)
            .await
            .map(|g| g.map(|g| g.setting)),
        Ok(Some(Some(until)))
    );
    assert_eq!(
        store
            .friend_setting(a, b, 1_000)
            .await
            .map(|g| g.map(|g| g.setting)),
        Ok(Some(None)),
        "an expired setting no longer applies"
    );
    assert_eq!(store.set_friend_setting(a, b, None).await, Ok(true));
    assert_eq!(store.grant(b, a).await, Ok(Some(Grant::default())));
    assert_eq!(store.set_friend_setting(a, b, Some(blur)).await, Ok(true));
    assert_eq!(store.remove(a, b).await, Ok(true));
    assert_eq!(store.request(a, b).await, Ok(RequestOutcome::Pending));
    assert_eq!(store.accept(b, a).await, Ok(true));
    assert_eq!(
        store.grant(b, a).await,
        Ok(Some(Grant::default())),
        "befriending again starts from the default"
    );
}

async fn sharing(store: &FriendStore, u: u64) {
    let (a, b) = (u + 1, u + 2);
    assert_eq!(store.sharing(a).await, Ok(Sharing::default()));
    let ghost_until = Sharing {
        enabled: false,
        until_ms: Some(5_000),
        precision: Precision::Approximate,
    };
    assert_eq!(store.set_sharing(a, ghost_until).await, Ok(()));
    assert_eq!(store.sharing(a).await, Ok(ghost_until));
    let mut sharing = store.sharing_now(&[a, b], 4_999).await.unwrap_or_default();
    assert_eq!(sharing.drain().collect::<Vec<_>>(), vec![b]);
    let mut sharing = store.sharing_now(&[a, b], 5_000).await.unwrap_or_default();
    let mut both: Vec<u64> = sharing.drain().collect();
    both.sort_unstable();
    assert_eq!(both, vec![a, b], "ghost mode ends at `until`");
    assert_eq!(store.seed(&[(a, b)]).await, Ok(1));
    assert_eq!(
        store.audience(b).await.map(|a| a.friends),
        Ok(vec![(
            a,
            Grant {
                sharing: ghost_until,
                setting: None
            }
        )])
    );
    assert_eq!(store.audience(a).await.map(|a| a.sharing), Ok(ghost_until));
    assert_eq!(store.set_sharing(a, Sharing::default()).await, Ok(()));
    assert_eq!(store.sharing(a).await, Ok(Sharing::default()));
}

async fn audience_log(store: &FriendStore, u: u64) {
    let (one, two, three) = (u + 1, u + 2, u + 3);
    assert_eq!(store.seed(&[(one, two)]).await, Ok(1));
    let head = store.log_head().await.unwrap_or(i64::MAX);
    let ghost = Sharing {
        enabled: false,
        ..Sharing::default()
    };
    assert_eq!(store.set_sharing(one, ghost).await, Ok(()));
    assert_eq!(store.request(three, one).await, Ok(RequestOutcome::Pending));
    assert_eq!(
        store.log_head().await,
        Ok(head + 1),
        "a request changes nobody's audience"
    );
    assert_eq!(store.accept(one, three).await, Ok(true));
    assert_eq!(store.remove(two, one).await, Ok(true));
    assert_eq!(store.remove(two, one).await, Ok(false));
    let page = store.log_after(head).await.unwrap_or_default();
    let users: Vec<u64> = page.entries.iter().map(|&(_, user)| user).collect();
    assert_eq!(users, vec![one, one, three, two, one]);
    assert!(page.complete);
    assert!(page.entries.windows(2).all(|w| w[0].0 < w[1].0));
    let head = store.log_head().await.unwrap_or(i64::MIN);
    assert_eq!(store.log_after(head).await.map(|p| p.entries), Ok(vec![]));
}

async fn seeding(store: &FriendStore, u: u64) {
    let (a, b, c) = (u + 1, u + 2, u + 3);
    assert_eq!(store.seed(&[(a, b), (b, a), (c, c)]).await, Ok(1));
    assert_eq!(store.friends(a).await, Ok(vec![b]));
    assert_eq!(store.remove(a, b).await, Ok(true));
    assert_eq!(store.seed(&[(b, a)]).await, Ok(0));
    assert_eq!(
        store.friends(a).await,
        Ok(vec![]),
        "a seeded pair ended through the API is never re-created"
    );
    assert_eq!(store.request(a, c).await, Ok(RequestOutcome::Pending));
    assert_eq!(store.accept(c, a).await, Ok(true));
    assert_eq!(
        store.seed(&[(a, c)]).await,
        Ok(0),
        "already friends: recorded, not counted"
    );
}
