//! What travels on the bus: topics (one location channel and one control channel per user)
//! and their compact binary payloads.
//!
//! A location payload is 25 bytes (`1`, latitude and longitude as little-endian `f64`, the
//! timestamp as little-endian `i64`) rather than JSON: the bus carries every update to every
//! node that has a friend of its sender, so its size is paid many times over.

use crate::location::Fix;
use geo_index::LatLng;

/// A bus channel.
///
/// The user id is a Redis Cluster hash tag (`{42}`): a user's channels and cached location
/// (`nearby:last:{42}`) map to one slot, so one shard serves all of a user's traffic.
///
/// ```
/// use nearby_ws_gateway::event::Topic;
/// assert_eq!(Topic::Location(42).channel(), "nearby:loc:{42}");
/// assert_eq!(Topic::parse_channel(b"nearby:ctl:{7}"), Some(Topic::Control(7)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// A user's location updates, read by the sessions of their friends.
    Location(u64),
    /// Changes to a user's friendships or sharing, read by that user's own sessions.
    Control(u64),
}

const LOCATION_PREFIX: &str = "nearby:loc:";
const CONTROL_PREFIX: &str = "nearby:ctl:";

impl Topic {
    /// The user the topic belongs to.
    ///
    /// ```
    /// # use nearby_ws_gateway::event::Topic;
    /// assert_eq!(Topic::Control(3).user(), 3);
    /// ```
    pub fn user(self) -> u64 {
        match self {
            Topic::Location(user) | Topic::Control(user) => user,
        }
    }

    /// The Redis channel name.
    ///
    /// ```
    /// # use nearby_ws_gateway::event::Topic;
    /// assert_eq!(Topic::Control(3).channel(), "nearby:ctl:{3}");
    /// ```
    pub fn channel(self) -> String {
        match self {
            Topic::Location(user) => format!("{LOCATION_PREFIX}{{{user}}}"),
            Topic::Control(user) => format!("{CONTROL_PREFIX}{{{user}}}"),
        }
    }

    /// The topic of a Redis channel name, if it is one of ours.
    ///
    /// ```
    /// # use nearby_ws_gateway::event::Topic;
    /// assert_eq!(Topic::parse_channel(b"nearby:loc:{18446744073709551615}"), Some(Topic::Location(u64::MAX)));
    /// assert_eq!(Topic::parse_channel(b"nearby:loc:{-1}"), None);
    /// assert_eq!(Topic::parse_channel(b"nearby:loc:1"), None);
    /// ```
    pub fn parse_channel(channel: &[u8]) -> Option<Topic> {
        let text = std::str::from_utf8(channel).ok()?;
        let tagged =
            |rest: &str| -> Option<u64> { rest.strip_prefix('{')?.strip_suffix('}')?.parse().ok() };
        if let Some(rest) = text.strip_prefix(LOCATION_PREFIX) {
            return tagged(rest).map(Topic::Location);
        }
        if let Some(rest) = text.strip_prefix(CONTROL_PREFIX) {
            return tagged(rest).map(Topic::Control);
        }
        None
    }
}

/// Something that happened to a user, as published on their topics.
///
/// ```
/// use nearby_ws_gateway::event::Event;
/// let bytes = Event::Gone.encode();
/// assert_eq!(Event::decode(&bytes), Some(Event::Gone));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    /// (Location topic) the user is here.
    Location(Fix),
    /// (Location topic) the user disconnected or stopped sharing: hide them.
    Gone,
    /// (Control topic) the user's friendships or sharing changed: reload them.
    Changed,
}

const TAG_LOCATION: u8 = 1;
const TAG_GONE: u8 = 2;
const TAG_CHANGED: u8 = 3;

impl Event {
    /// The payload bytes.
    ///
    /// ```
    /// use geo_index::LatLng;
    /// use nearby_ws_gateway::{event::Event, location::Fix};
    /// let fix = Fix { position: LatLng::new(1.0, 2.0)?, timestamp_ms: 3 };
    /// assert_eq!(Event::Location(fix).encode().len(), 25);
    /// # Ok::<(), geo_index::Error>(())
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Event::Location(fix) => {
                let mut bytes = Vec::with_capacity(25);
                bytes.push(TAG_LOCATION);
                bytes.extend_from_slice(&fix.position.lat().to_le_bytes());
                bytes.extend_from_slice(&fix.position.lng().to_le_bytes());
                bytes.extend_from_slice(&fix.timestamp_ms.to_le_bytes());
                bytes
            }
            Event::Gone => vec![TAG_GONE],
            Event::Changed => vec![TAG_CHANGED],
        }
    }

    /// Decodes a payload; `None` for anything that is not exactly a valid encoding (another
    /// publisher on the same Redis must not be able to inject an invalid coordinate).
    ///
    /// ```
    /// use nearby_ws_gateway::event::Event;
    /// assert_eq!(Event::decode(&[9]), None);
    /// assert_eq!(Event::decode(&[]), None);
    /// ```
    pub fn decode(bytes: &[u8]) -> Option<Event> {
        match bytes {
            [TAG_GONE] => Some(Event::Gone),
            [TAG_CHANGED] => Some(Event::Changed),
            [TAG_LOCATION, rest @ ..] if rest.len() == 24 => {
                let lat = f64::from_le_bytes(rest[0..8].try_into().ok()?);
                let lng = f64::from_le_bytes(rest[8..16].try_into().ok()?);
                let timestamp_ms = i64::from_le_bytes(rest[16..24].try_into().ok()?);
                let position = LatLng::new(lat, lng).ok()?;
                Some(Event::Location(Fix {
                    position,
                    timestamp_ms,
                }))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_round_trips_exactly() {
        let fix = Fix {
            position: LatLng::new(-89.999_999_9, 179.999_999_9).expect("valid"),
            timestamp_ms: -5,
        };
        assert_eq!(
            Event::decode(&Event::Location(fix).encode()),
            Some(Event::Location(fix))
        );
    }

    #[test]
    fn invalid_coordinates_are_refused() {
        let mut bytes = Event::Location(Fix {
            position: LatLng::new(0.0, 0.0).expect("valid"),
            timestamp_ms: 0,
        })
        .encode();
        bytes[1..9].copy_from_slice(&f64::NAN.to_le_bytes());
        assert_eq!(Event::decode(&bytes), None);
        assert_eq!(Event::decode(&bytes[..24]), None);
    }
}
