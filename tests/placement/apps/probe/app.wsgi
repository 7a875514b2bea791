# Says where it runs: the environ's placement keys and CPython's own view.
import apptest


def application(environ, start_response):
    info = apptest.identity(environ)
    info["placement"] = environ.get("pyinterp.placement")
    return apptest.json_response(start_response, info)
