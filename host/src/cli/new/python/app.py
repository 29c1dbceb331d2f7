"""{name}: a sque job handler. Each job of the demo's `emails` queue is {"email": "..."};
this one logs it and returns a result."""

from sque_guest import Fail, handler, info


@handler
def handle(job):
    mail = job.json()  # not JSON: the dead list
    email = mail.get("email", "") if isinstance(mail, dict) else ""
    if "@" not in email:
        raise Fail(f"not an address: {email!r}")
    info(f"handling {email} (attempt {job.attempt})")
    return {"handled": email}
