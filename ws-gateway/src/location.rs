//! The domain type of a location: a checked position and the instant it was taken.
//!
//! Kept apart from [`crate::protocol`] (the wire format) so that the cache, the bus and the
//! history depend on what a location *is*, not on how a client sends it.

use geo_index::LatLng;

/// A location report, checked: the position is on Earth and the timestamp is plausible.
///
/// ```
/// use nearby_ws_gateway::protocol::{parse_client_message, ClientMessage};
/// let now = 1_700_000_000_000;
/// let parsed = parse_client_message(r#"{"type":"location","latitude":48.85,"longitude":2.35}"#, now);
/// let Ok(ClientMessage::Location(fix)) = parsed else { panic!("valid") };
/// assert_eq!(fix.timestamp_ms, now);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fix {
    /// Where.
    pub position: LatLng,
    /// When, Unix milliseconds: the client's if it gave a plausible one, else the server's.
    pub timestamp_ms: i64,
}
