//! The friendship rules, written once for every backend: consent, the limits, what ending a
//! friendship clears, and which users each change appends to the audience log.
//!
//! Each rule runs inside one [`FriendTx`] and does all its checks before its first write.

use super::{FriendError, FriendSetting, FriendTx, Limit, RequestOutcome, Sharing};
use super::{MAX_FRIENDS, MAX_PENDING_REQUESTS};

/// `from` asks `to` (not themselves: checked before). A request the other way makes them
/// friends at once; asking twice is still one request.
pub(crate) async fn request<T: FriendTx>(
    tx: &mut T,
    from: u64,
    to: u64,
) -> Result<RequestOutcome, FriendError> {
    if tx.are_friends(from, to).await? {
        return Ok(RequestOutcome::AlreadyFriends);
    }
    if tx.has_request(to, from).await? {
        befriend(tx, from, to).await?;
        return Ok(RequestOutcome::Friends);
    }
    if tx.has_request(from, to).await? {
        return Ok(RequestOutcome::Pending);
    }
    if tx.outgoing_requests(from).await? >= MAX_PENDING_REQUESTS {
        return Err(FriendError::LimitReached(Limit::PendingRequests));
    }
    tx.add_request(from, to).await?;
    Ok(RequestOutcome::Pending)
}

/// `user` accepts the request of `from`; false if there is none.
pub(crate) async fn accept<T: FriendTx>(
    tx: &mut T,
    user: u64,
    from: u64,
) -> Result<bool, FriendError> {
    if !tx.has_request(from, user).await? {
        return Ok(false);
    }
    befriend(tx, user, from).await?;
    Ok(true)
}

/// Makes `a` and `b` friends if neither is at [`MAX_FRIENDS`]; their requests are settled.
async fn befriend<T: FriendTx>(tx: &mut T, a: u64, b: u64) -> Result<(), FriendError> {
    for user in [a, b] {
        if tx.friend_count(user).await? >= MAX_FRIENDS {
            return Err(FriendError::LimitReached(Limit::Friends));
        }
    }
    tx.drop_requests(a, b).await?;
    if tx.add_friendship(a, b).await? {
        tx.log(&[a, b]).await?;
    }
    Ok(())
}

/// Ends the friendship and any request between the two, either way; false if there was
/// nothing to end. Befriending again starts from the defaults (per-friend settings go).
pub(crate) async fn remove<T: FriendTx>(
    tx: &mut T,
    user: u64,
    other: u64,
) -> Result<bool, FriendError> {
    let requests = tx.drop_requests(user, other).await?;
    let ended = tx.drop_friendship(user, other).await?;
    if ended {
        tx.put_setting(user, other, None).await?;
        tx.put_setting(other, user, None).await?;
        tx.log(&[user, other]).await?;
    }
    Ok(requests || ended)
}

/// Sets the sharing of `user`; everyone who may see them re-reads it.
pub(crate) async fn set_sharing<T: FriendTx>(
    tx: &mut T,
    user: u64,
    sharing: Sharing,
) -> Result<(), FriendError> {
    tx.put_sharing(user, sharing).await?;
    tx.log(&[user]).await
}

/// Sets what `user` lets `friend` see; false (nothing changed) when they are not friends.
pub(crate) async fn set_friend_setting<T: FriendTx>(
    tx: &mut T,
    user: u64,
    friend: u64,
    setting: Option<FriendSetting>,
) -> Result<bool, FriendError> {
    if !tx.are_friends(user, friend).await? {
        return Ok(false);
    }
    tx.put_setting(user, friend, setting).await?;
    tx.log(&[user]).await?;
    Ok(true)
}

/// Runs a rule on a backend whose transaction never waits (memory: every step is done under
/// its mutex, synchronously), without an `.await` — so no lock is ever held across one.
pub(crate) fn run_now<F: std::future::Future>(rule: F) -> F::Output {
    use futures_util::FutureExt;
    match rule.now_or_never() {
        Some(output) => output,
        // A memory transaction's steps are plain function bodies: they never return Pending.
        None => unreachable!("a synchronous transaction suspended"),
    }
}
