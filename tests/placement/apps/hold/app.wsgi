# Two requests meet across interpreters: /hold?f=PATH keeps this
# interpreter's GIL (per_gil_ext.hold never releases it) until PATH exists
# (10 s at most; ?s=N), having created PATH.held with the GIL held;
# /touch?f=PATH creates PATH, running Python.  A hold sees its file appear
# only if the touch ran under another GIL.
import apptest
import per_gil_ext


def application(environ, start_response):
    q = apptest.query(environ)
    info = apptest.identity(environ)
    info["placement"] = environ.get("pyinterp.placement")
    mode = environ.get("PATH_INFO", "").strip("/")
    if mode == "hold":
        info["met"] = per_gil_ext.hold(q["f"], float(q.get("s", "10")), q["f"] + ".held")
    elif mode == "touch":
        with open(q["f"], "w") as f:
            f.write("touched by interpreter %d\n" % info["interp"])
    return apptest.json_response(start_response, info)
