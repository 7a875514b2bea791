# An application whose extension (sg_gilstate) calls back from its own
# pthread through PyGILState_Ensure: it needs the main interpreter.
import json
import sys

import sg_gilstate

MARK = "gilstate-app"
# The application's own state, in the interpreter it was loaded in.
sys.__dict__.setdefault("sg_marks", set()).add(MARK)


def callback():
    import sys  # the sys of the interpreter the callback runs in
    return MARK in getattr(sys, "sg_marks", ())


def application(environ, start_response):
    interp, saw = sg_gilstate.run(callback)
    body = json.dumps({
        "interp": environ["pyinterp.interpreter_id"],
        "group": environ["pyinterp.application_group"],
        "callback_interp": interp,
        "callback_saw_app_state": saw == "True",
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
