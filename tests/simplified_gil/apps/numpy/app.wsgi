# An application importing numpy (Debian's python3-numpy): numpy's core
# extension imports PyGILState_Ensure, so it is routed to main.
import json

import numpy


def application(environ, start_response):
    body = json.dumps({
        "interp": environ["pyinterp.interpreter_id"],
        "group": environ["pyinterp.application_group"],
        "sum": int(numpy.arange(10).sum()),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
