# For the stop and graceful-restart tests: a slow request, Python threads
# the application starts and never stops (daemon and non-daemon), and an
# atexit hook that reports a clean interpreter shutdown on stdout.
import atexit
import sys
import threading
import time

import apptest

INTERP = apptest.running_interpreter_id()
_threads = []


def _goodbye():
    print("pyinterp-test-atexit interp=%d" % INTERP)
    sys.stdout.flush()


atexit.register(_goodbye)


def _forever(stop_after):
    end = time.time() + stop_after
    while time.time() < end:
        time.sleep(0.05)


def application(environ, start_response):
    mode = environ["PATH_INFO"].strip("/")
    q = apptest.query(environ)
    if mode == "sleep":
        time.sleep(min(float(q.get("s", "1")), 30.0))
    elif mode == "threads":
        # A daemon thread and a non-daemon thread, both running for 60 s:
        # far longer than any stop may take.
        for daemon in (True, False):
            t = threading.Thread(target=_forever, args=(60.0,), daemon=daemon)
            t.start()
            _threads.append(t)
    return apptest.json_response(start_response, apptest.identity(environ))
