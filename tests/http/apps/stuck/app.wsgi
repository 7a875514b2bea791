# Requests that run too long, in the ways PATH_INFO names: spinning in pure
# Python (forever, or for ?s= seconds), spinning under `except Exception`,
# spinning after the headers are out, sleeping in C.  /ok reports who
# serves (process, thread, interpreter); /events?token= what the interrupted requests' finally
# blocks saw.
import time

import apptest

RECORDER = apptest.CloseRecorder()


def spin_forever():
    n = 0
    while True:
        n += 1


def spin_for(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def spin_catching():
    while True:
        try:
            spin_for(0.05)
        except Exception:  # does not swallow RequestTimeout (a BaseException)
            pass


def application(environ, start_response):
    mode = environ["PATH_INFO"].strip("/")
    q = apptest.query(environ)
    token = q.get("token", "")
    if mode == "ok":
        return apptest.json_response(start_response, apptest.identity(environ))
    if mode == "events":
        return apptest.json_response(start_response, RECORDER.events(token))
    if mode == "after-headers":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"started\n")
        spin_forever()
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        if mode == "spin-forever":
            spin_forever()
        elif mode == "spin":
            spin_for(float(q.get("s", "1")))
        elif mode == "spin-catching":
            spin_catching()
        elif mode == "sleep":
            time.sleep(float(q.get("s", "1")))
        else:
            raise KeyError(mode)
    except BaseException as e:
        RECORDER.record(token, type(e).__module__ + "." + type(e).__name__)
        raise
    finally:
        RECORDER.record(token, "finally")
    return [b"done\n"]
