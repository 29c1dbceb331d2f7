"""Outgoing HTTP for handlers, over ``wasi:http``: one blocking call per request.

    from sque_guest import http

    response = http.post_json(env("MAIL_API_URL"), {"to": "ada@example.com"})
    if response.status >= 500:
        raise Retry(f"the mail API answered {response.status}")

The host lets a handler reach only the hosts ``sque-host run --allow-http`` names; a request
to any other fails with :class:`HttpError` whose ``code`` is ``"HttpRequestDenied"``.
"""

import json as _json
from urllib.parse import urlsplit as _urlsplit

from componentize_py_types import Err as _Err
from componentize_py_types import Ok as _Ok
from wit_world.imports import outgoing_handler as _outgoing
from wit_world.imports import streams as _streams
from wit_world.imports import wasi_http_types as _http

__all__ = ["HttpError", "Response", "request", "post_json"]

#: Bytes written or read per call on a body stream.
_CHUNK = 4096


class HttpError(Exception):
    """A request that got no response: ``code`` is the ``wasi:http`` error code's name."""

    def __init__(self, code, detail=""):
        self.code = code
        super().__init__(f"HTTP request failed: {code}{': ' + detail if detail else ''}")


class Response:
    """An HTTP response: its status, headers (a list of (name, bytes) pairs) and body."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return _json.loads(self.body)

    def __repr__(self):
        return f"Response(status={self.status}, {len(self.body)} bytes)"


def _code(error):
    """A wasi:http ErrorCode as its name, e.g. ``ErrorCode_HttpRequestDenied`` -> ``HttpRequestDenied``."""
    return type(error).__name__.removeprefix("ErrorCode_")


def _method(name):
    known = {
        "GET": _http.Method_Get(),
        "HEAD": _http.Method_Head(),
        "POST": _http.Method_Post(),
        "PUT": _http.Method_Put(),
        "DELETE": _http.Method_Delete(),
        "PATCH": _http.Method_Patch(),
        "OPTIONS": _http.Method_Options(),
    }
    return known.get(name.upper(), _http.Method_Other(name))


def request(method, url, body=b"", headers=None):
    """Sends one request and waits for the whole response. ``headers`` is a dict of str to
    str; ``body`` is bytes. Raises :class:`HttpError` when no response came, ValueError for a
    URL that is not http(s)."""
    parts = _urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    fields = [(k.lower(), v.encode()) for k, v in (headers or {}).items()]
    if body:
        fields.append(("content-length", str(len(body)).encode()))
    try:
        outgoing = _http.OutgoingRequest(_http.Fields.from_list(fields))
        outgoing.set_method(_method(method))
        outgoing.set_scheme(_http.Scheme_Https() if parts.scheme == "https" else _http.Scheme_Http())
        outgoing.set_authority(parts.netloc)
        outgoing.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    except _Err as e:
        raise ValueError(f"not a valid request to {url!r}: {e.value}") from None
    request_body = outgoing.body()
    with request_body.write() as stream:
        for at in range(0, len(body), _CHUNK):
            stream.blocking_write_and_flush(body[at : at + _CHUNK])
    _http.OutgoingBody.finish(request_body, None)
    try:
        future = _outgoing.handle(outgoing, None)
    except _Err as e:
        raise HttpError(_code(e.value)) from None
    with future:
        with future.subscribe() as ready:
            ready.block()
        got = future.get()
    response = got.value.value if isinstance(got.value, _Ok) else None
    if response is None:
        raise HttpError(_code(got.value.value))
    with response:
        status = response.status()
        with response.headers() as fields:
            header_list = fields.entries()
        incoming = response.consume()
        chunks = []
        with incoming.stream() as stream:
            while True:
                try:
                    chunks.append(stream.blocking_read(_CHUNK))
                except _Err as e:
                    if isinstance(e.value, _streams.StreamError_Closed):
                        break
                    raise HttpError("HttpProtocolError", "reading the response failed") from None
        with _http.IncomingBody.finish(incoming):
            pass  # no trailers wanted: dropped at once
    return Response(status, header_list, b"".join(chunks))


def post_json(url, value, headers=None):
    """POSTs ``value`` as JSON; returns the :class:`Response` whatever its status."""
    merged = {"content-type": "application/json", **(headers or {})}
    return request("POST", url, _json.dumps(value).encode(), merged)
