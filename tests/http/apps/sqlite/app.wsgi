# The stdlib sqlite3 module in a subinterpreter: a user function, an
# aggregate, an authorizer and a trace callback, each recording the
# interpreter it runs in, on a file database (SQLITE_DB, set with SetEnv)
# that concurrent requests share.  sqlite3 calls these callbacks through
# PyGILState_Ensure, so this is where a wrongly attached thread shows.
import sqlite3
import threading

import apptest

IMPORT_INTERP = apptest.running_interpreter_id()


def application(environ, start_response):
    seen = []  # (callback, interpreter id)
    rid = apptest.running_interpreter_id
    token = apptest.query(environ).get("token", "")

    def who():
        seen.append(("function", rid()))
        return rid()

    class Total:
        def __init__(self):
            self.n = 0
            seen.append(("aggregate-init", rid()))

        def step(self, value):
            if len(seen) < 1000:
                seen.append(("aggregate-step", rid()))
            self.n += value

        def finalize(self):
            seen.append(("aggregate-finalize", rid()))
            return self.n

    def authorizer(action, arg1, arg2, dbname, source):
        if len(seen) < 1000:
            seen.append(("authorizer", rid()))
        return sqlite3.SQLITE_OK

    def trace(statement):
        if len(seen) < 1000:
            seen.append(("trace", rid()))

    con = sqlite3.connect(environ["SQLITE_DB"], timeout=30, isolation_level=None,
                          check_same_thread=True)
    try:
        con.create_function("who", 0, who)
        con.create_aggregate("total", 1, Total)
        con.set_authorizer(authorizer)
        con.set_trace_callback(trace)
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO hits (token, interp, v) VALUES (?, who(), 1)", (token,))
        con.execute("COMMIT")
        rows = con.execute("SELECT total(v) FROM hits").fetchone()[0]
        mine = con.execute("SELECT interp FROM hits WHERE token = ?", (token,)).fetchall()
        # A callback raising inside SQLite comes back as an exception here.
        con.create_function("boom", 0, lambda: 1 / 0)
        try:
            con.execute("SELECT boom()").fetchone()
            boom = "no error"
        except sqlite3.OperationalError as e:
            boom = str(e)
    finally:
        con.close()
    return apptest.json_response(start_response, {
        "import_interp": IMPORT_INTERP,
        "interp": rid(),
        "interpreter_id": environ.get("pyinterp.interpreter_id"),
        "thread": threading.get_native_id(),
        "seen": seen,
        "rows": rows,
        "stored_interp": [r[0] for r in mine],
        "boom": boom,
    })
