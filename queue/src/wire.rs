//! The wire forms that carry a job through Redis (`docs/PROTOCOL.md`, "Wire forms"), and
//! their parsers. Whatever Redis holds, these answer with a value or an error that says what
//! is wrong, never a panic: they are fuzzed (`fuzz/`). Public for the fuzz targets only.
//!
//! - an *item* in `waiting`: `ID|ATTEMPTS` or `ID|ATTEMPTS|MAX`;
//! - a *token* in `leases`, `delayed` and `dead`: `ID|ATTEMPT|MAX`;
//! - a *delivery* (an inbox entry, or one of `exchange`'s replies):
//!   `{"r":"SEQ","t":"TOKEN","d":DATA}`, the data inlined last as it was pushed; since protocol
//!   1.2, `{"r":"SEQ","t":"TOKEN","w":MS,"d":DATA}` for a first attempt whose push is recorded
//!   (how long it waited in the queue), to a worker that recorded 1.2 or later.
//!
//! Job ids are decimal (the push script assigns them from a counter); attempts and limits are
//! decimal numbers of at most nine digits, so that they fit a `u32` after one more attempt.

use serde_json::Value;

use crate::job::JobId;

/// Nesting of arrays and objects in job data, results and deliveries must stay under this
/// many levels, for every producer: serde_json's limit. The libraries refuse deeper jobs
/// before pushing; the push script does not parse data, so a worker buries deeper data that
/// another producer wrote as poison (docs/PROTOCOL.md, "Poison").
pub const MAX_DEPTH: usize = 128;

/// The longest job id, in digits.
const MAX_ID_DIGITS: usize = 20;
/// The most digits of an attempt count or limit.
const MAX_COUNT_DIGITS: usize = 9;

/// One delivery of a job: `ID|ATTEMPT|MAX`. Every script that ends or extends a lease names
/// the exact token, so a worker whose lease ran out (and whose job was dispatched again, with
/// a higher attempt) can no longer touch the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub id: JobId,
    pub attempt: u32,
    pub max: u32,
}

impl Token {
    pub fn parse(token: &str) -> Result<Token, String> {
        let bad = || format!("lease token {:?} is not ID|ATTEMPT|MAX", cut(token));
        let mut parts = token.split('|');
        let (Some(id), Some(attempt), Some(max), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if !is_id(id) {
            return Err(bad());
        }
        match (count(attempt), count(max)) {
            (Some(attempt), Some(max)) => Ok(Token {
                id: JobId::from(id),
                attempt,
                max,
            }),
            _ => Err(bad()),
        }
    }
}

/// Whether `id` is a job id: 1 to 20 decimal digits.
pub fn is_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_DIGITS && id.bytes().all(|b| b.is_ascii_digit())
}

fn count(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > MAX_COUNT_DIGITS || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    text.parse().ok()
}

/// A delivery read back from Redis: the request it answers, its lease token, and the job's
/// data, or why the data cannot be given to a worker.
#[derive(Debug)]
pub struct Delivery {
    pub request: u64,
    pub token: String,
    pub id: JobId,
    pub attempt: u32,
    /// How long the job waited between its push and this delivery, in ms on Redis's clock:
    /// for a first attempt whose push the queue still had a record of.
    pub waited_ms: Option<u64>,
    pub data: Result<Value, String>,
}

/// Parses a delivery. An envelope that cannot be read is an error (no token: nothing can
/// be done for the job but let its lease run out); data that cannot be read is a delivery
/// whose `data` says why, so that the worker can record the job as poison.
pub fn parse_delivery(entry: &[u8]) -> Result<Delivery, String> {
    let envelope;
    let (request, token, waited_ms, data) = match split_envelope(entry) {
        Some(parts) => parts,
        None => {
            envelope = serde_json::from_slice::<Envelope>(entry).map_err(|_| {
                format!(
                    "delivery {:?} is not {{\"r\":…,\"t\":…,\"d\":…}}",
                    cut_bytes(entry)
                )
            })?;
            (
                envelope.r.as_str(),
                envelope.t.as_str(),
                envelope.w,
                envelope.d.get().as_bytes(),
            )
        }
    };
    let request: u64 = request
        .parse()
        .map_err(|_| format!("delivery with request number {:?}", cut(request)))?;
    let parsed = Token::parse(token)?;
    Ok(Delivery {
        request,
        id: parsed.id,
        attempt: parsed.attempt,
        token: token.to_string(),
        waited_ms,
        data: parse_data(data),
    })
}

/// Job data as a worker is given it: valid JSON, nested at most [`MAX_DEPTH`] deep.
pub fn parse_data(data: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(data).map_err(|e| describe_json_error(&e))
}

/// Whether `data` is what [`parse_data`] takes, without building the value: what a producer
/// checks before it pushes, so that nothing it pushes becomes poison at delivery. serde_json
/// skips ignored values without its depth limit or number ranges (`IgnoredAny` took 100,000
/// levels and `1e999`); each value here is visited as a worker's parse visits it.
pub fn check_data(data: &[u8]) -> Result<(), String> {
    serde_json::from_slice::<Readable>(data)
        .map(|_| ())
        .map_err(|e| describe_json_error(&e))
}

