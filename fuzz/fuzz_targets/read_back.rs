//! What the library does with anything read back from Redis that a producer in another
//! language, or a bug, may have written: lease tokens (leases, delayed, the dead list), error
//! records (`errors`), and job data as a worker is given it. Any bytes must give a value or
//! an error that says what is wrong, never a panic.
//! `cargo +nightly fuzz run read_back` (from the repository root).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sque::wire::{parse_data, LastError, Token};

fuzz_target!(|data: &[u8]| {
    let record = LastError::parse(data);
    let _ = record.is_poison();
    if let Err(reason) = parse_data(data) {
        assert!(!reason.is_empty());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(token) = Token::parse(text) {
            assert!(text.starts_with(token.id.as_str()));
            assert!(token.attempt < 1_000_000_000 && token.max < 1_000_000_000);
        }
    }
});
