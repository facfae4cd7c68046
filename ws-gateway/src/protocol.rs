//! The WebSocket protocol: JSON text frames, parsed into checked values and rendered from them.
//!
//! Client to server: `{"type":"location","latitude":..,"longitude":..,"timestamp":ms?}`.
//! Server to client: `nearby_friends` (the snapshot), `friend_location`, `friend_gone`, `error`.

use geo_index::LatLng;
use serde::{Deserialize, Serialize};

/// Close code for a policy violation: a flood past the frame rate limit.
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;
/// Close code for a frame or message over the size limit.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a text frame that is not valid UTF-8.
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Close code for a WebSocket protocol violation (for instance an unmasked client frame).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code for a client that stopped reading (its pushes could not be written in time) or
/// stopped answering pings.
pub const CLOSE_UNRESPONSIVE: u16 = 1001;
/// Close code when the server shuts down and no other node can take the session.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code when the node drains (SIGTERM) and other nodes remain: the reason is the
/// WebSocket URL of the user's next owner; reconnect there.
pub const CLOSE_SERVICE_RESTART: u16 = 1012;
/// Close code when another node now owns the user (the membership changed): the reason is
/// that node's WebSocket URL; reconnect there.
pub const CLOSE_MOVED: u16 = 4001;
/// Close code when the user opened a newer session past the per-user limit (5 by default):
/// the oldest session is closed, the newest device wins. Do not reconnect automatically.
pub const CLOSE_REPLACED: u16 = 4002;

/// How far a client timestamp may run ahead of the server clock, in milliseconds.
pub const MAX_FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;
/// How old a client timestamp may be, in milliseconds.
pub const MAX_PAST_SKEW_MS: i64 = 60 * 60 * 1000;

/// The location type, defined in [`crate::location`]; re-exported here because it is what a
/// `location` message parses into.
pub use crate::location::Fix;

/// A message from the client.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum ClientMessage {
    /// The client's current location.
    Location(Fix),
}

/// Why a client message was refused; the session stays open.
///
/// ```
/// use nearby_ws_gateway::protocol::parse_client_message;
/// let err = parse_client_message(r#"{"type":"location","latitude":91,"longitude":0}"#, 0).unwrap_err();
/// assert_eq!(err.code, "invalid_field");
/// assert_eq!(err.field, Some("latitude"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageError {
    /// Stable machine-readable code: `malformed`, `unknown_type`, `missing_field`,
    /// `invalid_field`, `rate_limited`, `unsupported_frame`, `implausible_movement` (a
    /// location too far from the last accepted one for the time elapsed) or `unavailable`
    /// (the location could not be shared, or friends' locations cannot be read right now).
    pub code: &'static str,
    /// Explanation for a person.
    pub message: String,
    /// The field at fault, when there is one.
    pub field: Option<&'static str>,
}

impl MessageError {
    /// An error with no field.
    ///
    /// ```
    /// let err = nearby_ws_gateway::protocol::MessageError::new("rate_limited", "slow down");
    /// assert_eq!(err.field, None);
    /// ```
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
        }
    }

    fn field(code: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: Some(field),
        }
    }
}

/// The wire shape before checking: every field optional so that a missing one gets its own
/// error rather than a generic parse failure.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    timestamp: Option<i64>,
}

/// Parses and checks one text frame. `now_ms` is the server clock, Unix milliseconds.
///
/// # Errors
/// A [`MessageError`] saying what is wrong, for the client.
///
/// ```
/// use nearby_ws_gateway::protocol::parse_client_message;
/// assert_eq!(parse_client_message("{", 0).unwrap_err().code, "malformed");
/// assert_eq!(parse_client_message(r#"{"type":"dance"}"#, 0).unwrap_err().code, "unknown_type");
/// assert_eq!(parse_client_message(r#"{"type":"location","latitude":1}"#, 0).unwrap_err().code, "missing_field");
/// ```
pub fn parse_client_message(text: &str, now_ms: i64) -> Result<ClientMessage, MessageError> {
    let envelope: Envelope<'_> = serde_json::from_str(text)
        .map_err(|err| MessageError::new("malformed", format!("not a valid message: {err}")))?;
    let kind = envelope
        .kind
        .ok_or_else(|| MessageError::field("missing_field", "type", "`type` is required"))?;
    match kind.as_ref() {
        "location" => {
            let latitude = envelope.latitude.ok_or_else(|| {
                MessageError::field("missing_field", "latitude", "`latitude` is required")
            })?;
            let longitude = envelope.longitude.ok_or_else(|| {
                MessageError::field("missing_field", "longitude", "`longitude` is required")
            })?;
            if !(-90.0..=90.0).contains(&latitude) {
                return Err(MessageError::field(
                    "invalid_field",
                    "latitude",
                    "`latitude` must be within [-90, 90]",
                ));
            }
            if !(-180.0..=180.0).contains(&longitude) {
                return Err(MessageError::field(
                    "invalid_field",
                    "longitude",
                    "`longitude` must be within [-180, 180]",
                ));
            }
            let position = LatLng::new(latitude, longitude)
                .map_err(|err| MessageError::field("invalid_field", "latitude", err.to_string()))?;
            let timestamp_ms = match envelope.timestamp {
                None => now_ms,
                Some(ts)
                    if ts <= now_ms.saturating_add(MAX_FUTURE_SKEW_MS)
                        && ts >= now_ms.saturating_sub(MAX_PAST_SKEW_MS) =>
                {
                    ts
                }
                Some(_) => {
                    return Err(MessageError::field(
                        "invalid_field",
                        "timestamp",
                        "`timestamp` (Unix milliseconds) is more than 5 minutes ahead of or an \
                         hour behind the server clock",
                    ));
                }
            };
            Ok(ClientMessage::Location(Fix {
                position,
                timestamp_ms,
            }))
        }
        other => {
            let shown: String = other.chars().take(32).collect();
            Err(MessageError::field(
                "unknown_type",
                "type",
                format!("unknown message type {shown:?}; expected \"location\""),
            ))
        }
    }
}

