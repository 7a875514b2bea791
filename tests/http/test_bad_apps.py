"""Bad applications get a clear result and a log line, never a corrupted
response: exceptions, CR/LF/NUL in headers, non-bytes body items, bodies
shorter or longer than their Content-Length.  And wsgi.errors, sys.stdout and
sys.stderr go to the error log."""
import re
import socket
import uuid

import pytest

import harness
from conftest import start_shared_server

EXTRA = """
PyInterpScriptAlias /ex "{ex}" application-group=bad
PyInterpScriptAlias /hdr "{hdr}" application-group=bad
PyInterpScriptAlias /body "{body}" application-group=bad
PyInterpScriptAlias /cl "{cl}" application-group=bad
PyInterpScriptAlias /log "{log}" application-group=bad
PyInterpScriptAlias /log-main "{log}" application-group=%{{GLOBAL}}
""".format(ex=harness.app("bad_exception"), hdr=harness.app("bad_headers"), body=harness.app("bad_body"),
           cl=harness.app("content_length"), log=harness.app("logging"))

TRACEBACK = (r"PYI07\d\d", r"PYI0310")


@pytest.fixture(scope="module")
def server(request):
    return start_shared_server(request, "bad", extra=EXTRA, threads=4)


def token():
    return uuid.uuid4().hex[:12]


