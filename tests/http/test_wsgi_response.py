"""Responses: start_response (status, headers, exc_info before and after the
headers are out, a second call), the write() callable, any iterable, close()
on every path (errors and client disconnects included), wsgi.file_wrapper,
HEAD."""
import hashlib
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

import harness
from conftest import new_dir, start_shared_server
from httpclient import Response, wait_until

EXTRA = """
PyInterpScriptAlias /sr "{sr}" application-group=response
PyInterpScriptAlias /write "{write}" application-group=response
PyInterpScriptAlias /it "{it}" application-group=response
PyInterpScriptAlias /fw "{fw}" application-group=response
""".format(sr=harness.app("start_response"), write=harness.app("write"), it=harness.app("iterable_close"),
           fw=harness.app("file_wrapper"))


@pytest.fixture(scope="module")
def server(request):
    return start_shared_server(request, "response", extra=EXTRA, threads=4)


def token():
    return uuid.uuid4().hex[:12]


def events(server, base, tok, until=None, timeout=5.0):
    """The close() events recorded for a token (polling until `until` shows)."""
    def get():
        got = server.get_json("%s/events?token=%s" % (base, tok))
        return got if until is None or until in got else None
    return wait_until(get, timeout) or server.get_json("%s/events?token=%s" % (base, tok))


# ---------------------------------------------------------------- start_response

def test_status_and_headers(server):
    r = server.get("/sr/ok")
    assert r.status == 200 and r.body == b"hello"
    assert [v for k, v in r.headers if k.lower() == "x-multi"] == ["one", "two"]
    assert r.header("X-Latin1") == "caf\xe9"
    assert r.header("Content-Type") == "text/plain"


@pytest.mark.parametrize("status", ["404 Not Found", "201 Created", "418 I'm a teapot", "299 Custom Reason",
                                    "503 Service Unavailable"])
def test_status_line_passed_through(server, status):
    r = server.get("/sr/status?s=" + status.replace(" ", "%20").replace("'", "%27"))
    assert r.status == int(status[:3])
    assert r.reason == status[4:]
    assert r.body == b"status body"


def test_exc_info_before_body_replaces_headers(server):
    r = server.get("/sr/exc-info-before")
    assert r.status == 503 and r.reason == "Replaced"
    assert r.header("X-Second") == "yes" and r.header("X-First") is None
    assert r.body == b"replaced body"


def test_exc_info_after_headers_reraises(server):
    r = server.get("/sr/exc-info-after")
    assert r.status == 200
    assert r.body == b"partial;reraised-same"
    assert r.complete


def test_exc_info_after_headers_propagated_cuts_connection(server, log_allow):
    log_allow(r"PYI07\d\d", r"PYI0310")
    with server.connect() as c:
        c.send_request("GET", "/sr/exc-info-after-propagates")
        r = c.read_response()
        assert r.status == 200
        assert not r.complete, r  # no terminating chunk: the client knows it is broken
        assert r.body.startswith(b"partial;")
        assert c.closed_by_server()
    assert server.wait_for_log(r"pyinterp-test-exc-info-propagated", 0)


