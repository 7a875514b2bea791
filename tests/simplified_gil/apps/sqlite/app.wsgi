# An application using only sqlite3 (CPython's _sqlite3 calls its callbacks
# through PyGILState_Ensure, synchronously): it stays in its subinterpreter,
# and its callbacks run there.
import json
import sqlite3


def current_interpreter():
    try:
        import _xxsubinterpreters as interpreters  # 3.11, 3.12
    except ImportError:
        import _interpreters as interpreters  # 3.13
    return int(interpreters.get_current())


def application(environ, start_response):
    con = sqlite3.connect(":memory:")
    con.create_function("where_am_i", 0, current_interpreter)
    con.execute("CREATE TABLE t (x)")
    con.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
    seen = [row[0] for row in con.execute("SELECT where_am_i() FROM t")]
    con.close()
    body = json.dumps({
        "interp": environ["pyinterp.interpreter_id"],
        "group": environ["pyinterp.application_group"],
        "callback_interps": seen,
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
