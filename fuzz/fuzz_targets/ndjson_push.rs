//! What `sque-host push` does with its stdin: read bounded lines, check each as a job.
//! `cargo +nightly fuzz run ndjson_push` (from the repository root).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sque::ndjson::{check_job_json, read_line_bounded, LineRead};

fuzz_target!(|data: &[u8]| {
    let mut input = std::io::Cursor::new(data);
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_line_bounded(&mut input, &mut line, 4096) {
            Ok(LineRead::Line) => {
                assert!(line.len() <= 4096);
                if check_job_json(&line, 4096).is_ok() {
                    // The push path turns a line that passed into a String: it must be UTF-8.
                    assert!(std::str::from_utf8(&line).is_ok());
                }
            }
            Ok(LineRead::End) | Err(_) => break,
        }
    }
});
