# Output meant for httpd's error log: wsgi.errors, print() to sys.stdout
# and sys.stderr, a line without a newline, writelines(), the logging module.
import logging
import sys

import apptest


def application(environ, start_response):
    t = apptest.query(environ).get("token", "")
    mode = environ["PATH_INFO"].strip("/")
    if mode == "errors":
        environ["wsgi.errors"].write("pyinterp-test-errors-%s\n" % t)
        environ["wsgi.errors"].writelines(["pyinterp-test-lines-%s-a\n" % t, "pyinterp-test-lines-%s-b\n" % t])
        environ["wsgi.errors"].write("pyinterp-test-partial-%s" % t)  # no newline: flushed at the end
        environ["wsgi.errors"].flush()
    elif mode == "print":
        print("pyinterp-test-stdout-%s" % t)
        print("pyinterp-test-stderr-%s" % t, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
    elif mode == "logging":
        log = logging.getLogger("pyinterp-test")
        if not log.handlers:
            log.addHandler(logging.StreamHandler(environ["wsgi.errors"]))
        log.propagate = False
        log.warning("pyinterp-test-logging-%s", t)
        log.handlers.clear()
    elif mode == "multiline":
        print("pyinterp-test-multi-%s-1\npyinterp-test-multi-%s-2" % (t, t), file=sys.stderr)
    elif mode == "long":
        print("pyinterp-test-long-%s-" % t + "x" * 20000, file=sys.stderr)
    return apptest.json_response(start_response, {"ok": True})
