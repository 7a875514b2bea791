"""A small HTTP/1.1 client over raw sockets, for the HTTP tests.

http.client hides what these tests look at (interim 100 responses, chunked
framing, a body cut short, whether the server closed a keep-alive
connection), so requests are written and responses parsed by hand.  Every
socket operation has a timeout; every loop is bounded by the data it reads.
"""
import json
import socket

# Polling with a bound, shared with the httpd harness (mod/private_httpd.py,
# put on sys.path by harness.py).
from private_httpd import wait_until  # noqa: F401

DEFAULT_TIMEOUT = 20.0


class ResponseError(AssertionError):
    pass


class Response:
    def __init__(self):
        self.version = ""
        self.status = 0
        self.reason = ""
        self.headers = []        # [(name, value)] as received
        self.body = b""
        self.complete = True     # False: the body ended before its framing said
        self.chunked = False
        self.interim = []        # 1xx status codes seen before this response

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_names(self):
        return [k.lower() for k, _ in self.headers]

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError as e:
            raise ResponseError("not JSON (status %d): %r" % (self.status, self.body[:500])) from e

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Response %d %s headers=%r body=%r complete=%s>" % (
            self.status, self.reason, self.headers, self.body[:200], self.complete)


class Connection:
    """One client connection to 127.0.0.1:port."""

    def __init__(self, port, timeout=DEFAULT_TIMEOUT, host="127.0.0.1"):
        self.port = port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- sending

    def send(self, data):
        self.sock.sendall(data)

    def send_request(self, method, path, headers=None, body=None, host="localhost", close=False,
                     version="HTTP/1.1"):
        """Writes a request.  `headers` is a list of (name, value) or a dict;
        a Content-Length is added for a bytes body unless one is given or the
        request says Transfer-Encoding."""
        hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        names = {k.lower() for k, _ in hdrs}
        if "host" not in names and host is not None:
            hdrs.insert(0, ("Host", host))
        if body is not None and "content-length" not in names and "transfer-encoding" not in names:
            hdrs.append(("Content-Length", str(len(body))))
        if close and "connection" not in names:
            hdrs.append(("Connection", "close"))
        head = "%s %s %s\r\n" % (method, path, version)
        head += "".join("%s: %s\r\n" % (k, v) for k, v in hdrs) + "\r\n"
        self.send(head.encode("latin-1") + (body or b""))

    # -- receiving

    def _fill(self):
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise ResponseError("header line longer than 1 MiB")
            if not self._fill():
                return None
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read_exact(self, n):
        """Up to n bytes; fewer only at EOF."""
        while len(self.buf) < n:
            if not self._fill():
                break
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _read_to_eof(self, limit=1 << 28):
        while len(self.buf) < limit and self._fill():
            pass
        data, self.buf = self.buf, b""
        return data

    def read_head(self, resp):
        line = self._read_line()
        if line is None:
            if not self.buf:
                raise NoResponse("connection closed before a status line")
            raise ResponseError("connection closed inside a status line (got %r)" % self.buf[:200])
        parts = line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ResponseError("bad status line %r" % line)
        resp.version, resp.status = parts[0], int(parts[1])
        resp.reason = parts[2] if len(parts) > 2 else ""
        resp.headers = []
        for _ in range(1000):
            line = self._read_line()
            if line is None:
                raise ResponseError("connection closed inside the response headers")
            if line == b"":
                return resp
            k, _, v = line.decode("latin-1").partition(":")
            resp.headers.append((k.strip(), v.strip()))
        raise ResponseError("more than 1000 header lines")

    def read_response(self, head_request=False, keep_interim=False):
        """Reads one response (skipping 1xx interim responses, recorded in
        .interim).  The body follows the framing; a body cut short by EOF sets
        complete=False."""
        resp = Response()
        for _ in range(10):
            self.read_head(resp)
            if 100 <= resp.status < 200 and resp.status != 101:
                resp.interim.append(resp.status)
                if keep_interim:
                    return resp
                continue
            break
        if head_request or resp.status in (204, 304):
            return resp
        te = (resp.header("Transfer-Encoding") or "").lower()
        cl = resp.header("Content-Length")
        if "chunked" in te:
            resp.chunked = True
            resp.body, resp.complete = self._read_chunked()
        elif cl is not None:
            n = int(cl)
            resp.body = self._read_exact(n)
            resp.complete = len(resp.body) == n
        else:
            resp.body = self._read_to_eof()
        return resp

    def _read_chunked(self):
        body = []
        for _ in range(1 << 20):
            line = self._read_line()
            if line is None:
                return b"".join(body), False
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ResponseError("bad chunk size line %r" % line)
            if size == 0:
                for _ in range(100):  # trailers
                    t = self._read_line()
                    if t is None:
                        return b"".join(body), False
                    if t == b"":
                        return b"".join(body), True
                raise ResponseError("too many trailer lines")
            data = self._read_exact(size)
            body.append(data)
            if len(data) < size:
                return b"".join(body), False
            if self._read_exact(2) != b"\r\n":
                return b"".join(body), False
        raise ResponseError("too many chunks")

    def request(self, method, path, headers=None, body=None, **kw):
        self.send_request(method, path, headers, body, **kw)
        return self.read_response(head_request=(method == "HEAD"))

    def closed_by_server(self, wait=3.0):
        """True if the server closed the connection (EOF) within `wait`
        seconds with nothing more to read; False if it stays open."""
        if self.buf:
            return False
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(1)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(DEFAULT_TIMEOUT)
        if data:
            self.buf += data
            return False
        self.eof = True
        return True


class NoResponse(ResponseError):
    """The server closed the connection before any byte of a response."""


class KeepAlive:
    """Sequential requests over persistent connections, reconnecting the way
    HTTP clients do when the server closed an idle connection just as a
    request went out (httpd may close idle keep-alive connections when its
    workers are busy).  Counts reconnections in .reconnects."""

    def __init__(self, port, timeout=DEFAULT_TIMEOUT):
        self.port = port
        self.timeout = timeout
        self.conn = None
        self.sent = 0
        self.reconnects = 0

    def request(self, method, path, headers=None, body=None):
        for _ in range(5):
            if self.conn is None:
                self.conn = Connection(self.port, timeout=self.timeout)
                self.sent = 0
            reused = self.sent > 0
            try:
                self.sent += 1
                resp = self.conn.request(method, path, headers, body)
            except (NoResponse, ConnectionResetError, BrokenPipeError):
                self.close()
                if not reused:
                    raise
                self.reconnects += 1
                continue
            if (resp.header("Connection") or "").lower() == "close":
                self.close()  # the server said so (MaxKeepAliveRequests, say)
            return resp
        raise ResponseError("no response after 5 reconnections")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def request(port, method, path, headers=None, body=None, timeout=DEFAULT_TIMEOUT, **kw):
    """One request on a fresh connection (closed afterwards)."""
    with Connection(port, timeout=timeout) as c:
        return c.request(method, path, headers, body, close=True, **kw)


def get(port, path, headers=None, **kw):
    return request(port, "GET", path, headers, **kw)


def get_json(port, path, headers=None, expect_status=200, **kw):
    r = get(port, path, headers, **kw)
    if r.status != expect_status:
        raise ResponseError("GET %s: expected %d, got %r" % (path, expect_status, r))
    return r.json()
