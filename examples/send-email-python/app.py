"""The `emails` queue's handler in Python, as examples/send-email is in Rust: each job is
{"email": "..."} (with an optional "subject" and "name"); the handler checks the address
and renders the message. Without MAIL_API_URL it is a dry run, as the Rust one's.

Build (componentize-py 0.25.1, from the repository's root):

    componentize-py -d guest-sdk/python/wit -w handler componentize \
        -p guest-sdk/python -p examples/send-email-python app -o send_email_py.wasm
    sque-host run --queue emails --handler send_email_py.wasm

What the runtime costs: the component carries CPython (about 18 MB; 12.4 MiB of linear
memory at start); a fresh instance per job costs about a millisecond of CPU where the Rust
handler's costs microseconds. `sque-host run --reuse 1000` keeps an instance for up to
1,000 jobs in turn, when the handler keeps nothing of one job for the next.
"""

from sque_guest import Fail, env, handler, info


def check_address(address):
    def bad(why):
        raise Fail(f"invalid email address {address!r}: {why}")

    if not isinstance(address, str):
        bad("not a string")
    if len(address) > 254:
        bad("longer than 254 characters")
    if any(c.isspace() or not c.isprintable() for c in address):
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
    # Outgoing HTTP needs wasi:http in the handler world (sque:handler@0.2.0, not yet here).
    raise Fail(f"MAIL_API_URL is set ({api}), but this Python handler cannot post yet")
