//! Nearby friends: apps hold a WebSocket, send their location every few seconds, and are
//! pushed the live location of each friend within a radius (five miles by default).
//!
//! Only mutual friends who share see each other: friendship needs consent (a request and
//! its acceptance) and either side can end it; sharing can be turned off ("ghost mode"),
//! optionally until a time. Distances are great-circle metres on the sphere of radius
//! 6,371,008.8 m that Places uses.
//!
//! # Layout
//!
//! - [`api`]: [`api::router`], the WebSocket upgrade at `/v1/ws` (token in the
//!   `Authorization` header or `?token=`) and the `/v1/me` friendship and sharing endpoints.
//! - [`http`]: [`http::ApiError`], the JSON error body of every HTTP failure (the service's
//!   and the gateway's), and the one `Authorization: Bearer` parser.
//! - [`session`]: one connection: a thin transport (the select loop, written against
//!   `Stream`/`Sink` so tests can drive it) around pure decisions taking the time as an
//!   argument — who may see what (`session/visibility.rs`), the frame limits
//!   (`session/rate.rs`), every close code and reason (`session/close.rs`).
//! - [`protocol`]: the JSON messages, parsed into checked values.
//! - [`location`]: [`location::Fix`], a checked position and its time (the domain type the
//!   cache, the bus and the history share).
//! - [`gateway`]: [`Gateway`], the configuration and the shared parts, and what the HTTP
//!   handlers call when friendships or sharing change.
//! - [`hub`]: the node's local fan-out from topics to session mailboxes (coalescing per
//!   friend, so a slow client costs bounded memory).
//! - [`bus`]: publish/subscribe between nodes: in process, or Redis pub/sub (one
//!   subscription per channel per node, RESP3 pushes through a bounded channel).
//! - [`event`]: topics and the compact payloads on the bus.
//! - [`redis_link`]: one connection type for a Redis server or a Redis Cluster.
//! - [`cache`]: each user's latest location with a TTL, in memory or in Redis.
//! - [`friends`]: friendships, requests and sharing — the rules once, over a narrow storage
//!   trait with a memory and a PostgreSQL backend — and the audience log every change
//!   appends to.
//! - [`audience`]: the watcher that follows the audience log on every node, so a revocation
//!   holds within about a second even when the pub/sub message announcing it is lost (fail
//!   closed while the log cannot be read).
//! - [`approximate`]: what an approximate viewer sees — the centre of the H3 resolution-7
//!   cell, switched only 300 m inside a new cell.
//! - [`users`]: per-user limits across a user's sessions (at most 5 sessions, connection and
//!   location rates, plausible movement).
//! - [`history`]: location history appended to PostgreSQL in batches through a bounded queue.
//! - [`membership`]: which gateway nodes are alive (heartbeat keys in Redis) and which one
//!   owns each user; [`ring`]: the rendezvous hashing that decides it.
//! - [`metrics`]: Prometheus counters appended to the service's `/metrics`.
//! - [`clock`]: Unix milliseconds and RFC 3339; [`clock::Clock`], where a session reads the
//!   time.
//! - [`retry`]: the one retry backoff (exponential with jitter, `backon`).

pub mod api;
pub mod approximate;
pub mod audience;
pub mod bus;
pub mod cache;
pub mod clock;
pub mod event;
pub mod friends;
pub mod gateway;
pub mod history;
pub mod http;
pub mod hub;
pub mod location;
pub mod membership;
pub mod metrics;
pub mod protocol;
pub mod redis_link;
pub mod retry;
pub mod ring;
pub mod session;
pub mod users;

/// The PostgreSQL friends backend under its former path (`friends_pg::PgFriends`), for
/// callers written before `friends/` held it.
#[doc(hidden)]
pub use friends::postgres as friends_pg;

pub use gateway::{Authenticator, Backend, DEFAULT_RADIUS_M, Gateway, GatewayConfig};