@pytest.mark.parametrize("kind", ["str", "nones", "short", "mismatch"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_exc_info_that_is_not_an_exc_info_tuple_raises(server, kind, when):
    r = server.get("/sr/exc-info-invalid?kind=%s&when=%s" % (kind, when))
    assert r.status == 200 and r.complete
    assert r.body == (b"partial;" if when == "after" else b"") + b"raised TypeError"


def test_second_start_response_without_exc_info_raises(server):
    r = server.get("/sr/second-call")
    assert r.status == 200
    assert r.body.startswith(b"raised ")


def test_head(server):
    with server.connect() as c:
        r = c.request("HEAD", "/sr/head")
        assert r.status == 200 and r.body == b""
        assert r.header("X-Method") == "HEAD"
        assert r.header("Content-Length") == "1000"
        # Nothing else was sent: the next response on the connection parses.
        r2 = c.request("GET", "/sr/head")
        assert r2.status == 200 and r2.body == b"x" * 1000 and r2.header("X-Method") == "GET"


def test_head_with_generator(server):
    with server.connect() as c:
        r = c.request("HEAD", "/sr/generator")
        assert r.status == 200 and r.body == b""
        assert c.request("GET", "/sr/ok").body == b"hello"


def test_empty_body(server):
    r = server.get("/sr/empty")
    assert r.status == 200 and r.body == b"" and r.complete


def test_no_content(server):
    with server.connect() as c:
        r = c.request("GET", "/sr/no-content")
        assert r.status == 204 and r.body == b""
        assert c.request("GET", "/sr/ok").body == b"hello"


def test_generator_body(server):
    r = server.get("/sr/generator")
    assert r.status == 200 and r.complete
    assert r.body == b"".join(b"%03d," % i for i in range(100))


def test_keep_alive_after_streamed_response(server):
    with server.connect() as c:
        for _ in range(5):
            r = c.request("GET", "/sr/generator")
            assert r.status == 200 and r.complete and len(r.body) == 400


def blocks_body(n, size, seed="s"):
    """What /sr/blocks returns (tests/http/apps/start_response/app.wsgi)."""
    return b"".join((b"%s:%06d;" % (seed.encode(), i) * (size // 8 + 1))[:size] for i in range(n))


@pytest.mark.parametrize("query", ["n=20&size=10000", "n=20&size=10000&cl=1", "n=9&size=100000&tuple=1",
                                   "n=3&size=1", "n=40&size=70000&cl=1", "n=300&size=100",
                                   "n=30&size=8191", "n=30&size=8192"])
def test_list_of_many_blocks(server, query):
    # More blocks than are held back at once, and more bytes than are; blocks
    # just under and at the size that is kept by reference instead of copied.
    q = dict(kv.split("=") for kv in query.split("&"))
    r = server.get("/sr/blocks?" + query)
    assert r.status == 200 and r.complete
    assert r.body == blocks_body(int(q["n"]), int(q["size"]))


def test_list_body_to_a_slow_reader(server):
    # 24 MiB that the client starts reading late: httpd writes what the
    # socket takes while the handler waits (GIL released, so other requests
    # in the same interpreter run and reuse memory meanwhile), and keeps a
    # copy of what it still has when the handler returns and the
    # application's blocks are released.
    n, size = 24, 1 << 20
    expected = hashlib.sha256(blocks_body(n, size, "slow")).hexdigest()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /sr/blocks?n=%d&size=%d&seed=slow HTTP/1.1\r\nHost: localhost\r\n"
                     b"Connection: close\r\n\r\n" % (n, size))
        time.sleep(0.5)
        for i in range(10):
            assert server.get("/sr/blocks?n=12&size=100000&seed=other%d" % i).status == 200
        chunks = []
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        sock.close()
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    if b"chunked" in head.lower():
        body = b"".join(dechunk(body))
    assert len(body) == n * size
    assert hashlib.sha256(body).hexdigest() == expected


def dechunk(data):
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return
        yield rest[:size]
        data = rest[size + 2:]


# ---------------------------------------------------------------- write()

def test_write_then_iterable(server):
    r = server.get("/write/mixed")
    assert r.status == 200 and r.body == b"w1;w2;i1;i2;"


def test_write_only(server):
    r = server.get("/write/only")
    assert r.body == b"".join(b"%02d" % i for i in range(50))


def test_write_rejects_str(server):
    assert server.get("/write/non-bytes").body == b"write(str) raised TypeError"


def test_write_large(server):
    r = server.get("/write/large?blocks=64")
    assert r.complete and r.body == (bytes(range(256)) * 256) * 64


# ---------------------------------------------------------------- iterables and close()

def test_close_after_normal_iteration(server):
    t = token()
    r = server.get("/it/normal?token=" + t)
    assert r.body == b"abc"
    assert events(server, "/it", t, "close") == ["yield", "yield", "yield", "exhausted", "close"]


def test_close_when_iteration_fails_before_body(server, log_allow):
    log_allow(r"PYI07\d\d", r"PYI0310")
    t = token()
    r = server.get("/it/fail-first?token=" + t)
    assert r.status == 500
    assert b"pyinterp-test-iteration-failed" not in r.body  # no traceback to the client
    assert events(server, "/it", t, "close") == ["raised", "close"]


def cut_after_headers(server, mode):
    """GETs /it/<mode> expecting a 200 whose body is cut and a connection
    the server closes; returns the token."""
    t = token()
    with server.connect() as c:
        c.send_request("GET", "/it/%s?token=%s" % (mode, t))
        r = c.read_response()
        assert r.status == 200 and not r.complete
        assert c.closed_by_server()
    return t


def test_close_when_iteration_fails_after_body(server, log_allow):
    log_allow(r"PYI07\d\d", r"PYI0310")
    t = cut_after_headers(server, "fail-later")
    assert events(server, "/it", t, "close") == ["yield", "yield", "raised", "close"]


def test_close_of_a_list_subclass(server):
    t = token()
    r = server.get("/it/list-subclass?token=" + t)
    assert r.status == 200 and r.body == b"l1l2"
    assert events(server, "/it", t, "close") == ["close"]


@pytest.mark.parametrize("mode,event", [("close-raises", "close"), ("broken-close", "close-looked-up")])
@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_close_that_raises_after_the_body_completes_the_response(server, mode, event, version, log_allow):
    """close() (or looking it up) raises after the whole body was produced:
    a clean-up error does not break a complete response.  The response ends
    normally (the final chunk is sent, the connection stays usable) and the
    exception is in the error log."""
    log_allow(r"PYI0706", r"PYI0310")
    t = token()
    start = server.settle_log()
    with server.connect() as c:
        c.send_request("GET", "/it/%s?token=%s" % (mode, t), version=version,
                       headers=[("Connection", "keep-alive")])
        r = c.read_response()
        assert r.status == 200 and r.body == b"ab"
        if version == "HTTP/1.1":  # chunked, the final chunk sent, kept alive
            assert r.chunked and r.complete
            assert not c.closed_by_server(wait=0.3)
            assert c.request("GET", "/sr/ok").body == b"hello"
    assert events(server, "/it", t, event) == ["yield", "yield", "exhausted", event]
    assert server.wait_for_log(r"PYI0706: the application's close\(\) raised after the whole body", start)
    assert server.wait_for_log(r"pyinterp-test-close-(raised|lookup-failed)", start)
    assert "PYI0702" not in server.log_text(start)


@pytest.mark.parametrize("mode,last", [("slow", "close"), ("generator", "generator-finally")])
def test_close_when_client_disconnects(server, mode, last, log_allow):
    """The client reads the start of a long streamed body and goes away: the
    application's close() is called (and its generator finalised) soon,
    long before the body would have ended."""
    log_allow(r"PYI07\d\d", r"PYI0310")
    t = token()
    c = server.connect()
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.send_request("GET", "/it/%s?token=%s" % (mode, t))
    c.read_head(Response())
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()  # RST
    began = time.monotonic()
    got = events(server, "/it", t, last, timeout=6.0)
    assert last in got, got
    assert time.monotonic() - began < 6.0
    if mode == "slow":
        assert got.count("yield") < 400 and "exhausted" not in got


# ---------------------------------------------------------------- wsgi.file_wrapper

@pytest.fixture(scope="module")
def data_file(work_root):
    path = new_dir(work_root, "files") / "data.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    harness.make_readable(path)
    return path


def test_file_wrapper_type(server):
    d = server.get_json("/fw/type")
    assert d["iterable"] is True


def test_file_wrapper_whole_file(server, data_file):
    t = token()
    r = server.get("/fw/file?path=%s&token=%s" % (data_file, t))
    assert r.status == 200 and r.complete
    assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(data_file.read_bytes()).hexdigest()
    # Sent by httpd from the descriptor (a file bucket): Python never read it.
    assert events(server, "/fw", t, "file-closed") == ["file-closed"]


def test_file_wrapper_from_offset(server, data_file):
    t = token()
    r = server.get("/fw/offset?path=%s&offset=1000&token=%s" % (data_file, t))
    assert r.body == data_file.read_bytes()[1000:]
    assert events(server, "/fw", t, "file-closed") == ["file-closed"]


def test_file_wrapper_buffered_file_logical_position(server, data_file):
    t = token()
    r = server.get("/fw/buffered?path=%s&offset=10&token=%s" % (data_file, t))
    assert r.body == data_file.read_bytes()[10:]
    # One read: the application's own (which filled the buffer).
    assert events(server, "/fw", t, "file-closed") == ["file-read", "file-closed"]


def test_file_wrapper_short_content_length(server, data_file, log_allow):
    with server.connect() as c:
        r = c.request("GET", "/fw/short-cl?path=%s&cl=5000" % data_file)
        assert r.status == 200 and r.body == data_file.read_bytes()[:5000]
        # Truncated, not corrupted: the next response on the connection is clean.
        if not c.closed_by_server(wait=0.3):
            assert c.request("GET", "/sr/ok").body == b"hello"


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
@pytest.mark.parametrize("offset", [0, 1000])
def test_file_wrapper_without_content_length_gets_the_files(server, data_file, version, offset):
    # No Content-Length from the application: the file's size from its
    # position, not a chunked (1.1) or close-delimited (1.0) body.
    size = data_file.stat().st_size - offset
    with server.connect() as c:
        c.send_request("GET", "/fw/offset?path=%s&offset=%d" % (data_file, offset), version=version)
        r = c.read_response()
        assert r.status == 200 and r.complete
        assert r.header("Content-Length") == str(size)
        assert r.header("Transfer-Encoding") is None
        assert r.body == data_file.read_bytes()[offset:]


def test_file_wrapper_file_like_without_fileno(server):
    t = token()
    r = server.get("/fw/filelike?data=abc&times=5000&blksize=1000&token=" + t)
    assert r.status == 200 and r.body == b"abc" * 5000
    assert events(server, "/fw", t, "bytes-closed") == ["bytes-closed"]


def test_file_wrapper_head(server, data_file):
    with server.connect() as c:
        r = c.request("HEAD", "/fw/file?path=%s" % data_file)
        assert r.status == 200 and r.body == b""
        assert c.request("GET", "/sr/ok").body == b"hello"


def test_file_wrapper_many_concurrent(server, data_file):
    want = hashlib.sha256(data_file.read_bytes()).hexdigest()

    def one(_):
        return hashlib.sha256(server.get("/fw/file?path=%s" % data_file).body).hexdigest()

    with ThreadPoolExecutor(6) as pool:
        assert set(pool.map(one, range(12))) == {want}


def test_file_wrapper_truncated_while_sent_is_logged(server, work_root, log_allow):
    """The file shrinks while httpd sends it: the connection is cut (the
    client never takes the short body for a whole one), a warning names the
    file, and the server goes on serving."""
    log_allow(r"PYI0504")
    size = 64 * 1024 * 1024
    path = new_dir(work_root, "truncated") / "shrinks.bin"
    with open(path, "wb") as f:
        f.truncate(size)
    harness.make_readable(path)
    start = server.settle_log()
    with server.connect() as c:
        c.send_request("GET", "/fw/file?path=%s" % path)
        r = Response()
        c.read_head(r)
        assert r.status == 200 and r.header("Content-Length") == str(size)
        # Not reading: httpd fills the socket buffers and waits, far from
        # the end of the file, when the file is cut short.
        time.sleep(0.5)
        os.truncate(path, 1000)
        body = c._read_exact(size)
        assert len(body) < size and c.eof
    assert server.wait_for_log(r"\[pyinterp:warn\].*PYI0504: sending file '%s'" % path, start), \
        server.log_text(start)
    assert server.get("/sr/ok").body == b"hello"
