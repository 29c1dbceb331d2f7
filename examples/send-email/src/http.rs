//! A JSON POST over `wasi:http`. The host allows it only to the hosts named by
//! `--allow-http`; anything else fails here with "denied".

use sque_guest::wasi::http::outgoing_handler;
use sque_guest::wasi::http::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use sque_guest::Error;

/// Posts `body` to `url` and returns the HTTP status.
pub fn post_json(url: &str, body: &[u8]) -> Result<u16, Error> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else {
        return Err(Error::fail(format!(
            "MAIL_API_URL {url:?} is not an http(s) URL"
        )));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let headers = Fields::from_list(&[
        ("content-type".to_string(), b"application/json".to_vec()),
        (
            "content-length".to_string(),
            body.len().to_string().into_bytes(),
        ),
    ])
    .map_err(|e| Error::fail(format!("header: {e:?}")))?;
    let request = OutgoingRequest::new(headers);
    let setup = [
        request.set_method(&Method::Post),
        request.set_scheme(Some(&scheme)),
        request.set_authority(Some(authority)),
        request.set_path_with_query(Some(path)),
    ];
    if setup.iter().any(Result::is_err) {
        return Err(Error::fail(format!(
            "MAIL_API_URL {url:?} is not a valid URL"
        )));
    }
    let outgoing = request
        .body()
        .map_err(|_| Error::fail("request body taken twice"))?;
    {
        let stream = outgoing
            .write()
            .map_err(|_| Error::fail("request stream taken twice"))?;
        for chunk in body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| Error::retry(format!("writing the request: {e:?}")))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| Error::retry(format!("{e:?}")))?;
    let pending = outgoing_handler::handle(request, None).map_err(classify)?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or_else(|| Error::retry("no response"))?
        .map_err(|_| Error::retry("response taken twice"))?
        .map_err(classify)?;
    Ok(response.status())
}

fn classify(e: ErrorCode) -> Error {
    match e {
        ErrorCode::HttpRequestDenied => Error::fail(
            "HTTP request denied by the host: start it with --allow-http for the mail API's host",
        ),
        other => Error::retry(format!("HTTP request failed: {other:?}")),
    }
}