/// A friend as shown to the client.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FriendView {
    /// The friend's user id.
    pub user_id: u64,
    /// Latitude, degrees.
    pub latitude: f64,
    /// Longitude, degrees.
    pub longitude: f64,
    /// Great-circle distance from the client's last location, metres (0.1 m resolution).
    pub distance_m: f64,
    /// When the friend was there, Unix milliseconds.
    pub timestamp: i64,
    /// `exact`, or `approximate`: the position is the centre of the cell that holds the
    /// friend, never their coordinates.
    pub precision: &'static str,
    /// For an approximate position: the largest distance the friend may be from it, metres.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy_m: Option<f64>,
}

/// A message to the client.
///
/// ```
/// use nearby_ws_gateway::protocol::ServerMessage;
/// let text = ServerMessage::FriendGone { user_id: 7 }.to_json();
/// assert_eq!(text, r#"{"type":"friend_gone","user_id":7}"#);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerMessage {
    /// The snapshot, in answer to the session's first location: friends within the radius,
    /// nearest first.
    NearbyFriends {
        /// The friends.
        friends: Vec<FriendView>,
    },
    /// A friend within the radius moved, or came within it.
    FriendLocation(FriendView),
    /// A friend that was shown is no longer.
    FriendGone {
        /// The friend's user id.
        user_id: u64,
    },
    /// A message was refused.
    Error {
        /// Machine-readable code.
        code: &'static str,
        /// Explanation for a person.
        message: String,
        /// The field at fault.
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<&'static str>,
    },
}

impl ServerMessage {
    /// The JSON text frame.
    ///
    /// ```
    /// use nearby_ws_gateway::protocol::ServerMessage;
    /// let text = ServerMessage::NearbyFriends { friends: vec![] }.to_json();
    /// assert_eq!(text, r#"{"type":"nearby_friends","friends":[]}"#);
    /// ```
    pub fn to_json(&self) -> String {
        // Serialising plain structs of numbers and strings into a String cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

impl From<MessageError> for ServerMessage {
    fn from(err: MessageError) -> Self {
        ServerMessage::Error {
            code: err.code,
            message: err.message,
            field: err.field,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_with_and_without_timestamp() {
        let now = 1_800_000_000_000;
        let with = format!(
            r#"{{"type":"location","latitude":-33.9,"longitude":151.2,"timestamp":{}}}"#,
            now - 1_000
        );
        let Ok(ClientMessage::Location(fix)) = parse_client_message(&with, now) else {
            panic!("valid message refused");
        };
        assert_eq!(fix.timestamp_ms, now - 1_000);
        assert_eq!(fix.position.lat(), -33.9);
    }

    #[test]
    fn refusals_name_the_field() {
        let now = 1_800_000_000_000;
        for (text, code, field) in [
            ("[]", "malformed", None),
            (
                r#"{"type":"location","latitude":"x","longitude":0}"#,
                "malformed",
                None,
            ),
            (
                r#"{"latitude":1,"longitude":2}"#,
                "missing_field",
                Some("type"),
            ),
            (
                r#"{"type":"location","longitude":2}"#,
                "missing_field",
                Some("latitude"),
            ),
            (
                r#"{"type":"location","latitude":1,"longitude":181}"#,
                "invalid_field",
                Some("longitude"),
            ),
            (
                r#"{"type":"location","latitude":1,"longitude":1,"timestamp":0}"#,
                "invalid_field",
                Some("timestamp"),
            ),
            (r#"{"type":"subscribe"}"#, "unknown_type", Some("type")),
        ] {
            let err = parse_client_message(text, now).expect_err(text);
            assert_eq!((err.code, err.field), (code, field), "{text}");
        }
    }

    #[test]
    fn friend_location_is_flat() {
        let text = ServerMessage::FriendLocation(FriendView {
            user_id: 2,
            latitude: 1.5,
            longitude: -2.5,
            distance_m: 10.0,
            timestamp: 3,
            precision: "exact",
            accuracy_m: None,
        })
        .to_json();
        assert_eq!(
            text,
            r#"{"type":"friend_location","user_id":2,"latitude":1.5,"longitude":-2.5,"distance_m":10.0,"timestamp":3,"precision":"exact"}"#
        );
    }
}
