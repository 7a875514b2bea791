# For the fairness tests between application groups: /spin runs pure Python
# (never releasing the GIL by itself) until /stop or for ?seconds=N; /state
# says whether a spin runs in this interpreter; /fast answers at once.  Served
# in several groups of one child process: a spin in one group must not hold
# off the requests of the others.
import threading
import time

import apptest

_state = {"spinning": 0, "stop": False}
_lock = threading.Lock()


def spin(seconds):
    with _lock:
        _state["spinning"] += 1
        _state["stop"] = False
    began = time.monotonic()
    end = began + seconds
    n = 0
    while time.monotonic() < end and not _state["stop"]:
        n += 1
    with _lock:
        _state["spinning"] -= 1
    return {"iterations": n, "stopped": _state["stop"], "seconds": time.monotonic() - began}


def application(environ, start_response):
    mode = environ["PATH_INFO"].strip("/")
    if mode == "spin":
        seconds = float(apptest.query(environ).get("seconds", "30"))
        return apptest.json_response(start_response, dict(spin(seconds), **apptest.identity(environ)))
    if mode == "state":
        return apptest.json_response(start_response, {"spinning": _state["spinning"]})
    if mode == "stop":
        _state["stop"] = True
        return apptest.json_response(start_response, {"stop": True})
    if mode == "fast":
        return apptest.json_response(start_response, apptest.identity(environ))
    raise KeyError(mode)
