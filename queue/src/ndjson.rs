//! NDJSON input, one job a line, read in bounded memory: a line longer than the limit is an
//! error found as soon as the limit is passed, so a 2 GiB line is never read whole. Used by
//! `sque-host push`, and fuzzed (`fuzz/`).

use std::io::BufRead;

/// What reading one line found.
#[derive(Debug, PartialEq, Eq)]
pub enum LineRead {
    /// A line (possibly the last one, without its newline).
    Line,
    /// The end of the input.
    End,
}

/// Reads one line (without its newline) of at most `limit` bytes; a longer line is an error
/// found as soon as the limit is passed, without reading the rest of it.
pub fn read_line_bounded(
    input: &mut impl BufRead,
    line: &mut Vec<u8>,
    limit: usize,
) -> Result<LineRead, String> {
    loop {
        let buf = input
            .fill_buf()
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        if buf.is_empty() {
            return Ok(if line.is_empty() {
                LineRead::End
            } else {
                LineRead::Line
            });
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if line.len() + chunk.len() > limit {
            return Err(format!(
                "the job is over the limit of {limit} bytes (raise --max-job-bytes, or keep large payloads elsewhere and push a reference)"
            ));
        }
        line.extend_from_slice(chunk);
        let used = done.unwrap_or(buf.len());
        input.consume(used);
        if done.is_some() {
            return Ok(LineRead::Line);
        }
    }
}

/// Valid JSON within the size limit, that a worker can read (nested under
/// [`MAX_DEPTH`](crate::wire::MAX_DEPTH) levels, numbers within a double's range): what a job
/// must be.
pub fn check_job_json(bytes: &[u8], limit: usize) -> Result<(), String> {
    if bytes.len() > limit {
        return Err(format!(
            "the job is {} bytes, over the limit of {limit}",
            bytes.len()
        ));
    }
    if std::str::from_utf8(bytes).is_err() {
        return Err("not UTF-8 text, so not JSON".into());
    }
    // As a worker will read it: what it could not read would be poison. (The worker's words
    // begin "data is ...": here the line or argument is named before them.)
    crate::wire::check_data(bytes)
        .map_err(|e| e.strip_prefix("data is ").map_or(e.clone(), str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_lines() {
        let mut input = std::io::Cursor::new(b"{\"a\":1}\n[2]\nlast".to_vec());
        let mut line = Vec::new();
        for expected in [&b"{\"a\":1}"[..], b"[2]", b"last"] {
            line.clear();
            assert!(read_line_bounded(&mut input, &mut line, 100).unwrap() == LineRead::Line);
            assert_eq!(line, expected);
        }
        line.clear();
        assert!(read_line_bounded(&mut input, &mut line, 100).unwrap() == LineRead::End);
        let mut long = std::io::Cursor::new(vec![b'x'; 1000]);
        line.clear();
        assert!(read_line_bounded(&mut long, &mut line, 100).is_err());
    }

    #[test]
    fn json_checks() {
        assert!(check_job_json(b"{\"email\":\"a@b.c\"}", 100).is_ok());
        assert!(check_job_json(b"{\"email\":", 100).is_err());
        assert!(check_job_json(b"\xff\xfe", 100).is_err());
        assert!(check_job_json(b"[1,2,3]", 3).is_err());
        // What a worker could not read is refused here, not buried as poison later.
        assert!(check_job_json(b"{\"a\":1e999}", 100).is_err());
        let deep = format!("{}{}", "[".repeat(128), "]".repeat(128));
        assert!(check_job_json(deep.as_bytes(), 1000).is_err());
        let deepest = format!("{}{}", "[".repeat(127), "]".repeat(127));
        assert!(check_job_json(deepest.as_bytes(), 1000).is_ok());
    }
}
