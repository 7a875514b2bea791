# atexit handlers at a normal stop: one registered at import prints a line
# naming its interpreter; /spin adds one that never returns (interrupted
# after its bound, then the others still run); /unregister adds one and
# takes it back (it must not run).
import atexit
import sys

import apptest

INTERP = apptest.running_interpreter_id()


def report(name):
    print("pyinterp-test-atexit-ran name=%s interp=%d" % (name, INTERP))
    sys.stdout.flush()


def spinning_handler():
    while True:
        pass


def taken_back():
    report("unregistered")


atexit.register(report, "first")


def application(environ, start_response):
    mode = environ["PATH_INFO"].strip("/")
    if mode == "spin":
        atexit.register(spinning_handler)
    elif mode == "unregister":
        atexit.register(taken_back)
        atexit.unregister(taken_back)
    elif mode == "decorator":
        @atexit.register
        def decorated():
            report("decorated")
        assert callable(decorated) and decorated.__name__ == "decorated"
    return apptest.json_response(start_response, apptest.identity(environ))
