# A script meant for PyInterpImportScript: it notes when, where and how
# many times it was executed, so a test can tell it was loaded at child
# start (long before the first request) and not loaded again.
import os
import time

import apptest

IMPORTED_AT = time.time()
IMPORT_INTERP = apptest.running_interpreter_id()
_marker = apptest.interpreter_marker()
_marker.preload_executions = getattr(_marker, "preload_executions", 0) + 1


def application(environ, start_response):
    return apptest.json_response(start_response, dict(
        apptest.identity(environ),
        imported_at=IMPORTED_AT,
        now=time.time(),
        import_interp=IMPORT_INTERP,
        import_pid=os.getpid(),
        executions=_marker.preload_executions,
    ))
