"""The sque guest SDK for Python: write a job handler as one decorated function.

    from sque_guest import handler, Fail

    @handler
    def send(job):
        mail = job.json()                 # the job's data; not JSON: Fail
        if "@" not in mail["email"]:
            raise Fail("invalid address")  # to the dead list at once
        return {"sent": mail["email"]}     # kept as the job's result (any JSON value)

Build it into a component with componentize-py (the version this SDK is tested with is in
pyproject.toml), against the WIT this package ships:

    componentize-py -d guest-sdk/python/wit -w handler componentize -p guest-sdk/python app -o app.wasm

How a job ends: a returned value (or None) completes it; ``raise Retry(msg)`` asks for
another attempt after backoff; ``raise Fail(msg)`` sends it to the dead list; any other
exception is a retry whose error is the exception's type and message, then its traceback.
Import what the handler uses at the top of its module: componentize-py bundles the modules
imported when the app is loaded, not those a function imports later. ``env(name)`` reads the
values ``sque-host run --env`` grants; ``sque_guest.http`` makes outgoing requests to the hosts
``--allow-http`` names; ``progress(40, "rendered")`` and ``push(queue, data)`` report and
hand work on; ``info(msg)`` and its siblings send nothing below the host's level. Built
against ``sque:handler@0.2.1`` (``wit/handler.wit`` in this package).
"""

import inspect as _inspect
import json as _json
import os as _os
import sys as _sys
import traceback as _traceback

import componentize_py_types as _types
import wit_world as _wit_world
from wit_world.imports import follow_up as _follow_up
from wit_world.imports import log as _log
from wit_world.imports import progress as _progress
from wit_world.imports import sque_handler_types as _wit_types

__all__ = [
    "handler",
    "Job",
    "Retry",
    "Fail",
    "env",
    "progress",
    "push",
    "enabled",
    "trace",
    "debug",
    "info",
    "warn",
    "error",
]

#: The longest error text sent to the host: the host cuts longer ones to the queue's
#: max_error_bytes (4 KiB by default) keeping their beginning, where the type and message are.
MAX_ERROR_CHARS = 64 * 1024


class Retry(Exception):
    """Raise to ask for another attempt after backoff (dead once out of attempts)."""


class Fail(Exception):
    """Raise when no retry can help: the job goes to the dead list at once."""


class Job:
    """One job: its id, queue, attempt (1 for the first) and data as JSON text."""

    __slots__ = ("id", "queue", "attempt", "data")

    def __init__(self, id, queue, attempt, data):
        self.id = id
        self.queue = queue
        self.attempt = attempt
        self.data = data

    def json(self):
        """The job's data, parsed; data that is not JSON fails the job (no retry can mend it)."""
        try:
            return _json.loads(self.data)
        except ValueError as e:
            raise Fail(f"the job's data is not valid JSON: {e}") from None

    def __repr__(self):
        return f"Job(id={self.id!r}, queue={self.queue!r}, attempt={self.attempt})"


def env(name, default=None):
    """An environment variable the host granted (``sque-host run --env K=V``), else default."""
    return _os.environ.get(name, default)


def _text(value):
    """``value`` as text the host can take: ``str()`` (or, if that fails, its type), with any
    lone surrogate replaced, since the bindings cannot send one and would end the runtime."""
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # noqa: BLE001 - a __str__ that raises
        text = f"<{type(value).__name__} that cannot be shown>"
    return text.encode("utf-8", "replace").decode("utf-8")


def progress(percent, note=None):
    """Reports how far the job has come: ``percent`` (0 to 100; below is 0, above is 100, and
    what is not a number is 0) and an optional short note (cut at 256 bytes). The host records
    the latest, at most about once a second."""
    try:
        share = float(percent)
    except (TypeError, ValueError, OverflowError):
        share = 0.0
    share = 0.0 if share != share else max(0.0, min(share, 100.0))  # NaN is 0
    _progress.report(int(share), None if note is None else _text(note))


