# An application using only sqlite3 (CPython's _sqlite3 calls its callbacks
# through PyGILState_Ensure, synchronously): it stays in its subinterpreter,
# and its callbacks run there.  The interpreter a callback runs in is asked of
# CPython by tests/http/pylib/apptest.py (on the suite's PyInterpPythonPath),
# which knows that 3.13's _interpreters.get_current() returns (id, whence).
import json
import sqlite3

from apptest import running_interpreter_id


def application(environ, start_response):
    con = sqlite3.connect(":memory:")
    con.create_function("where_am_i", 0, running_interpreter_id)
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