def raw_exchange(server, path, method="GET"):
    """Sends one request with Connection: close and returns every byte the
    server sent."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as s:
        s.sendall(("%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % (method, path)).encode())
        data = b""
        for _ in range(10000):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def still_serving(server):
    r = server.get("/ex/ok")
    assert r.status == 200 and r.body == b"still fine"


# ---------------------------------------------------------------- exceptions

def test_exception_gives_500_and_traceback_in_log(server, log_allow):
    log_allow(*TRACEBACK)
    t = token()
    start = server.log_size()
    r = server.get("/ex/raise?token=" + t)
    assert r.status == 500
    assert b"pyinterp-test-boom" not in r.body and b"Traceback" not in r.body
    text = server.wait_for_log(r"ZeroDivisionError: pyinterp-test-boom-" + t, start)
    assert text, server.log_text(start)
    log = server.log_text(start)
    assert re.search(r":error\].*Traceback \(most recent call last\)", log)
    assert re.search(r'File ".*bad_exception/app.wsgi", line \d+, in application', log)
    still_serving(server)


def test_exception_after_start_response_before_body(server, log_allow):
    log_allow(*TRACEBACK)
    t = token()
    start = server.log_size()
    r = server.get("/ex/raise-after-start?token=" + t)
    assert r.status == 500
    assert server.wait_for_log(r"LookupError: pyinterp-test-after-start-" + t, start)


@pytest.mark.parametrize("mode", ["none", "no-start-response"])
def test_broken_protocol_gives_500(server, mode, log_allow):
    log_allow(*TRACEBACK)
    start = server.log_size()
    r = server.get("/ex/" + mode)
    assert r.status == 500
    assert b"body without start_response" not in r.body
    assert server.wait_for_log(r"PYI07\d\d", start)


@pytest.mark.parametrize("status", ["200", "2000 OK", "abc OK", "20 OK", "200 OK%0D%0AX-Injected:%20yes",
                                    "100 Continue", "200%00OK"])
def test_bad_status_gives_500(server, status, log_allow):
    log_allow(*TRACEBACK)
    raw = raw_exchange(server, "/ex/bad-status?s=" + status.replace(" ", "%20"))
    assert raw.startswith(b"HTTP/1.1 500 "), raw[:200]
    assert b"X-Injected" not in raw and b"should not be sent" not in raw


# ---------------------------------------------------------------- headers

HEADER_CASES = ["cr-value", "lf-value", "crlf-value", "nul-value", "cr-name", "lf-name", "nul-name",
                "space-name", "hop-by-hop", "bytes-value", "non-latin1"]


@pytest.mark.parametrize("where", ["start", "exc-info"])
@pytest.mark.parametrize("case", HEADER_CASES)
def test_bad_header_gives_500_and_nothing_sent(server, case, where, log_allow):
    log_allow(*TRACEBACK)
    start = server.log_size()
    raw = raw_exchange(server, "/hdr/%s?where=%s" % (case, where))
    assert raw.startswith(b"HTTP/1.1 500 "), raw[:300]
    assert b"Injected" not in raw
    assert b"MUST-NOT-BE-SENT" not in raw
    assert b"X-Te" not in raw and b"X-Test" not in raw
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\x00" not in head
    assert server.wait_for_log(r"PYI07\d\d", start)


# ---------------------------------------------------------------- non-bytes body items

@pytest.mark.parametrize("mode", ["str-first", "int-first"])
def test_non_bytes_first_item_gives_500(server, mode, log_allow):
    log_allow(*TRACEBACK)
    start = server.log_size()
    raw = raw_exchange(server, "/body/" + mode)
    assert raw.startswith(b"HTTP/1.1 500 "), raw[:300]
    assert b"a str, not bytes" not in raw
    assert server.wait_for_log(r"TypeError|must be bytes", start)


@pytest.mark.parametrize("query", ["", "?cl=100"])
def test_non_bytes_after_headers_cuts_connection(server, query, log_allow):
    log_allow(*TRACEBACK)
    with server.connect() as c:
        c.send_request("GET", "/body/str-later" + query)
        r = c.read_response()
        assert r.status == 200
        assert not r.complete, r  # the client can tell the body is broken
        assert r.body == b"first-bytes;"
        assert c.closed_by_server()
    still_serving(server)


def test_non_bytes_in_list(server, log_allow):
    log_allow(*TRACEBACK)
    with server.connect() as c:
        c.send_request("GET", "/body/str-in-list")
        r = c.read_response()
        if r.status == 500:
            # Nothing had reached the network: a clean error page, none of
            # the application's body.
            assert b"x" * 10 not in r.body and b"Internal Server Error" in r.body
        else:
            assert not r.complete, r
            assert b"y" not in r.body
            assert c.closed_by_server()


# ---------------------------------------------------------------- Content-Length

@pytest.mark.parametrize("pieces", [1, 3])
def test_short_body_closes_connection(server, pieces, log_allow):
    """Declared 100, sent less: the connection is closed, never reused; a
    pipelined second request is not answered into the first body."""
    body = "short"
    with server.connect() as c:
        req = "GET /cl?cl=100&body=%s&pieces=%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % (body, pieces)
        c.send((req + "GET /ex/ok HTTP/1.1\r\nHost: localhost\r\n\r\n").encode())
        r = c.read_response()
        assert r.status == 200 and r.header("Content-Length") == "100"
        assert r.body == body.encode() * pieces
        assert not r.complete
        assert c.eof or c.closed_by_server()
    assert server.wait_for_log(r"PYI0503|shorter than its Content-Length")


@pytest.mark.parametrize("pieces", [1, 3])
def test_long_body_truncated(server, pieces):
    with server.connect() as c:
        r = c.request("GET", "/cl?cl=5&body=0123456789&pieces=%d" % pieces)
        assert r.status == 200 and r.body == b"01234" and r.complete
        # Nothing beyond the declared length was sent: the next response on
        # this connection (if it stays open) starts with a status line.
        if not c.closed_by_server(wait=0.3):
            r2 = c.request("GET", "/ex/ok")
            assert r2.status == 200 and r2.body == b"still fine"


def test_exact_content_length_keeps_connection(server):
    with server.connect() as c:
        for _ in range(3):
            r = c.request("GET", "/cl?cl=10&body=0123456789")
            assert r.status == 200 and r.body == b"0123456789"
        assert not c.closed_by_server(wait=0.2)


def test_zero_content_length_with_body(server):
    with server.connect() as c:
        r = c.request("GET", "/cl?cl=0&body=abc")
        assert r.status == 200 and r.body == b""
        if not c.closed_by_server(wait=0.3):
            assert c.request("GET", "/ex/ok").body == b"still fine"


# ---------------------------------------------------------------- logging

@pytest.mark.parametrize("base", ["/log", "/log-main"])
def test_wsgi_errors_to_error_log(server, base, log_allow):
    log_allow(r"pyinterp-test-")
    t = token()
    start = server.log_size()
    assert server.get("%s/errors?token=%s" % (base, t)).status == 200
    for marker in ("errors-%s" % t, "lines-%s-a" % t, "lines-%s-b" % t, "partial-%s" % t):
        assert server.wait_for_log(r"pyinterp-test-" + marker + r"$|pyinterp-test-" + marker + r"\n", start), \
            (marker, server.log_text(start))
    # Logged against the request.
    assert re.search(r"\[client 127\.0\.0\.1:\d+\].*pyinterp-test-errors-" + t, server.log_text(start))


@pytest.mark.parametrize("base", ["/log", "/log-main"])
def test_stdout_and_stderr_to_error_log(server, base, log_allow):
    log_allow(r"pyinterp-test-")
    t = token()
    start = server.log_size()
    assert server.get("%s/print?token=%s" % (base, t)).status == 200
    assert server.wait_for_log(r"pyinterp-test-stdout-" + t, start), server.log_text(start)
    assert server.wait_for_log(r"pyinterp-test-stderr-" + t, start), server.log_text(start)


def test_logging_module_to_wsgi_errors(server, log_allow):
    log_allow(r"pyinterp-test-")
    t = token()
    start = server.log_size()
    assert server.get("/log/logging?token=" + t).status == 200
    assert server.wait_for_log(r"pyinterp-test-logging-" + t, start)


def test_multiline_and_long_output(server, log_allow):
    log_allow(r"pyinterp-test-", r"PYI030\d: (stderr: )?x+$")
    t = token()
    start = server.log_size()
    assert server.get("/log/multiline?token=" + t).status == 200
    assert server.get("/log/long?token=" + t).status == 200
    assert server.wait_for_log(r"pyinterp-test-multi-%s-1" % t, start)
    assert server.wait_for_log(r"pyinterp-test-multi-%s-2" % t, start)
    assert server.wait_for_log(r"pyinterp-test-long-%s-x" % t, start)
    server.settle_log()
    text = server.log_text(start)
    # The first piece follows the marker; later pieces start a line of their own.
    xs = sum(len(m) for m in re.findall(r"x{100,}|(?<=stderr: )x+", text))
    assert xs >= 20000  # nothing lost, even if split over lines
    still_serving(server)
