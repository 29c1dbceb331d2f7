"""The `emails` queue's handler in Python, as examples/send-email is in Rust: each job is
{"email": "..."} (with an optional "subject" and "name"); the handler checks the address
and renders the message, then posts it as JSON to the mail API named by MAIL_API_URL (a dry
run without it). A bad address fails for good; an unreachable or failing API (5xx, 429) is
retried.

Build (componentize-py 0.25.1, from the repository's root):

    componentize-py -d guest-sdk/python/wit -w handler componentize \
        -p guest-sdk/python -p examples/send-email-python app -o send_email_py.wasm
    sque-host run --queue emails --handler send_email_py.wasm \
        --env MAIL_API_URL=http://127.0.0.1:8025/send --allow-http 127.0.0.1:8025

What the runtime costs: the component carries CPython (about 18 MB; 12.4 MiB of linear
memory at start); a fresh instance per job costs about a millisecond of CPU where the Rust
handler's costs microseconds. `sque-host run --reuse 1000` keeps an instance for up to
1,000 jobs in turn, when the handler keeps nothing of one job for the next.
"""

from sque_guest import Fail, Retry, env, handler, http, info


def check_address(address):
    def bad(why):
        raise Fail(f"invalid email address {address!r}: {why}")

    if not isinstance(address, str):
        bad("not a string")
    if len(address) > 254:
        bad("longer than 254 characters")
    # Whitespace or a control character: every such character is unprintable but the space
    # (one test of the string, not a generator over its characters).
    if " " in address or not address.isprintable():
        bad("contains whitespace")
    if "@" not in address:
        bad("no @")
    local, _, domain = address.rpartition("@")
    if not local or "@" in local:
        bad("the part before @ is empty or has another @")
    if "." not in domain or domain.startswith(".") or domain.endswith("."):
        bad("the domain needs a dot, and not at either end")


def render(mail):
    name = mail.get("name") or "there"
    return {
        "to": mail["email"],
        "subject": mail.get("subject") or "Hello from sque",
        "text": f"Hi {name},\n\nthis message was sent by a sque job handler.\n",
    }


@handler
def send(job):
    mail = job.json()
    if not isinstance(mail, dict) or "email" not in mail:
        raise Fail('expected {"email": "..."}')
    check_address(mail["email"])
    message = render(mail)
    api = env("MAIL_API_URL")
    if api is None:
        info(f"dry run (no MAIL_API_URL): would send {message['subject']!r} to {message['to']}")
        return {"to": message["to"], "status": None}
    try:
        response = http.post_json(api, message)
    except ValueError as e:
        raise Fail(f"MAIL_API_URL {api!r}: {e}") from None
    except http.HttpError as e:
        if e.code == "HttpRequestDenied":
            raise Fail("HTTP request denied by the host: start it with --allow-http for the mail API's host") from None
        raise Retry(str(e)) from None
    status = response.status
    if 200 <= status <= 299:
        info(f"sent to {message['to']} (HTTP {status})")
        return {"to": message["to"], "status": status}
    if status >= 500 or status == 429:
        raise Retry(f"mail API answered HTTP {status}")
    raise Fail(f"mail API refused the message: HTTP {status}")
