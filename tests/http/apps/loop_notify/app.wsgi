# Callbacks from C threads into this application's own interpreter: served
# under two aliases with two application groups, each of which schedules
# pyinterp.call_soon/call_later callbacks and registers a sqlite_changes
# change callback (the example extension, whose writes and hooks run on a C
# thread of its own).  Every callback records, in this interpreter's module
# state, the interpreter it runs in as CPython and pyinterp see it; a later
# request reads the records back.
#
#   ?op=info                         who serves this group
#   ?op=schedule&token=T             call_soon + three call_later (0.3, 0.1,
#                                    0.2 s) + one call_later cancelled at once
#   ?op=write&token=T&n=N            N committed INSERTs into notes (one per
#                                    transaction) and one rolled back
#   ?op=events                       everything recorded in this interpreter
#
# SQLITE_DB (SetEnv) names the database, created by the test with a table
# notes(grp, token, i); both groups write to the same file.
import threading

import apptest
import pyinterp
import sqlite_changes

IMPORT_INTERP = apptest.running_interpreter_id()

_lock = threading.Lock()
TIMERS = []    # dicts: kind, token, label, interp, pyinterp, thread
CHANGES = []   # dicts: op, table, rowid, interp, pyinterp, thread
_db = [None]


def _where():
    """The interpreter and thread running the caller, asked of CPython and
    of the pyinterp module."""
    return {
        "interp": apptest.running_interpreter_id(),
        "pyinterp": list(pyinterp.interpreter()),
        "thread": threading.get_native_id(),
    }


def on_timer(kind, token, label):
    rec = dict(_where(), kind=kind, token=token, label=label)
    with _lock:
        TIMERS.append(rec)


def on_change(op, table, rowid):
    rec = dict(_where(), op=op, table=table, rowid=rowid)
    with _lock:
        CHANGES.append(rec)


def _connection(environ):
    # Opened by the first request that writes, from a request handler: the
    # change callback is registered in the interpreter running it.
    with _lock:
        if _db[0] is None:
            db = sqlite_changes.connect(environ["SQLITE_DB"])
            db.execute("PRAGMA busy_timeout = 10000")  # the other group writes too
            db.on_change(on_change)
            _db[0] = db
        return _db[0]


def application(environ, start_response):
    q = apptest.query(environ)
    op = q.get("op", "info")
    group = environ["pyinterp.application_group"]
    out = {"op": op, "group": group}
    out.update(apptest.identity(environ))
    out["pyinterp"] = list(pyinterp.interpreter())
    out["import_interp"] = IMPORT_INTERP
    if op == "info":
        out["pyinterp_origin"] = getattr(pyinterp.__spec__, "origin", None)
        out["sqlite_changes_file"] = sqlite_changes.__file__
    elif op == "schedule":
        token = q["token"]
        handles = [pyinterp.call_soon(on_timer, "soon", token, "soon")]
        for delay in (0.3, 0.1, 0.2):
            handles.append(pyinterp.call_later(delay, on_timer, "later", token, "%.1f" % delay))
        doomed = pyinterp.call_later(0.15, on_timer, "later", token, "cancelled")
        out["cancel"] = doomed.cancel()
        out["cancelled"] = doomed.cancelled()
    elif op == "write":
        token = q["token"]
        db = _connection(environ)
        for i in range(int(q.get("n", "3"))):
            db.execute("INSERT INTO notes (grp, token, i) VALUES ('%s', '%s', %d)" % (group, token, i))
        db.execute("BEGIN; INSERT INTO notes (grp, token, i) VALUES ('%s', '%s', -1); ROLLBACK"
                   % (group, token))
        db.flush()  # raises sqlite_changes.Error if a write failed
        out["dropped"] = db.dropped
    elif op == "events":
        with _lock:
            out["timers"] = list(TIMERS)
            out["changes"] = list(CHANGES)
        out["dropped"] = _db[0].dropped if _db[0] is not None else None
    else:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"unknown op\n"]
    return apptest.json_response(start_response, out)
