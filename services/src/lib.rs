//! The Nearby service: proximity search over businesses and nearby friends, served over HTTP.
//!
//! `nearby serve` answers `GET /v1/search/nearby` from an in-memory geo index (see the
//! `geo-index` crate) and keeps business records, in memory by default or in PostgreSQL +
//! PostGIS given a database URL. Distances are great-circle metres on a sphere of radius
//! 6,371,008.8 m.
//!
//! # Layout
//!
//! - [`app`]: the composition root: [`app::Settings`] (the `serve` flags, checked as parsed),
//!   [`app::Config`] (what they mean), [`app::App::from_config`] (everything wired), used by
//!   the binary and the integration tests alike.
//! - [`server`]: [`server::run`] serves the API on a listener until a shutdown future
//!   resolves, so tests drive the real server; the binary only parses flags.
//! - [`api`]: [`api::app`] builds the router; one module per concern, one error type
//!   ([`api::ApiError`]) rendered as `{"error":{"code","message","field"?}}`.
//! - [`state`]: [`state::AppState`], and the write path that commits to the store and then
//!   applies to the catalog.
//! - [`catalog`]: [`catalog::Catalog`], every business with its geo index, and keyset-paged
//!   search with ties broken by business id.
//! - [`business`]: checked types ([`business::BusinessId`], [`business::Name`],
//!   [`business::Category`]): invalid values are refused at the boundary.
//! - [`store`]: where writes become durable.
//! - [`places_file`]: CSV and GeoJSON place files, and the bundled GeoNames places.
//! - [`auth`]: HMAC-signed bearer tokens and the development secret file.
//! - [`cursor`]: opaque paging cursors bound to their query.
//! - [`metrics`]: the Prometheus registry behind `/metrics`.
//! - [`friends_file`]: the `--friends` seed file of mutual friendships.
//!
//! The nearby-friends gateway (WebSocket `/v1/ws` and `/v1/me/...`) lives in the
//! `nearby-ws-gateway` crate; [`state::AppState::attach_gateway`] mounts it on the same router.

pub mod api;
pub mod app;
pub mod auth;
pub mod business;
pub mod catalog;
pub mod cursor;
pub mod friends_file;
pub mod metrics;
pub mod places_file;
pub mod server;
pub mod state;
pub mod store;
