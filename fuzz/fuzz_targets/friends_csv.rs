//! The `--friends` seed file: pairs of distinct ids or an error naming the line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nearby_services::friends_file::parse;

fuzz_target!(|data: &[u8]| {
    if let Ok(pairs) = parse(data, "fuzz.csv") {
        assert!(pairs.iter().all(|(a, b)| a != b));
    }
});
