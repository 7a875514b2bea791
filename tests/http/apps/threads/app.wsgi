# For the GIL tests: /fast answers at once; /read-body blocks in
# wsgi.input.read() while the client holds back its body; /big streams a
# large body to a client that does not read it; /log writes more lines to
# wsgi.errors than a stalled piped error log takes.  All in one interpreter, so
# a GIL held across network I/O would stall /fast.
import time

import apptest


def application(environ, start_response):
    mode = environ["PATH_INFO"].strip("/")
    if mode == "fast":
        return apptest.json_response(start_response, dict(apptest.identity(environ), t=time.time()))
    if mode == "read-body":
        began = time.time()
        data = environ["wsgi.input"].read()
        return apptest.json_response(start_response, {"length": len(data), "waited": time.time() - began})
    if mode == "big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        block = b"b" * 65536
        return (block for _ in range(1024))  # 64 MiB, far more than socket buffers hold
    if mode == "log":
        n = int(apptest.query(environ)["lines"])
        began = time.time()
        errors = environ["wsgi.errors"]
        for i in range(n):
            errors.write("pyinterp-log-line %05d %s\n" % (i, "x" * 1000))
        return apptest.json_response(start_response, {"lines": n, "waited": time.time() - began})
    raise KeyError(mode)
