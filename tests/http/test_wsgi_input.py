"""wsgi.input: read(), read(n), readline(), readline(n), readlines(),
iteration; Content-Length and chunked request bodies; Expect: 100-continue;
bodies the application does not read; a client that stops sending."""
import hashlib
import os
import time

import pytest

import harness
from conftest import start_shared_server

EXTRA = """
PyInterpScriptAlias /in "{app}" application-group=input
PyInterpScriptAlias /limited "{app}" application-group=input
<Location /limited>
    LimitRequestBody 1000
</Location>
""".format(app=harness.app("input"))


@pytest.fixture(scope="module")
def server(request):
    return start_shared_server(request, "input", extra=EXTRA, threads=4)


def post(server, mode, body, query=""):
    r = server.request("POST", "/in/%s%s" % (mode, query), {"Content-Type": "application/octet-stream"}, body)
    assert r.status == 200, r
    return r.json()


def chunked(body, size):
    out = b""
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        out += b"%x\r\n%s\r\n" % (len(piece), piece)
    return out + b"0\r\n\r\n"


def send_chunked(server, mode, body, size=1000, extra_headers=()):
    with server.connect() as c:
        c.send_request("POST", "/in/" + mode, [("Transfer-Encoding", "chunked"), *extra_headers], close=True)
        c.send(chunked(body, size))
        r = c.read_response()
    assert r.status == 200, r
    return r.json()


def test_read_all(server):
    d = post(server, "read", b"hello\nworld\n")
    assert d["parts"] == ["hello\nworld\n", ""]
    assert d["types"] == ["bytes"]
    assert d["content_length"] == "12"


def test_read_sized(server):
    d = post(server, "read-n", b"0123456789abcdefghij", "?n=7")
    assert d["parts"] == ["0123456", "789abcd", "efghij"]


def test_readline(server):
    d = post(server, "readline", b"a\nbb\n\nccc")
    assert d["parts"] == ["a\n", "bb\n", "\n", "ccc"]


def test_readline_sized(server):
    d = post(server, "readline-n", b"abcde\nf\n", "?n=2")
    assert d["parts"] == ["ab", "cd", "e\n", "f\n"]


def test_readlines(server):
    d = post(server, "readlines", b"one\ntwo\nthree")
    assert d["parts"] == ["one\n", "two\n", "three"]


def test_iteration(server):
    d = post(server, "iter", b"x\ny\nz\n")
    assert d["parts"] == ["x\n", "y\n", "z\n"]


def test_mixed_calls_share_one_buffer(server):
    d = post(server, "mixed", b"line1\nABCDEFGHIJ\nrest1\nrest2")
    assert d["parts"] == ["line1\n", "ABCDE", "FGH", "IJ\n", "rest1\n", "rest2"]


def test_empty_body(server):
    d = post(server, "read", b"")
    assert d["sizes"] == [0, 0]


def test_get_without_body(server):
    r = server.get("/in/read")
    assert r.status == 200 and r.json()["sizes"] == [0, 0]


@pytest.mark.parametrize("mode,query", [("read", ""), ("read-n", "?n=65537"), ("read-n", "?n=1000"),
                                        ("readline", ""), ("readlines", ""), ("iter", "")])
def test_large_body(server, mode, query):
    body = os.urandom(3 << 20)  # 3 MiB, binary with random newlines
    d = post(server, mode, body, query)
    assert d["length"] == len(body)
    assert d["sha256"] == hashlib.sha256(body).hexdigest()


def test_readline_sized_on_large_lines(server):
    body = (b"z" * 100000 + b"\n") * 3
    d = post(server, "readline-n", body, "?n=30000")
    assert d["length"] == len(body)
    assert max(d["sizes"]) <= 30000


@pytest.mark.parametrize("mode", ["read", "readline", "iter", "read-n"])
def test_chunked_request_body(server, mode):
    body = b"".join(b"line %d of a chunked body\n" % i for i in range(2000))
    d = send_chunked(server, mode, body, size=777)
    assert d["length"] == len(body)
    assert d["sha256"] == hashlib.sha256(body).hexdigest()


def test_chunked_request_body_large(server):
    body = os.urandom(2 << 20)
    d = send_chunked(server, "read", body, size=65536 + 3)
    assert d["sha256"] == hashlib.sha256(body).hexdigest()


def test_expect_100_continue(server):
    body = b"the body after 100-continue\n" * 100
    with server.connect() as c:
        c.send_request("POST", "/in/read", [("Expect", "100-continue"), ("Content-Length", str(len(body)))],
                       close=True)
        interim = c.read_response(keep_interim=True)
        assert interim.status == 100, interim  # before the client sent any body
        c.send(body)
        r = c.read_response()
    assert r.status == 200, r
    assert r.json()["length"] == len(body)


