"""Callbacks from foreign threads in httpd (issue 6): two application groups
each schedule pyinterp.call_soon/call_later callbacks and register
sqlite_changes change callbacks from request handlers; each group receives
only its own notifications, in its own interpreter, as recorded by the
callbacks in that interpreter's module state and read back by later
requests."""
import os
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import harness
import httpclient
from conftest import shared_sqlite_db

APP = harness.app("loop_notify")
GROUPS = {"/notify-a": "notify-a", "/notify-b": "notify-b"}
ROUNDS = 4       # schedule + write requests per group
ROWS = 3         # committed INSERTs per write request
TIMER_LABELS = ["soon", "0.1", "0.2", "0.3"]  # expected firing order per token


def python_module_dir():
    """<build>/python, where the sqlite_changes example is built
    ($PYINTERP_PYTHON_MODULE_DIR, set by tests/http/CMakeLists.txt)."""
    d = os.environ.get("PYINTERP_PYTHON_MODULE_DIR")
    if not d or not any(Path(d).glob("sqlite_changes*.so")):
        pytest.fail("the sqlite_changes example module was not found: set PYINTERP_PYTHON_MODULE_DIR to "
                    "the build's python directory (it is %r)" % d)
    if not harness.world_traversable(d):
        pytest.skip("%s is not readable by httpd's children (www-data)" % d)
    return Path(d)


@pytest.fixture
def database(work_root):
    return shared_sqlite_db(work_root, "loop_notify", "notify.db",
                            "CREATE TABLE notes (grp TEXT, token TEXT, i INTEGER)")


def wait_for(server, path, done, timeout=5.0):
    """Polls `path`?op=events until done(events) (at most `timeout` s);
    returns the last answer."""
    last = {}

    def check():
        last.update(server.get_json(path + "?op=events"))
        return done(last)

    httpclient.wait_until(check, timeout, 0.05)
    return last


def test_each_group_gets_its_own_timers_and_changes_in_its_own_interpreter(httpd, database):
    extra = """
PyInterpPythonPath "{pydir}"
SetEnv SQLITE_DB "{db}"
PyInterpScriptAlias /notify-a "{app}" application-group=notify-a
PyInterpScriptAlias /notify-b "{app}" application-group=notify-b
""".format(pydir=python_module_dir(), db=database, app=APP)
    server = httpd(name="loop_notify", extra=extra, threads=4)

    # Who serves each group: two distinct subinterpreters, as seen by
    # CPython, by the module's environ and by pyinterp.interpreter().
    info = {}
    for path, group in GROUPS.items():
        d = server.get_json(path + "?op=info")
        assert d["group"] == group, d
        assert d["interp"] == d["interpreter_id"] == d["import_interp"] == d["pyinterp"][1] != 0, d
        assert d["pyinterp"][0] == d["interpreter"], d
        assert d["pyinterp_origin"] == "built-in", d  # httpd's own pyinterp, not <build>/python's copy
        assert Path(d["sqlite_changes_file"]).parent == python_module_dir(), d
        info[path] = d
    ids = {p: d["interp"] for p, d in info.items()}
    assert ids["/notify-a"] != ids["/notify-b"], ids

    # Both groups schedule timers and write, interleaved, from several
    # client threads (so from several httpd worker threads).
    tokens = {p: [uuid.uuid4().hex for _ in range(ROUNDS)] for p in GROUPS}
    jobs = []
    for k in range(ROUNDS):
        for path in GROUPS:
            jobs.append((path, "schedule", tokens[path][k]))
            jobs.append((path, "write", tokens[path][k]))

    def run(job):
        path, op, token = job
        return job, server.get_json("%s?op=%s&token=%s&n=%d" % (path, op, token, ROWS))

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(run, jobs))
    request_threads = {p: set() for p in GROUPS}
    for (path, op, token), d in answers:
        assert d["group"] == GROUPS[path] and d["interp"] == d["interpreter_id"] == ids[path], d
        request_threads[path].add(d["thread"])
        if op == "schedule":
            assert d["cancel"] is True and d["cancelled"] is True, d
        else:
            assert d["dropped"] == 0, d

    # Every callback arrives (bounded wait), then nothing more does.
    want_timers = ROUNDS * len(TIMER_LABELS)
    want_changes = ROUNDS * ROWS
    events = {}
    for path in GROUPS:
        events[path] = wait_for(server, path, lambda e: len(e["timers"]) >= want_timers
                                and len(e["changes"]) >= want_changes)
    time.sleep(0.3)  # past every deadline, the cancelled one's included
    for path in GROUPS:
        events[path] = server.get_json(path + "?op=events")

    con = sqlite3.connect(database)
    rows = con.execute("SELECT rowid, grp, token, i FROM notes").fetchall()
    con.close()
    assert len(rows) == len(GROUPS) * want_changes, rows  # the rolled-back inserts are not there

    for path, group in GROUPS.items():
        e = events[path]
        assert e["interp"] == ids[path] and e["dropped"] == 0, e
        expect_where = (ids[path], [info[path]["interpreter"], ids[path], info[path]["pyinterp"][2]])

        # Timers: each token's, in deadline order, none cancelled, no other
        # group's, each exactly once, each in this group's interpreter, on a
        # loop thread (not an httpd worker that served a request).
        timers = e["timers"]
        assert len(timers) == want_timers, timers
        wrong = [t for t in timers if (t["interp"], t["pyinterp"]) != expect_where]
        assert not wrong, "timer callbacks of %s ran elsewhere than %r: %r" % (group, expect_where, wrong)
        by_token = {}
        for t in timers:
            assert t["kind"] in ("soon", "later"), t
            by_token.setdefault(t["token"], []).append(t["label"])
        assert sorted(by_token) == sorted(tokens[path]), (by_token, tokens[path])
        for token, labels in by_token.items():
            assert labels == TIMER_LABELS, (token, labels)
        assert not {t["thread"] for t in timers} & request_threads[path], (timers, request_threads[path])

        # Changes: exactly the rows this group committed through its own
        # connection (same database file as the other group), once each.
        changes = e["changes"]
        wrong = [c for c in changes if (c["interp"], c["pyinterp"]) != expect_where]
        assert not wrong, "change callbacks of %s ran elsewhere than %r: %r" % (group, expect_where, wrong)
        assert all(c["op"] == "INSERT" and c["table"] == "notes" for c in changes), changes
        got = sorted(c["rowid"] for c in changes)
        mine = sorted(r[0] for r in rows if r[1] == group)
        assert got == mine, (group, got, mine)
        assert {r[2] for r in rows if r[1] == group} == set(tokens[path])
        assert not {c["thread"] for c in changes} & request_threads[path]
