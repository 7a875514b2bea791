# Dumps the WSGI environ as JSON: every value (non-JSON ones by type name),
# the type of every value, and a few facts about the interpreter.
import sys

import apptest


def describe(value):
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, tuple):
        return list(value)
    return "<%s>" % type(value).__name__


def application(environ, start_response):
    return apptest.json_response(start_response, {
        "environ": {k: describe(v) for k, v in environ.items()},
        "types": {k: type(v).__name__ for k, v in environ.items()},
        "input_methods": [m for m in ("read", "readline", "readlines", "__iter__")
                          if hasattr(environ["wsgi.input"], m)],
        "errors_methods": [m for m in ("write", "writelines", "flush")
                           if hasattr(environ["wsgi.errors"], m)],
        "file_wrapper_callable": callable(environ.get("wsgi.file_wrapper")),
        "identity": apptest.identity(environ),
        "sys_path": sys.path,
        "sys_prefix": sys.prefix,
    })
