//! Why a session ends, and what the server says when it ends it: every close code, reason
//! text and the counter it bumps, written once.

use crate::metrics::GatewayMetrics;
use crate::protocol::{
    CLOSE_GOING_AWAY, CLOSE_INVALID_PAYLOAD, CLOSE_MOVED, CLOSE_POLICY_VIOLATION,
    CLOSE_PROTOCOL_ERROR, CLOSE_REPLACED, CLOSE_SERVICE_RESTART, CLOSE_TOO_BIG, CLOSE_UNRESPONSIVE,
};
use std::borrow::Cow;
use std::sync::atomic::Ordering;

/// Why a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum End {
    /// The client closed or the connection dropped.
    ClientGone,
    /// The server closes the session.
    Close(Close),
}

/// A close the server initiates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Close {
    /// More frames than the flood limit allows.
    Flood,
    /// A text message over the configured size.
    MessageTooBig,
    /// A frame or message over the transport's size limit.
    FrameTooBig,
    /// A text frame that is not UTF-8.
    InvalidUtf8,
    /// A WebSocket protocol violation.
    ProtocolViolation,
    /// Nothing heard (not even a pong) within the idle timeout.
    Idle,
    /// Pushes could not be written within the send timeout.
    SendTimeout,
    /// A newer session of the same user took this one's place (per-user limit).
    Replaced,
    /// The node shuts down and there is no other node to go to.
    GoingAway,
    /// The node shuts down; the user's next owner's WebSocket URL, when one is known.
    Restart(Option<String>),
    /// Another node owns the user now: its WebSocket URL.
    Moved(String),
}

impl Close {
    /// The close code.
    pub(super) fn code(&self) -> u16 {
        match self {
            Close::Flood => CLOSE_POLICY_VIOLATION,
            Close::MessageTooBig | Close::FrameTooBig => CLOSE_TOO_BIG,
            Close::InvalidUtf8 => CLOSE_INVALID_PAYLOAD,
            Close::ProtocolViolation => CLOSE_PROTOCOL_ERROR,
            Close::Idle | Close::SendTimeout => CLOSE_UNRESPONSIVE,
            Close::Replaced => CLOSE_REPLACED,
            Close::GoingAway => CLOSE_GOING_AWAY,
            Close::Restart(_) => CLOSE_SERVICE_RESTART,
            Close::Moved(_) => CLOSE_MOVED,
        }
    }

    /// The reason text (URLs are short: well under the 123 bytes a close frame allows).
    pub(super) fn reason(&self) -> Cow<'_, str> {
        Cow::Borrowed(match self {
            Close::Flood => "message rate limit exceeded",
            Close::MessageTooBig => "message too big",
            Close::FrameTooBig => "frame or message over the size limit",
            Close::InvalidUtf8 => "text frame is not valid UTF-8",
            Close::ProtocolViolation => "websocket protocol violation",
            Close::Idle => "no message or pong within the idle timeout",
            Close::SendTimeout => "pushes could not be delivered in time",
            Close::Replaced => "replaced by a newer session of this user",
            Close::GoingAway => "server shutting down",
            Close::Restart(None) => "server restarting",
            Close::Restart(Some(url)) | Close::Moved(url) => url,
        })
    }

    /// Counts the close in the metric it belongs to (before the close frame is sent, so a
    /// client that reads the code and then the metrics sees it counted).
    pub(super) fn count(&self, metrics: &GatewayMetrics) {
        let counter = match self {
            Close::Flood
            | Close::MessageTooBig
            | Close::FrameTooBig
            | Close::InvalidUtf8
            | Close::ProtocolViolation => &metrics.closed_abuse,
            Close::Idle | Close::SendTimeout => &metrics.closed_unresponsive,
            Close::Restart(_) | Close::Moved(_) => &metrics.sessions_moved,
            Close::Replaced | Close::GoingAway => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// How a read error ends the session: a frame the transport refused is the client's fault
/// (closed with the matching code), anything else is a connection gone.
pub(super) fn read_error(err: &axum::Error) -> End {
    let cause = std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<tungstenite::Error>());
    match cause {
        Some(tungstenite::Error::Capacity(_)) => End::Close(Close::FrameTooBig),
        Some(tungstenite::Error::Utf8(_)) => End::Close(Close::InvalidUtf8),
        Some(tungstenite::Error::Protocol(_)) => End::Close(Close::ProtocolViolation),
        _ => End::ClientGone,
    }
}

/// How a bounded write ends: `Ok` when written, a failed write is a connection gone, a write
/// that did not finish in time closes the session (1001).
pub(super) fn write_outcome<E>(
    written: Result<Result<(), E>, tokio::time::error::Elapsed>,
) -> Result<(), End> {
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::ClientGone),
        Err(_) => Err(End::Close(Close::SendTimeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn codes_reasons_and_counters_are_as_documented() {
        let metrics = GatewayMetrics::default();
        let cases = [
            (Close::Flood, 1008, "message rate limit exceeded"),
            (Close::MessageTooBig, 1009, "message too big"),
            (
                Close::FrameTooBig,
                1009,
                "frame or message over the size limit",
            ),
            (Close::InvalidUtf8, 1007, "text frame is not valid UTF-8"),
            (
                Close::ProtocolViolation,
                1002,
                "websocket protocol violation",
            ),
            (
                Close::Idle,
                1001,
                "no message or pong within the idle timeout",
            ),
            (
                Close::SendTimeout,
                1001,
                "pushes could not be delivered in time",
            ),
            (
                Close::Replaced,
                4002,
                "replaced by a newer session of this user",
            ),
            (Close::GoingAway, 1001, "server shutting down"),
            (Close::Restart(None), 1012, "server restarting"),
            (
                Close::Restart(Some("ws://b/v1/ws".into())),
                1012,
                "ws://b/v1/ws",
            ),
            (Close::Moved("ws://c/v1/ws".into()), 4001, "ws://c/v1/ws"),
        ];
        for (close, code, reason) in &cases {
            assert_eq!((close.code(), close.reason().as_ref()), (*code, *reason));
            assert!(close.reason().len() <= 123, "{close:?}");
            close.count(&metrics);
        }
        assert_eq!(metrics.closed_abuse.load(Ordering::Relaxed), 5);
        assert_eq!(metrics.closed_unresponsive.load(Ordering::Relaxed), 2);
        assert_eq!(metrics.sessions_moved.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn a_write_that_times_out_closes_and_a_failed_one_is_a_client_gone() {
        assert_eq!(write_outcome::<()>(Ok(Ok(()))), Ok(()));
        assert_eq!(write_outcome(Ok(Err(()))), Err(End::ClientGone));
        // A real `Elapsed`, from a timeout of zero around a future that never finishes.
        let elapsed = tokio::time::timeout(Duration::ZERO, std::future::pending::<()>()).await;
        assert_eq!(
            write_outcome::<()>(elapsed.map(Ok)),
            Err(End::Close(Close::SendTimeout))
        );
    }

    #[test]
    fn read_errors_map_to_their_close_codes() {
        let wrap = |err: tungstenite::Error| axum::Error::new(err);
        assert_eq!(
            read_error(&wrap(tungstenite::Error::Capacity(
                tungstenite::error::CapacityError::MessageTooLong {
                    size: 2,
                    max_size: 1
                }
            ))),
            End::Close(Close::FrameTooBig)
        );
        assert_eq!(
            read_error(&wrap(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
            ))),
            End::Close(Close::ProtocolViolation)
        );
        assert_eq!(
            read_error(&wrap(tungstenite::Error::ConnectionClosed)),
            End::ClientGone
        );
    }
}
