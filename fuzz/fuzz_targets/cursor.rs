//! Paging cursors: anything decodes to a cursor or to nothing, never a panic, and a decoded
//! cursor encodes back to a string that decodes to the same cursor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nearby_services::cursor::Cursor;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(cursor) = Cursor::decode(text) {
        let again = Cursor::decode(&cursor.encode()).expect("an encoded cursor decodes");
        assert_eq!(again.distance_m.to_bits(), cursor.distance_m.to_bits());
        assert_eq!(again.id, cursor.id);
        assert_eq!(again.fingerprint, cursor.fingerprint);
    }
});
