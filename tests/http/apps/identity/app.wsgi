# Reports which process, OS thread and interpreter served the request, as
# seen by CPython (apptest.running_interpreter_id) and as announced by the
# module (pyinterp.* environ keys), plus per-interpreter and per-thread
# state: a module global set at import, a sys.modules marker, a
# threading.local counter (lives in the cached thread state) and a plain
# per-thread counter to compare it with.
import sys
import threading
import time

import apptest

IMPORT_INTERP = apptest.running_interpreter_id()
IMPORT_MODULES_ID = id(sys.modules)
_local = threading.local()
_per_thread = {}
_lock = threading.Lock()
_requests = [0]


def application(environ, start_response):
    q = apptest.query(environ)
    if "sleep" in q:
        time.sleep(min(float(q["sleep"]), 5.0))
    ident = apptest.identity(environ)
    _local.count = getattr(_local, "count", 0) + 1
    with _lock:
        _per_thread[ident["thread"]] = _per_thread.get(ident["thread"], 0) + 1
        thread_count = _per_thread[ident["thread"]]
        _requests[0] += 1
        requests = _requests[0]
    ident.update(
        import_interp=IMPORT_INTERP,
        modules_same=IMPORT_MODULES_ID == id(sys.modules),
        marker_interp=apptest.interpreter_marker().created_in,
        local_count=_local.count,
        thread_count=thread_count,
        requests=requests,
        script_name=environ["SCRIPT_NAME"],
        env_group=environ.get("PYGROUP"),
        loaded=sorted(m for m in ("flask", "django", "sqlite3") if m in sys.modules),
    )
    return apptest.json_response(start_response, ident)
