# Slow requests and stacks on demand: /sleep?seconds=N sleeps in
# sleeps_for_a_while; /hold?flag=PATH waits in holds_until_released until the
# file PATH exists; /spin?seconds=N holds the GIL in one C call (sum over an
# iterator) for about N seconds and says when that call ended (its
# time.monotonic(), the clock the tests read too); /fail raises; /missing answers 404; anything
# else answers at once.  Every answer says which process and interpreter
# served it.
import itertools
import os
import time

import apptest


def sleeps_for_a_while(seconds):
    time.sleep(seconds)


def holds_until_released(flag, limit):
    end = time.monotonic() + limit
    while not os.access(flag, os.F_OK) and time.monotonic() < end: time.sleep(0.01)


def holds_the_gil(seconds):
    # sum() over itertools.repeat runs in C without ever checking the eval
    # breaker: nothing makes it release the GIL before it is done.
    # Calibrated to the machine: about `seconds` long.
    n = int(seconds * _rate())
    return sum(itertools.repeat(1, n))


_rates = []


def _rate():
    # This thread's CPU time, not the clock: the GIL may pass to another
    # thread between the two readings, and that wait must not count (it made
    # the rate tiny and the hold short when requests arrived together).
    if not _rates:
        began = time.thread_time()
        sum(itertools.repeat(1, 2_000_000))
        _rates.append(2_000_000 / max(time.thread_time() - began, 1e-6))
    return _rates[0]


def application(environ, start_response):
    mode = environ["PATH_INFO"].strip("/")
    q = apptest.query(environ)
    if mode == "sleep":
        sleeps_for_a_while(float(q.get("seconds", "1")))
    elif mode == "hold":
        holds_until_released(q["flag"], float(q.get("limit", "30")))
    elif mode == "spin":
        holds_the_gil(float(q.get("seconds", "1")))
        return apptest.json_response(start_response, dict(apptest.identity(environ), held_until=time.monotonic()))
    elif mode == "fail":
        raise RuntimeError("this request fails on purpose")
    elif mode == "missing":
        return apptest.json_response(start_response, apptest.identity(environ), status="404 Not Found")
    return apptest.json_response(start_response, apptest.identity(environ))
