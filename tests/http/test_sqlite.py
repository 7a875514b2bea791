"""The stdlib sqlite3 module in subinterpreters: create_function,
create_aggregate, set_authorizer (and set_trace_callback) callbacks all run
in the application's own interpreter, with a file database shared by
concurrent requests, while other groups share the same worker threads."""
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

import harness
from conftest import shared_sqlite_db, start_shared_server


@pytest.fixture(scope="module")
def database(work_root):
    return shared_sqlite_db(work_root, "sqlite", "shared.db",
                            "CREATE TABLE hits (token TEXT, interp INTEGER, v INTEGER)")


@pytest.fixture(scope="module")
def server(request, database):
    extra = """
SetEnv SQLITE_DB "{db}"
PyInterpScriptAlias /sqlite-a "{app}" application-group=sqlite-a
PyInterpScriptAlias /sqlite-b "{app}" application-group=sqlite-b
PyInterpScriptAlias /sqlite-main "{app}" application-group=%{{GLOBAL}}
""".format(db=database, app=harness.app("sqlite"))
    return start_shared_server(request, "sqlite", extra=extra, threads=3)


def run(server, path):
    tok = uuid.uuid4().hex
    d = server.get_json("%s?token=%s" % (path, tok))
    return d


def check(d, main=False):
    assert d["interp"] == d["import_interp"] == d["interpreter_id"], d
    assert (d["interp"] == 0) == main
    kinds = {k for k, _ in d["seen"]}
    assert {"function", "aggregate-init", "aggregate-step", "aggregate-finalize", "authorizer",
            "trace"} <= kinds, kinds
    wrong = [(k, i) for k, i in d["seen"] if i != d["interp"]]
    assert not wrong, "callbacks ran in another interpreter than %d: %r" % (d["interp"], wrong[:10])
    assert d["stored_interp"] == [d["interp"]]  # who() inside the INSERT
    assert "division by zero" in d["boom"] or "user-defined function raised exception" in d["boom"], d["boom"]


def test_callbacks_run_in_the_subinterpreter(server):
    check(run(server, "/sqlite-a"))


def test_callbacks_in_two_groups_and_main(server):
    a, b, m = run(server, "/sqlite-a"), run(server, "/sqlite-b"), run(server, "/sqlite-main")
    check(a)
    check(b)
    check(m, main=True)
    assert a["interp"] != b["interp"]


def test_concurrent_requests_share_the_file_database(server, database):
    paths = ["/sqlite-a", "/sqlite-b", "/sqlite-main"] * 16

    con = sqlite3.connect(database)
    before = con.execute("SELECT count(*) FROM hits").fetchone()[0]
    con.close()
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda p: (p, run(server, p)), paths))
    ids = {}
    for path, d in results:
        check(d, main=(path == "/sqlite-main"))
        ids.setdefault(path, set()).add(d["interp"])
    assert all(len(v) == 1 for v in ids.values()), ids
    con = sqlite3.connect(database)
    after = con.execute("SELECT count(*) FROM hits").fetchone()[0]
    per_interp = dict(con.execute("SELECT interp, count(*) FROM hits GROUP BY interp").fetchall())
    con.close()
    assert after == before + len(paths)
    for path, interp in ((p, next(iter(s))) for p, s in ids.items()):
        assert per_interp[interp] >= 16
    # Threads were shared between the groups.
    threads = {}
    for path, d in results:
        threads.setdefault(d["thread"], set()).add(path)
    assert any(len(s) > 1 for s in threads.values()), threads