def push(queue, data, delay_ms=None, unique_key=None):
    """Pushes a follow-up job of ``data`` (any JSON value) to ``queue``, committed only when
    this job completes (a job that fails or is retried pushes nothing). Returns its index
    among this job's pushes. A push the host refuses, or one that cannot be made (a queue
    that is not a string, data that is not JSON, a delay that is not a whole number of ms
    from 0), raises :class:`Fail`: no retry would mend it."""
    if not isinstance(queue, str):
        raise Fail(f"push's queue is a name, not {type(queue).__name__}")
    try:
        json = _json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise Fail(f"the job pushed to {queue!r} is not JSON: {_text(e)}") from None
    if delay_ms is not None and (
        isinstance(delay_ms, bool) or not isinstance(delay_ms, int) or not 0 <= delay_ms < 2**64
    ):
        raise Fail(f"push's delay_ms is a whole number of milliseconds from 0, not {delay_ms!r}")
    if unique_key is not None and not isinstance(unique_key, str):
        raise Fail(f"push's unique_key is text, not {type(unique_key).__name__}")
    options = _follow_up.PushOptions(delay_ms, None if unique_key is None else _text(unique_key))
    try:
        return _follow_up.push(_text(queue), json, options)
    except _types.Err as e:
        why = e.value
        if isinstance(why, _follow_up.PushError_Denied):
            raise Fail(f"pushing to {queue!r} was denied: this host does not let handlers push there") from None
        if isinstance(why, _follow_up.PushError_TooLarge):
            raise Fail(f"the job pushed to {queue!r} is too large ({why.value} bytes)") from None
        if isinstance(why, _follow_up.PushError_Invalid):
            raise Fail(f"the push to {queue!r} is invalid: {why.value}") from None
        raise Fail("this job has pushed as many jobs as it may") from None


_LEVELS = {
    "trace": _log.Level.TRACE,
    "debug": _log.Level.DEBUG,
    "info": _log.Level.INFO,
    "warn": _log.Level.WARN,
    "error": _log.Level.ERROR,
}


def enabled(level):
    """Whether the host records lines at ``level`` ("trace" ... "error"; its ``--log``). The
    log functions ask it first, so that a line the host would drop is not sent; ask it
    yourself before work done only for a log line."""
    try:
        return _log.enabled(_LEVELS[level])
    except KeyError:
        raise ValueError(f"unknown log level {level!r}: one of {', '.join(_LEVELS)}") from None


def _line(level, message):
    if _log.enabled(level):
        _log.log(level, _text(message))


def trace(message):
    _line(_log.Level.TRACE, message)


def debug(message):
    _line(_log.Level.DEBUG, message)


def info(message):
    _line(_log.Level.INFO, message)


def warn(message):
    _line(_log.Level.WARN, message)


def error(message):
    _line(_log.Level.ERROR, message)


def _described(exc):
    """An exception as its type and message, then the traceback: the start is what counts."""
    head = "".join(_traceback.format_exception_only(type(exc), exc)).strip()
    trace = "".join(_traceback.format_exception(type(exc), exc, exc.__traceback__)).strip()
    return _text(f"{head}\n{trace}"[:MAX_ERROR_CHARS])


def handler(function):
    """Makes ``function(job) -> value`` the component's handler.

    componentize-py looks for a class named ``WitWorld`` in the app module: this defines it
    there, so the decorated function is all a handler module needs. A coroutine function
    (``async def``) is refused when the module is loaded, so the build fails: nothing would
    run it.
    """
    if _inspect.iscoroutinefunction(function):
        raise TypeError(
            f"@handler takes a plain function, not the coroutine function {function.__name__!r}: "
            "write it without async (the component runs one job at a time)"
        )

    class WitWorld(_wit_world.WitWorld):
        def handle(self, job):
            try:
                value = function(Job(job.id, job.queue, job.attempt, job.data))
            except Fail as e:
                raise _types.Err(_wit_types.Error_Fail(_text(e)[:MAX_ERROR_CHARS]))
            except Retry as e:
                raise _types.Err(_wit_types.Error_Retry(_text(e)[:MAX_ERROR_CHARS]))
            except Exception as e:  # noqa: BLE001 - every uncaught exception becomes a retry
                raise _types.Err(_wit_types.Error_Retry(_described(e)))
            if value is None:
                return None
            # Outside the handler's own errors: a result that is not JSON is the handler's
            # mistake, which another attempt would make again (after its side effects).
            try:
                return _json.dumps(value, allow_nan=False)
            except Exception as e:  # noqa: BLE001 - TypeError, ValueError, RecursionError, and what the value's own methods raise
                raise _types.Err(
                    _wit_types.Error_Fail(f"the handler's result is not JSON: {_text(e)}"[:MAX_ERROR_CHARS])
                ) from None

    module = _sys.modules[function.__module__]
    module.WitWorld = WitWorld
    return function
