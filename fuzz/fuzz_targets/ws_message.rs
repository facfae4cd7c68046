//! A WebSocket text frame from a client: parsed into a checked message or refused with an
//! error code, never a panic; an accepted location is a valid point with a plausible time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nearby_ws_gateway::protocol::{
    ClientMessage, MAX_FUTURE_SKEW_MS, ServerMessage, parse_client_message,
};

const NOW_MS: i64 = 1_795_000_000_000;

fuzz_target!(|data: &[u8]| {
    // Frames that are not UTF-8 never reach the parser (the socket closes with 1007).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_client_message(text, NOW_MS) {
        Ok(ClientMessage::Location(fix)) => {
            let (lat, lng) = (fix.position.lat(), fix.position.lng());
            assert!((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lng));
            assert!(fix.timestamp_ms <= NOW_MS + MAX_FUTURE_SKEW_MS);
        }
        Ok(_) => {}
        Err(error) => {
            // The refusal renders as a JSON `error` message.
            let json = ServerMessage::from(error).to_json();
            assert!(json.starts_with('{') && json.contains("\"error\""));
        }
    }
});
