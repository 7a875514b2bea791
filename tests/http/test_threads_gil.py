"""The GIL is released around network I/O: while one request of an
interpreter waits for its client (a request body that does not come, a
response body the client does not read) or for the error log (a piped
logger that does not read), other requests of the same interpreter are
served at once."""
import socket
import threading
import time

import pytest

import harness
from conftest import new_dir, start_shared_server
from httpclient import Response

EXTRA = 'PyInterpScriptAlias /t "%s" application-group=gil\n' % harness.app("threads")


@pytest.fixture(scope="module")
def server(request):
    return start_shared_server(request, "gil", extra=EXTRA, threads=4)


# A GIL held across the stalled I/O would block /t/fast until the test
# un-stalls the client, which it does only afterwards: any bound well below
# the request timeout tells the two apart, also on a loaded machine.
FAST = 3.0


def fast_requests(server, n=5):
    """Seconds taken by each of n sequential /t/fast requests."""
    out = []
    for _ in range(n):
        began = time.monotonic()
        assert server.get("/t/fast", timeout=10).status == 200
        out.append(time.monotonic() - began)
    return out


def test_gil_released_while_waiting_for_request_body(server):
    server.get("/t/fast")  # interpreter created and script loaded
    with server.connect() as c:
        c.send_request("POST", "/t/read-body", [("Content-Length", "10")])
        c.send(b"01234")
        time.sleep(0.4)  # the application is now blocked in read()
        took = fast_requests(server)
        assert max(took) < FAST, took
        c.send(b"56789")
        r = c.read_response()
    assert r.status == 200
    d = r.json()
    assert d["length"] == 10 and d["waited"] >= 0.3


def test_gil_released_while_client_does_not_read(server, log_allow):
    log_allow(r"PYI07\d\d", r"PYI0310")
    c = server.connect()
    try:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.send_request("GET", "/t/big")
        c.read_head(Response())
        time.sleep(0.5)  # buffers fill up; the application blocks sending
        took = fast_requests(server)
        assert max(took) < FAST, took
    finally:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
    # The server recovers: the abandoned response ends, threads come back.
    assert max(fast_requests(server, 3)) < FAST


def test_gil_released_while_the_error_log_blocks(httpd, work_root):
    # A piped error log whose reader waits for a gate file: once the pipe is
    # full, an application writing to wsgi.errors blocks in httpd's log
    # write.  Its interpreter keeps serving meanwhile, and no line is lost.
    d = new_dir(work_root, "gated-log")
    gate, piped = d / "gate", d / "piped-error.log"
    logger = d / "gated-logger.sh"
    logger.write_text("#!/bin/sh\nwhile [ ! -e '%s' ]; do sleep 0.05; done\nexec cat >> '%s'\n" % (gate, piped))
    logger.chmod(0o755)
    server = httpd(name="gatedlog", threads=4, extra=EXTRA + 'ErrorLog "|%s"\n' % logger)
    try:
        server.get("/t/fast")  # interpreter created and script loaded
        lines = 300  # ~300 KiB, several times what a pipe holds
        got = {}
        writer = threading.Thread(target=lambda: got.update(r=server.get("/t/log?lines=%d" % lines, timeout=30)))
        writer.start()
        time.sleep(0.5)  # the application is now blocked writing to the log
        assert writer.is_alive()
        took = fast_requests(server)
        assert max(took) < FAST, took
    finally:
        gate.touch()
    writer.join(30)
    assert got["r"].status == 200 and got["r"].json()["lines"] == lines
    assert got["r"].json()["waited"] >= 0.4
    server.stop()  # the logger reads everything before it sees the pipe close
    logged = [line for line in piped.read_text(errors="replace").splitlines() if "pyinterp-log-line" in line]
    assert [int(line.split("pyinterp-log-line ")[1][:5]) for line in logged] == list(range(lines))
