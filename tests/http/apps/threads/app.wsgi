# For the GIL tests: /fast answers at once; /read-body blocks in
# wsgi.input.read() while the client holds back its body; /big streams a
# large body to a client that does not read it.  All in one interpreter, so
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
    raise KeyError(mode)
