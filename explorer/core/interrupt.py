"""A running request's way out. The page knows when a visitor has left; the engine does not, and must not know
the page. So the caller names a test (`stop_when(should_stop)`, for the code it wraps, in this thread's
context) and the engine calls `check(where, i)` before every decoder layer it runs: the prefill's, a follow-up's
extension's and every decoding step's. A request whose visitor left therefore ends within one layer, with
Stopped; nothing of it is kept. Without a test set, check() is one context-variable read."""

import contextlib
import contextvars

_should_stop = contextvars.ContextVar("should_stop", default=None)


class Stopped(Exception):
    """The caller no longer wants this request (its visitor left); not an error to report."""


@contextlib.contextmanager
def stop_when(should_stop):
    """Within this block (and this thread), the engine stops when should_stop() is true. Do not yield inside it:
    a generator resumed in another thread runs in another context."""
    token = _should_stop.set(should_stop)
    try:
        yield
    finally:
        _should_stop.reset(token)


def check(where="", layer=None):
    """Raise Stopped when the caller's test says so; where/layer only name the place in the message."""
    should_stop = _should_stop.get()
    if should_stop is not None and should_stop():
        raise Stopped(f"stopped before layer {layer} of the {where}" if layer is not None else f"stopped: {where}")
