//! What a worker does with an entry read back from its inbox in Redis: parse the envelope
//! and the lease token. Anything at all must give a delivery or an error, never a panic.
//! `cargo +nightly fuzz run inbox_entry` (from the repository root).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(delivery) = sque::queue::parse_delivery(text) {
            assert!(delivery.token.starts_with(delivery.id.as_str()));
        }
    }
});
