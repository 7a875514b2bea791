# start_response: status and headers as given, exc_info before and after
# the headers went out, a second call without exc_info, HEAD.
import sys

import apptest


def ok(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Multi", "one"),
                              ("X-Multi", "two"), ("X-Latin1", "caf\xe9")])
    return [b"hello"]


def status(environ, start_response):
    start_response(apptest.query(environ)["s"], [("Content-Type", "text/plain")])
    return [b"status body"]


def exc_info_before(environ, start_response):
    # An error after start_response but before any body: a second call with
    # exc_info replaces the status and headers.
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "yes")])
    try:
        raise KeyError("before-body")
    except KeyError:
        start_response("503 Replaced", [("Content-Type", "text/plain"), ("X-Second", "yes")],
                       sys.exc_info())
    return [b"replaced body"]


def exc_info_after(environ, start_response):
    # After the headers are out, start_response(..., exc_info) re-raises the
    # very exception it was given; the application catches it here and says so.
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"partial;")
    try:
        raise KeyError("after-body")
    except KeyError as e:
        original = e
        try:
            start_response("500 Too Late", [("Content-Type", "text/plain")], sys.exc_info())
        except KeyError as again:
            return [b"reraised-same" if again is original else b"reraised-other"]
    return [b"not-reraised"]


def exc_info_after_propagates(environ, start_response):
    # The same, letting the re-raised exception escape: the connection is cut.
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"partial;")
    try:
        raise KeyError("pyinterp-test-exc-info-propagated")
    except KeyError:
        start_response("500 Too Late", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"not-reraised"]


BAD_EXC_INFO = {
    "str": "bogus",
    "nones": (None, None, None),  # sys.exc_info() outside an except block
    "short": (KeyError, KeyError("x")),
    "mismatch": (KeyError, ValueError("x"), None),
}


def exc_info_invalid(environ, start_response):
    # exc_info that is not None and not a (type, value, traceback) tuple
    # raises TypeError at once, before the headers went out or after.
    q = apptest.query(environ)
    after = q.get("when") == "after"
    if after:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"partial;")
    try:
        start_response("500 Replaced", [("Content-Type", "text/plain")], BAD_EXC_INFO[q["kind"]])
    except TypeError:
        outcome = b"raised TypeError"
    except BaseException as e:  # noqa: B902 -- whatever else it did is the failure
        outcome = ("raised " + type(e).__name__).encode()
    else:
        outcome = b"accepted"
    if not after:
        start_response("200 OK", [("Content-Type", "text/plain")])
    return [outcome]


def second_call(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        start_response("201 Created", [("Content-Type", "text/plain")])
    except Exception as e:  # PEP 3333: an error without exc_info
        return [("raised " + type(e).__name__).encode()]
    return [b"second call accepted"]


def head(environ, start_response):
    body = b"x" * 1000
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                              ("X-Method", environ["REQUEST_METHOD"])])
    return [body]


def empty(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return []


def no_content(environ, start_response):
    start_response("204 No Content", [])
    return []


def generator(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    for i in range(100):
        yield b"%03d," % i


def blocks_body(n, size, seed):
    """n distinct blocks of `size` bytes; tests/http rebuilds the same."""
    return [(b"%s:%06d;" % (seed.encode(), i) * (size // 8 + 1))[:size] for i in range(n)]


def blocks(environ, start_response):
    # A list (or tuple) of many large blocks made for this request only: the
    # server holds the one reference to them while they are sent.
    q = apptest.query(environ)
    body = blocks_body(int(q["n"]), int(q["size"]), q.get("seed", "s"))
    headers = [("Content-Type", "application/octet-stream")]
    if q.get("cl") == "1":
        headers.append(("Content-Length", str(sum(map(len, body)))))
    start_response("200 OK", headers)
    return tuple(body) if q.get("tuple") == "1" else body


ROUTES = {f.__name__.replace("_", "-"): f for f in [
    ok, status, exc_info_before, exc_info_after, exc_info_after_propagates, exc_info_invalid, second_call, head,
    empty, no_content, generator, blocks]}


def application(environ, start_response):
    return ROUTES[environ["PATH_INFO"].strip("/")](environ, start_response)
