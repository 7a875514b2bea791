# The application tests/deb/test_deb.py deploys under /var/www/app: it says
# where it runs (interpreter, process, user, Python) and, at /log, writes a
# line to wsgi.errors (the site's ErrorLog), to sys.stderr and to sys.stdout
# (the server's).
import json
import os
import sys


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/log":
        print("deb-test: to wsgi.errors", file=environ["wsgi.errors"])
        print("deb-test: to stderr", file=sys.stderr, flush=True)
        print("deb-test: to stdout", flush=True)
    body = json.dumps({
        "served_by": ("mod_wsgi" if "mod_wsgi.version" in environ
                      else "mod_pyinterp" if "pyinterp.interpreter_id" in environ else "?"),
        "group": environ.get("pyinterp.application_group"),
        "interpreter_id": environ.get("pyinterp.interpreter_id"),
        "pid": os.getpid(),
        "uid": os.getuid(),
        "python": "%d.%d.%d" % sys.version_info[:3],
        "executable_prefix": sys.base_prefix,
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
