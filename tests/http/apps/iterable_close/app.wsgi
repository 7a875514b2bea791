# Response iterables whose close() is recorded per token, on every path:
# normal end, an exception before or during iteration, a client that goes
# away.  GET /events?token=T reports what happened to token T.
import time

import apptest

RECORDER = apptest.CloseRecorder()


class Body:
    """An iterable (not a list) with close()."""

    def __init__(self, token, items, fail_at=None, delay=0.0):
        self.token = token
        self.items = items
        self.fail_at = fail_at
        self.delay = delay

    def __iter__(self):
        for i, item in enumerate(self.items):
            if i == self.fail_at:
                RECORDER.record(self.token, "raised")
                raise RuntimeError("pyinterp-test-iteration-failed")
            if self.delay:
                time.sleep(self.delay)
            RECORDER.record(self.token, "yield")
            yield item
        RECORDER.record(self.token, "exhausted")

    def close(self):
        RECORDER.record(self.token, "close")


class BrokenClose(Body):
    """Looking its close up raises (a property), not AttributeError."""

    @property
    def close(self):
        RECORDER.record(self.token, "close-looked-up")
        raise ValueError("pyinterp-test-close-lookup-failed")


class RaisingClose(Body):
    """close() raises after every body byte was produced."""

    def close(self):
        RECORDER.record(self.token, "close")
        raise RuntimeError("pyinterp-test-close-raised")


class ListBody(list):
    """A list subclass with close(): not a plain list, so close() is called."""

    def close(self):
        RECORDER.record(self.token, "close")


def application(environ, start_response):
    mode = environ["PATH_INFO"].strip("/")
    q = apptest.query(environ)
    token = q.get("token", "")
    if mode == "events":
        return apptest.json_response(start_response, RECORDER.events(token))
    start_response("200 OK", [("Content-Type", "text/plain")])
    if mode == "normal":
        return Body(token, [b"a", b"b", b"c"])
    if mode == "broken-close":
        return BrokenClose(token, [b"a", b"b"])
    if mode == "close-raises":
        return RaisingClose(token, [b"a", b"b"])
    if mode == "list-subclass":
        body = ListBody([b"l1", b"l2"])
        body.token = token
        return body
    if mode == "fail-first":
        return Body(token, [b"a"], fail_at=0)
    if mode == "fail-later":
        return Body(token, [b"a" * 100, b"b" * 100, b"c"], fail_at=2)
    if mode == "slow":
        # Bounded: at most 400 chunks of 16 KiB, 20 ms apart (8 s).
        return Body(token, [b"s" * 16384] * 400, delay=0.02)
    if mode == "generator":
        def gen():
            try:
                for i in range(400):
                    time.sleep(0.02)
                    yield b"g" * 16384
            finally:
                RECORDER.record(token, "generator-finally")
        return gen()
    raise KeyError(mode)
