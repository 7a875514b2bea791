# Applications that fail: an exception before start_response, after it, a
# result that is not iterable, no start_response at all, a bad status.
import apptest


def application(environ, start_response):
    mode = environ["PATH_INFO"].strip("/")
    token = apptest.query(environ).get("token", "")
    if mode == "raise":
        raise ZeroDivisionError("pyinterp-test-boom-" + token)
    if mode == "raise-after-start":
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise LookupError("pyinterp-test-after-start-" + token)
    if mode == "none":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return None
    if mode == "no-start-response":
        return [b"body without start_response"]
    if mode == "bad-status":
        start_response(apptest.query(environ)["s"], [("Content-Type", "text/plain")])
        return [b"should not be sent"]
    if mode == "ok":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"still fine"]
    raise KeyError(mode)
