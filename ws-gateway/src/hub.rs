//! The node's local fan-out: which sessions listen to which topic, and each session's mailbox.
//!
//! The bus delivers each topic to a node once; the hub hands the event to every local session
//! subscribed to it. A mailbox keeps at most one pending event per friend (the latest wins), a
//! "reload" flag and the set of friends whose grant must be re-read, so a session that cannot
//! keep up coalesces instead of queueing: its memory is bounded by its number of friends
//! however fast they move.
//!
//! Control topics carry only hints (`Changed`): the hub turns them into a wake-up of the
//! audience watcher ([`crate::audience`]), which reads the durable log and marks the sessions
//! concerned through [`Hub::audience_changed`]. A lost hint delays a change by at most a poll
//! interval; it never loses it.

use crate::event::{Event, Topic};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Lock shards of the subscription table: dispatch and (un)subscribe from many sessions at once
/// rarely meet on one lock.
const SHARDS: usize = 32;

/// A session's inbox.
pub struct Mailbox {
    session: u64,
    pending: Mutex<Pending>,
    notify: Notify,
}

/// What a session has not yet handled.
#[derive(Default)]
pub struct Pending {
    /// Latest location event per friend (location or gone).
    pub events: HashMap<u64, Event>,
    /// The session's own friendships or sharing changed: reload them.
    pub reload: bool,
    /// Friends whose friendships or sharing changed: re-read what they grant this session's
    /// user before showing them again.
    pub recheck: HashSet<u64>,
}

impl Mailbox {
    /// The session this mailbox belongs to.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Waits until something is pending (returns at once if something arrived since the last
    /// [`Mailbox::take`]).
    pub async fn wait(&self) {
        self.notify.notified().await;
    }

    /// Takes everything pending.
    pub fn take(&self) -> Pending {
        std::mem::take(&mut *lock(&self.pending))
    }

    /// Delivers a location event of `user`; returns true if it replaced one not yet handled.
    fn offer(&self, user: u64, event: Event) -> bool {
        let replaced = lock(&self.pending).events.insert(user, event).is_some();
        self.notify.notify_one();
        replaced
    }

    /// Asks the session to reload its own friendships and sharing.
    pub fn request_reload(&self) {
        lock(&self.pending).reload = true;
        self.notify.notify_one();
    }

    /// Asks the session to re-read what `friend` grants it.
    fn request_recheck(&self, friend: u64) {
        lock(&self.pending).recheck.insert(friend);
        self.notify.notify_one();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a few map operations that cannot leave the data
    // inconsistent; keep serving after a panic elsewhere.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

type Table = HashMap<Topic, Vec<Arc<Mailbox>>>;

/// Outcome of a dispatch, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dispatched {
    /// Mailboxes the event reached.
    pub delivered: usize,
    /// Of those, how many replaced a pending event (coalesced).
    pub coalesced: usize,
}

/// The subscription table.
///
/// ```
/// use nearby_ws_gateway::{event::{Event, Topic}, hub::Hub};
/// let hub = Hub::default();
/// let mailbox = hub.mailbox();
/// assert!(hub.subscribe(Topic::Location(7), &mailbox)); // first local subscriber
/// assert_eq!(hub.dispatch(Topic::Location(7), Event::Gone).delivered, 1);
/// assert_eq!(mailbox.take().events.get(&7), Some(&Event::Gone));
/// assert!(hub.unsubscribe(Topic::Location(7), &mailbox)); // last one gone
/// ```
pub struct Hub {
    shards: Box<[Mutex<Table>]>,
    next_session: AtomicU64,
    /// Woken by a `Changed` hint from the bus: the audience watcher reads the log at once.
    control_hint: Arc<Notify>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Table::new())).collect(),
            next_session: AtomicU64::new(1),
            control_hint: Arc::new(Notify::new()),
        }
    }
}

