//! What a worker does with a delivery read back from Redis (its inbox, or an exchange's
//! reply): parse the envelope, the lease token and the data. Any bytes at all must give a
//! delivery (whose data may be refused, with a reason) or an error, never a panic.
//! `cargo +nightly fuzz run inbox_entry` (from the repository root).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(delivery) = sque::wire::parse_delivery(data) {
        assert!(delivery.token.starts_with(delivery.id.as_str()));
        if let Err(reason) = &delivery.data {
            assert!(!reason.is_empty());
        }
    }
});