def test_expect_100_continue_chunked(server):
    body = b"0123456789" * 5000
    with server.connect() as c:
        c.send_request("POST", "/in/read", [("Expect", "100-continue"), ("Transfer-Encoding", "chunked")],
                       close=True)
        interim = c.read_response(keep_interim=True)
        assert interim.status == 100, interim
        c.send(chunked(body, 4096))
        r = c.read_response()
    assert r.status == 200 and r.json()["length"] == len(body)


def test_unread_body_keeps_connection_usable(server):
    """The application ignores the body; the next request on the same
    connection is parsed correctly (the body was discarded, not taken for
    the next request line)."""
    with server.connect() as c:
        for i in range(3):
            r = c.request("POST", "/in/ignore", body=b"GET /bogus HTTP/1.1\r\n\r\n" * 100)
            assert r.status == 200, r
        c.send_request("POST", "/in/ignore", [("Transfer-Encoding", "chunked")])
        c.send(chunked(b"q" * 100000, 999))
        r = c.read_response()
        assert r.status == 200, r
        r = c.request("POST", "/in/read", body=b"after")
        assert r.status == 200 and r.json()["parts"] == ["after", ""]


def test_slow_sender(server):
    body = b"s" * 5000
    with server.connect() as c:
        c.send_request("POST", "/in/read", [("Content-Length", str(len(body)))], close=True)
        for i in range(0, len(body), 1000):
            c.send(body[i:i + 1000])
            time.sleep(0.05)
        r = c.read_response()
    assert r.status == 200 and r.json()["length"] == len(body)


def test_client_stops_sending(server, log_allow):
    """The client announces 10000 bytes, sends 10 and goes away: no crash,
    no hang, the server goes on serving."""
    log_allow(r"PYI07\d\d", r"PYI0310")  # the application's read raised: its traceback
    with server.connect() as c:
        c.send_request("POST", "/in/read", [("Content-Length", "10000")])
        c.send(b"0123456789")
        time.sleep(0.2)
    time.sleep(0.3)
    d = post(server, "read", b"still serving")
    assert d["parts"][0] == "still serving"


@pytest.mark.parametrize("body", [b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n"],
                         ids=["bad-size", "missing-crlf"])
def test_malformed_chunked_body_gets_httpds_400_alone(server, body, log_allow):
    # httpd's chunk filter answers 400 when wsgi.input reads a malformed
    # chunked body; the application's exception from read() must not add a
    # 500 page to that response, and the log says why the read failed.
    log_allow(r"PYI0403: ")
    start = server.settle_log()
    with server.connect() as c:
        c.send_request("POST", "/in/read", [("Transfer-Encoding", "chunked")])
        c.send(body)
        r = c.read_response()
        assert r.status == 400, r
        assert b"500" not in r.body and b"Internal Server Error" not in r.body, r.body
        # Nothing follows the 400 on the connection.
        assert c.closed_by_server(wait=3.0)
        assert c.buf == b""
    assert server.wait_for_log(r"PYI0403: .*malformed", start)
    log = server.log_text(start, server.settle_log())
    assert "PYI0402" not in log and "PYI0702" not in log and "PYI0704" not in log


def ran(server, token):
    return server.get_json("/in/ran?which=" + token)["ran"]


def test_declared_body_over_limit_gets_413_before_the_application(server, log_allow):
    """Content-Length above LimitRequestBody: 413 at once, the application
    never runs (as httpd's own handlers answer); within the limit it runs."""
    with server.connect() as c:
        c.send_request("POST", "/limited/read?token=big", [("Content-Length", "5000")])
        r = c.read_response()
        assert r.status == 413, r
        assert b"Internal Server Error" not in r.body
    assert not ran(server, "big")
    assert server.wait_for_log(r"PYI0404: request body of 5000 bytes exceeds LimitRequestBody 1000")
    r = server.request("POST", "/limited/read?token=small", {}, b"x" * 1000)
    assert r.status == 200 and r.json()["length"] == 1000
    assert ran(server, "small")


def test_chunked_body_over_limit_gets_httpds_413(server, log_allow):
    log_allow(r"PYI0403: ")
    with server.connect() as c:
        c.send_request("POST", "/limited/read?token=chunked", [("Transfer-Encoding", "chunked")])
        c.send(chunked(b"y" * 5000, 1000))
        r = c.read_response()
        assert r.status == 413, r