impl Hub {
    fn shard(&self, topic: Topic) -> MutexGuard<'_, Table> {
        // Fibonacci hashing spreads consecutive user ids over the shards.
        let mixed = topic.user().wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let index = (mixed >> 59) as usize % self.shards.len();
        lock(&self.shards[index])
    }

    /// A new mailbox with a fresh session id.
    pub fn mailbox(&self) -> Arc<Mailbox> {
        Arc::new(Mailbox {
            session: self.next_session.fetch_add(1, Ordering::Relaxed),
            pending: Mutex::new(Pending::default()),
            notify: Notify::new(),
        })
    }

    /// Adds `mailbox` to `topic`; true if it is the topic's first local subscriber (the bus
    /// must then subscribe the node).
    pub fn subscribe(&self, topic: Topic, mailbox: &Arc<Mailbox>) -> bool {
        let mut table = self.shard(topic);
        let subscribers = table.entry(topic).or_default();
        if subscribers.iter().any(|m| m.session == mailbox.session) {
            return false;
        }
        subscribers.push(Arc::clone(mailbox));
        subscribers.len() == 1
    }

    /// Removes `mailbox` from `topic`; true if no local subscriber is left (the bus may then
    /// unsubscribe the node).
    pub fn unsubscribe(&self, topic: Topic, mailbox: &Mailbox) -> bool {
        let mut table = self.shard(topic);
        let Some(subscribers) = table.get_mut(&topic) else {
            return false;
        };
        let before = subscribers.len();
        subscribers.retain(|m| m.session != mailbox.session);
        if subscribers.is_empty() {
            table.remove(&topic);
            return before > 0;
        }
        false
    }

    /// Whether any local session listens to `topic`.
    pub fn has_subscribers(&self, topic: Topic) -> bool {
        self.shard(topic).contains_key(&topic)
    }

    /// Every topic with a local subscriber (for resubscribing from scratch).
    pub fn topics(&self) -> Vec<Topic> {
        let mut topics = Vec::new();
        for shard in &self.shards {
            topics.extend(lock(shard).keys().copied());
        }
        topics
    }

    /// Hands `event` to every local subscriber of `topic`. A control topic's event is a hint
    /// for the audience watcher, which it wakes (sessions learn changes from the log).
    pub fn dispatch(&self, topic: Topic, event: Event) -> Dispatched {
        let Topic::Location(user) = topic else {
            self.control_hint.notify_one();
            return Dispatched::default();
        };
        let table = self.shard(topic);
        let mut outcome = Dispatched::default();
        if let Some(subscribers) = table.get(&topic) {
            for mailbox in subscribers {
                outcome.delivered += 1;
                if mailbox.offer(user, event) {
                    outcome.coalesced += 1;
                }
            }
        }
        outcome
    }

    /// What the audience watcher waits on besides its poll interval.
    pub fn control_hint(&self) -> Arc<Notify> {
        Arc::clone(&self.control_hint)
    }

    /// `user`'s friendships or sharing changed: their own sessions here reload, and sessions
    /// watching them re-read what `user` grants them.
    ///
    /// ```
    /// use nearby_ws_gateway::{event::Topic, hub::Hub};
    /// let hub = Hub::default();
    /// let (own, viewer) = (hub.mailbox(), hub.mailbox());
    /// hub.subscribe(Topic::Control(7), &own);
    /// hub.subscribe(Topic::Location(7), &viewer);
    /// hub.audience_changed(7);
    /// assert!(own.take().reload);
    /// assert!(viewer.take().recheck.contains(&7));
    /// ```
    pub fn audience_changed(&self, user: u64) {
        if let Some(own) = self.shard(Topic::Control(user)).get(&Topic::Control(user)) {
            own.iter().for_each(|mailbox| mailbox.request_reload());
        }
        if let Some(viewers) = self
            .shard(Topic::Location(user))
            .get(&Topic::Location(user))
        {
            viewers
                .iter()
                .for_each(|mailbox| mailbox.request_recheck(user));
        }
    }

    /// Every session here reloads its friendships and sharing (after the node may have
    /// missed changes).
    pub fn reload_all(&self) {
        for shard in &self.shards {
            for (topic, mailboxes) in lock(shard).iter() {
                if let Topic::Control(_) = topic {
                    mailboxes
                        .iter()
                        .for_each(|mailbox| mailbox.request_reload());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_event_per_friend_wins() {
        let hub = Hub::default();
        let mailbox = hub.mailbox();
        hub.subscribe(Topic::Location(1), &mailbox);
        hub.subscribe(Topic::Control(9), &mailbox);
        assert_eq!(hub.dispatch(Topic::Location(1), Event::Gone).coalesced, 0);
        assert_eq!(
            hub.dispatch(Topic::Location(1), Event::Changed).coalesced,
            1
        );
        // A control hint wakes the audience watcher, not the session.
        assert_eq!(hub.dispatch(Topic::Control(9), Event::Changed).delivered, 0);
        let pending = mailbox.take();
        assert_eq!(pending.events.len(), 1);
        assert_eq!(pending.events.get(&1), Some(&Event::Changed));
        assert!(!pending.reload);
        assert!(mailbox.take().events.is_empty());
    }

    #[test]
    fn subscriber_counting_per_topic() {
        let hub = Hub::default();
        let (a, b) = (hub.mailbox(), hub.mailbox());
        assert!(hub.subscribe(Topic::Location(5), &a));
        assert!(!hub.subscribe(Topic::Location(5), &b));
        assert!(!hub.subscribe(Topic::Location(5), &b));
        assert!(!hub.unsubscribe(Topic::Location(5), &a));
        assert!(hub.has_subscribers(Topic::Location(5)));
        assert!(hub.unsubscribe(Topic::Location(5), &b));
        assert!(!hub.has_subscribers(Topic::Location(5)));
        assert!(!hub.unsubscribe(Topic::Location(5), &b));
        assert_eq!(hub.dispatch(Topic::Location(5), Event::Gone).delivered, 0);
    }
}