/// A JSON value visited as [`parse_data`] visits it (numbers read, depth counted), kept not.
struct Readable;

impl<'de> serde::Deserialize<'de> for Readable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Readable, D::Error> {
        d.deserialize_any(Readable)
    }
}

impl<'de> serde::de::Visitor<'de> for Readable {
    type Value = Readable;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Readable, E> {
        Ok(Readable)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Readable, E> {
        Ok(Readable)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Readable, E> {
        Ok(Readable)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Readable, E> {
        Ok(Readable)
    }
    fn visit_str<E>(self, _: &str) -> Result<Readable, E> {
        Ok(Readable)
    }
    fn visit_unit<E>(self) -> Result<Readable, E> {
        Ok(Readable)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Readable, A::Error> {
        while seq.next_element::<Readable>()?.is_some() {}
        Ok(Readable)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Readable, A::Error> {
        while map.next_entry::<Readable, Readable>()?.is_some() {}
        Ok(Readable)
    }
}

/// Says what is wrong with JSON text, in the words the dead list shows.
pub fn describe_json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.starts_with("recursion limit exceeded") {
        format!(
            "data is nested {MAX_DEPTH} levels deep or more; the most allowed is {}",
            MAX_DEPTH - 1
        )
    } else {
        format!("data is not valid JSON: {text}")
    }
}

/// A delivery read as JSON, when it is not in the scripts' own form.
#[derive(serde::Deserialize)]
struct Envelope {
    r: String,
    t: String,
    #[serde(default)]
    w: Option<u64>,
    d: Box<serde_json::value::RawValue>,
}

/// The request number, token, wait and raw data of an envelope: the fixed prefix the scripts
/// write (`{"r":"SEQ","t":"TOKEN",`, then `"w":MS,` or nothing, then `"d":`, then the data,
/// then `}`), read without parsing the data, so that data which is not JSON does not hide the
/// token. Envelopes in another key order (written by another implementation) are read as JSON.
fn split_envelope(entry: &[u8]) -> Option<(&str, &str, Option<u64>, &[u8])> {
    let rest = entry.strip_prefix(br#"{"r":""#)?;
    let end = rest.iter().position(|b| *b == b'"')?;
    let (request, rest) = rest.split_at(end);
    let rest = rest.strip_prefix(br#"","t":""#)?;
    let end = rest.iter().position(|b| *b == b'"')?;
    let (token, rest) = rest.split_at(end);
    let rest = rest.strip_prefix(br#"","#)?;
    let (waited_ms, rest) = match rest.strip_prefix(br#""w":"#) {
        Some(rest) => {
            let end = rest.iter().position(|b| !b.is_ascii_digit())?;
            let (digits, rest) = rest.split_at(end);
            let ms = std::str::from_utf8(digits).ok()?.parse().ok()?;
            (Some(ms), rest.strip_prefix(b",")?)
        }
        None => (None, rest),
    };
    let rest = rest.strip_prefix(br#""d":"#)?;
    let data = rest.strip_suffix(b"}")?;
    Some((
        std::str::from_utf8(request).ok()?,
        std::str::from_utf8(token).ok()?,
        waited_ms,
        data,
    ))
}

/// A job's last error, as the scripts keep it in the queue's `errors` hash:
/// `{"code": ..., "message": ..., "at": ms, "token": ..., "data_bytes": n, "cut": true}`.
/// Versions before the codes kept the message alone, as text: it reads as a record without a
/// code.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LastError {
    /// How the attempt ended (`docs/HOST.md`, "How a job ends"): `retry`, `fail`, `trap`,
    /// `timeout`, `poison`, `lease_expired`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default)]
    pub message: String,
    /// When, in ms since the epoch on Redis's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<u64>,
    /// The lease token of that attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// For poison: the size of the data as it was pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_bytes: Option<u64>,
    /// For poison: the data kept is cut to 4 KiB.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cut: bool,
}

impl LastError {
    /// Reads an `errors` entry; anything that is not a record is a message of its own.
    pub fn parse(entry: &[u8]) -> LastError {
        match serde_json::from_slice::<LastError>(entry) {
            Ok(record) if entry.first() == Some(&b'{') => record,
            _ => LastError {
                message: String::from_utf8_lossy(entry).into_owned(),
                ..LastError::default()
            },
        }
    }

    /// Whether the job is poison: its data cannot be delivered, so it is never retried.
    pub fn is_poison(&self) -> bool {
        self.code.as_deref() == Some("poison")
    }
}

/// `text` as an error line shows what the user gave: its first 80 characters, and "…" after
/// them when there were more (a 5,000-byte name made a 5,000-byte error line).
pub fn shown(text: &str) -> String {
    match cut(text) {
        whole if whole.len() == text.len() => whole.to_string(),
        start => format!("{start}…"),
    }
}

fn cut(text: &str) -> &str {
    match text.char_indices().nth(80) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

fn cut_bytes(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse() {
        let t = Token::parse("42|3|5").unwrap();
        assert_eq!((t.id.as_str(), t.attempt, t.max), ("42", 3, 5));
        for bad in [
            "",
            "42",
            "42|x|5",
            "42|1",
            "|1|5",
            "1|2|3|4",
            "a\"b|1|5",
            "1|4294967295|5",
            "1|1|99999999999",
        ] {
            assert!(Token::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn deliveries_parse_and_bad_data_keeps_its_token() {
        let d = parse_delivery(br#"{"r":"7","t":"12|1|5","d":{"email":"a@b.c"}}"#).unwrap();
        assert_eq!((d.request, d.token.as_str(), d.attempt), (7, "12|1|5", 1));
        assert_eq!(d.data.unwrap()["email"], "a@b.c");

        let d = parse_delivery(br#"{"r":"7","t":"12|1|5","d":{not json}}"#).unwrap();
        assert_eq!(d.token, "12|1|5");
        assert!(d.data.unwrap_err().starts_with("data is not valid JSON"));

        let deep = format!(
            r#"{{"r":"1","t":"1|1|5","d":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let d = parse_delivery(deep.as_bytes()).unwrap();
        assert_eq!(
            d.data.unwrap_err(),
            "data is nested 128 levels deep or more; the most allowed is 127"
        );
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(parse_data(nested(127).as_bytes()).is_ok());
        // A producer's check takes exactly what a worker's parse takes.
        for text in [
            nested(127),
            nested(128),
            nested(100_000),
            "1e999".into(),
            "-1e999".into(),
            "[1e308, 1e-999, 18446744073709551616]".into(),
            "{\"a\": [1, {\"b\": 1e400}]}".into(),
            "{\"a\": \"\\ud800\"}".into(),
            "{\"\\ud800\": 1}".into(),
            "{\"a\":1} x".into(),
            "{\"a\":1}".into(),
            "".into(),
        ] {
            assert_eq!(
                check_data(text.as_bytes()),
                parse_data(text.as_bytes()).map(|_| ()),
                "{}",
                &text[..text.len().min(40)]
            );
        }
        assert!(parse_data(nested(128).as_bytes()).is_err());

        let d = parse_delivery(b"{\"r\":\"1\",\"t\":\"1|1|5\",\"d\":\"\xff\"}").unwrap();
        assert!(d.data.is_err(), "invalid UTF-8 is not JSON");

        let d = parse_delivery(br#"{"d":[1], "t":"3|2|5", "r":"9"}"#).unwrap();
        assert_eq!((d.request, d.attempt, d.waited_ms), (9, 2, None));
        assert_eq!(d.data.unwrap(), serde_json::json!([1]));
    }

    #[test]
    fn a_delivery_may_carry_its_wait_before_the_data() {
        let d = parse_delivery(br#"{"r":"7","t":"12|1|5","w":1500,"d":{"a":1}}"#).unwrap();
        assert_eq!(
            (d.request, d.token.as_str(), d.waited_ms),
            (7, "12|1|5", Some(1500))
        );
        assert_eq!(d.data.unwrap()["a"], 1);
        let d = parse_delivery(br#"{"r":"7","t":"12|1|5","w":0,"d":{not json}}"#).unwrap();
        assert_eq!((d.token.as_str(), d.waited_ms), ("12|1|5", Some(0)));
        assert!(d.data.is_err(), "poison keeps its token after a wait");
        let d = parse_delivery(br#"{"r":"7","t":"12|1|5","d":{"w":3}}"#).unwrap();
        assert_eq!(d.waited_ms, None, "a \"w\" in the data is the data's");
        let d = parse_delivery(br#"{"w":4, "d":[1], "t":"3|1|5", "r":"9"}"#).unwrap();
        assert_eq!((d.request, d.waited_ms), (9, Some(4)));
        for bad in [
            &br#"{"r":"1","t":"1|1|5","w":,"d":1}"#[..],
            br#"{"r":"1","t":"1|1|5","w":-1,"d":1}"#,
            br#"{"r":"1","t":"1|1|5","w":99999999999999999999999,"d":1}"#,
        ] {
            assert!(parse_delivery(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn error_records_and_old_plain_messages_both_read() {
        let e = LastError::parse(
            br#"{"code":"poison","message":"data is missing from jobs","at":5,"token":"1|1|5"}"#,
        );
        assert_eq!((e.code.as_deref(), e.at), (Some("poison"), Some(5)));
        assert!(e.is_poison());
        let old = LastError::parse(b"handler asked to retry: later");
        assert_eq!(
            (old.code, old.message.as_str()),
            (None, "handler asked to retry: later")
        );
        let junk = LastError::parse(b"\xff{");
        assert!(!junk.message.is_empty());
        let odd = LastError::parse(br#"{"message": 7}"#);
        assert_eq!(
            odd.message, r#"{"message": 7}"#,
            "a record of the wrong shape is text"
        );
    }

    #[test]
    fn broken_envelopes_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"{",
            br#"{"r":"x","t":"1|1|5","d":1}"#,
            br#"{"r":"1","t":"1|1","d":1}"#,
            br#"{"r":"1","t":"1|1|5","d":1"#,
            b"\xff\xfe",
        ] {
            assert!(parse_delivery(bad).is_err(), "{bad:?} parsed");
        }
    }
}
