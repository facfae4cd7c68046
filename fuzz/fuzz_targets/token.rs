//! Bearer tokens. Arbitrary text is refused, never a panic; and since the signature is checked
//! before the claims are read, the second half of the input is also signed with the key, so
//! the claims parser itself is fuzzed behind a valid signature.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use nearby_services::auth::Secret;
use sha2::Sha256;

const KEY: [u8; 32] = [7; 32];
const NOW: u64 = 1_795_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(secret) = Secret::new(KEY.to_vec()) else {
        return;
    };
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = secret.verify(text, NOW);
    }
    // The same bytes as claims, correctly signed: only the claims decide.
    let body = format!("nearby1.{}", URL_SAFE_NO_PAD.encode(data));
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&KEY) else {
        return;
    };
    mac.update(body.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    if let Ok(claims) = secret.verify(&format!("{body}.{signature}"), NOW) {
        assert!(claims.exp > NOW);
    }
    // A token minted by the service verifies, and any one-byte change to it does not verify
    // as someone else.
    let user = data
        .iter()
        .fold(0_u64, |acc, b| acc.rotate_left(8) ^ u64::from(*b));
    let token = secret.mint(user, false, 60, NOW);
    assert_eq!(secret.verify(&token, NOW).map(|c| c.sub), Ok(user));
    if let Some(&flip) = data.first() {
        let mut bytes = token.into_bytes();
        let at = usize::from(flip) % bytes.len();
        bytes[at] ^= 1 | (flip >> 1);
        if let Ok(changed) = String::from_utf8(bytes)
            && let Ok(claims) = secret.verify(&changed, NOW)
        {
            assert_eq!(claims.sub, user);
        }
    }
});
