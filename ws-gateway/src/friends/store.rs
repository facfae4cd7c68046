//! The narrow storage trait the friendship rules are written against.
//!
//! A backend offers one [`FriendTx`] per change: the primitive reads and writes the rules in
//! [`super::rules`] need, all inside one atomic unit (PostgreSQL: a transaction holding the
//! two users' advisory locks; memory: the store's mutex). The rules decide — consent, limits,
//! what a removal clears, what is logged — and the backend only stores.

use super::{FriendError, FriendSetting, Sharing};
use std::future::Future;

/// One atomic change on a backend, as the rules see it.
///
/// Every check comes before the first write in every rule, so a refusal leaves nothing
/// behind even on a backend that cannot roll back (memory); PostgreSQL rolls back anyway.
/// Writes are idempotent: adding what exists or dropping what does not is not an error.
pub trait FriendTx: Send {
    /// Whether `a` and `b` are friends.
    fn are_friends(
        &mut self,
        a: u64,
        b: u64,
    ) -> impl Future<Output = Result<bool, FriendError>> + Send;

    /// Whether `from` has a pending request to `to`.
    fn has_request(
        &mut self,
        from: u64,
        to: u64,
    ) -> impl Future<Output = Result<bool, FriendError>> + Send;

    /// How many friends `user` has.
    fn friend_count(
        &mut self,
        user: u64,
    ) -> impl Future<Output = Result<usize, FriendError>> + Send;

    /// How many requests `user` has pending.
    fn outgoing_requests(
        &mut self,
        user: u64,
    ) -> impl Future<Output = Result<usize, FriendError>> + Send;

    /// Records a pending request from `from` to `to`.
    fn add_request(
        &mut self,
        from: u64,
        to: u64,
    ) -> impl Future<Output = Result<(), FriendError>> + Send;

    /// Drops the requests between `a` and `b`, either way; true if there was one.
    fn drop_requests(
        &mut self,
        a: u64,
        b: u64,
    ) -> impl Future<Output = Result<bool, FriendError>> + Send;

    /// Makes `a` and `b` friends (both directions); true if they were not.
    fn add_friendship(
        &mut self,
        a: u64,
        b: u64,
    ) -> impl Future<Output = Result<bool, FriendError>> + Send;

    /// Ends the friendship of `a` and `b` (both directions); true if there was one.
    fn drop_friendship(
        &mut self,
        a: u64,
        b: u64,
    ) -> impl Future<Output = Result<bool, FriendError>> + Send;

    /// Sets (or with `None` clears) what `user` lets `friend` see.
    fn put_setting(
        &mut self,
        user: u64,
        friend: u64,
        setting: Option<FriendSetting>,
    ) -> impl Future<Output = Result<(), FriendError>> + Send;

    /// Sets the sharing of `user` (the default is stored as no entry at all).
    fn put_sharing(
        &mut self,
        user: u64,
        sharing: Sharing,
    ) -> impl Future<Output = Result<(), FriendError>> + Send;

    /// Appends `users` to the audience log, in commit order (PostgreSQL writes it last,
    /// right before the commit, so its lock is held briefly).
    fn log(&mut self, users: &[u64]) -> impl Future<Output = Result<(), FriendError>> + Send;
}
