# Reads wsgi.input in the way PATH_INFO names and reports what it got.
import hashlib

import apptest

LIMIT = 1 << 16  # bound on calls, far above any body the tests send
RAN = set()  # ?token= of every request the application saw


def chunks_by(fn):
    out = []
    for _ in range(LIMIT):
        data = fn()
        if not data:
            return out
        out.append(data)
    raise RuntimeError("wsgi.input never reported the end of the body")


def application(environ, start_response):
    inp = environ["wsgi.input"]
    how = environ.get("PATH_INFO", "")
    n = int(apptest.query(environ).get("n", "7"))
    RAN.add(apptest.query(environ).get("token"))
    if how == "/ran":
        return apptest.json_response(start_response, {"ran": apptest.query(environ)["which"] in RAN})
    if how == "/read":
        parts = [inp.read()]
        parts.append(inp.read())  # at the end: b""
    elif how == "/read-n":
        parts = chunks_by(lambda: inp.read(n))
    elif how == "/readline":
        parts = chunks_by(inp.readline)
    elif how == "/readline-n":
        parts = chunks_by(lambda: inp.readline(n))
    elif how == "/readlines":
        parts = inp.readlines()
    elif how == "/iter":
        parts = [line for line in inp]
    elif how == "/mixed":
        parts = [inp.readline(), inp.read(5), inp.readline(3)] + inp.readlines()
    elif how == "/ignore":
        parts = []
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"unknown input mode\n"]
    data = b"".join(parts)
    return apptest.json_response(start_response, {
        "parts": [p.decode("latin-1") for p in parts] if len(data) < 10000 else None,
        "sizes": [len(p) for p in parts],
        "types": sorted({type(p).__name__ for p in parts}),
        "length": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "content_length": environ.get("CONTENT_LENGTH"),
        "transfer_encoding": environ.get("HTTP_TRANSFER_ENCODING"),
    })
