"""Helpers for the test applications under tests/http/apps.

Imported inside httpd's interpreters (each interpreter imports its own copy),
found through PyInterpPythonPath.  Nothing here knows mod_pyinterp's C side:
the interpreter that runs a piece of code is asked of CPython itself.
"""
import json
import os
import sys
import threading


def running_interpreter_id():
    """CPython's id of the interpreter running the caller (0 is the main one).

    Read from the running thread state, never from a module's globals: the
    import below goes through the running interpreter's sys.modules, and
    get_current() reports the interpreter of the current thread state.  So a
    callback defined in one interpreter but run in another reports the
    other one.
    """
    try:
        import _interpreters as interpreters  # 3.13+
    except ImportError:
        import _xxsubinterpreters as interpreters  # 3.11, 3.12
    current = interpreters.get_current()
    if isinstance(current, tuple):  # 3.13: (id, whence)
        current = current[0]
    return int(current)


def identity(environ=None):
    """Who served this: process, OS thread, interpreter (and the module's view)."""
    out = {
        "pid": os.getpid(),
        "thread": threading.get_native_id(),
        "interp": running_interpreter_id(),
    }
    if environ is not None:
        out["group"] = environ.get("pyinterp.application_group")
        out["interpreter"] = environ.get("pyinterp.interpreter")
        out["interpreter_id"] = environ.get("pyinterp.interpreter_id")
    return out


def json_body(obj):
    return json.dumps(obj, default=repr, sort_keys=True).encode("utf-8")


def json_response(start_response, obj, status="200 OK", headers=()):
    """Sends `obj` as JSON with a Content-Length; returns the body list."""
    body = json_body(obj)
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))] + list(headers))
    return [body]


def query(environ):
    """QUERY_STRING as a dict of last values."""
    from urllib.parse import parse_qsl
    return dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))


class CloseRecorder:
    """Remembers which response iterables were closed, per token, in this
    interpreter; a later request asks about a token."""

    def __init__(self):
        self._lock = threading.Lock()
        self._events = {}

    def record(self, token, event):
        with self._lock:
            self._events.setdefault(token, []).append(event)

    def events(self, token):
        with self._lock:
            return list(self._events.get(token, []))


def interpreter_marker():
    """A dict stored in this interpreter's sys.modules under a fixed name:
    created at first use, so it identifies the interpreter's module table."""
    name = "_pyinterp_test_marker"
    mod = sys.modules.get(name)
    if mod is None:
        import types
        mod = types.ModuleType(name)
        mod.created_in = running_interpreter_id()
        sys.modules[name] = mod
    return mod
