# wsgi.file_wrapper over a real file (from its start or from an offset),
# over a file-like object without a file descriptor, with a Content-Length
# shorter than the file; close() of the wrapped object is recorded.
import io

import apptest

RECORDER = apptest.CloseRecorder()


class RecordingFile(io.FileIO):
    """A real file; reading it through Python is recorded, so a test can tell
    the file went to httpd as a file (descriptor), not through Python."""
    token = ""

    def read(self, *args):
        RECORDER.record(self.token, "file-read")
        return super().read(*args)

    def readinto(self, buffer):
        RECORDER.record(self.token, "file-read")
        return super().readinto(buffer)

    def close(self):
        if not self.closed:
            RECORDER.record(self.token, "file-closed")
        super().close()


class RecordingBytes(io.BytesIO):
    token = ""

    def close(self):
        RECORDER.record(self.token, "bytes-closed")
        super().close()


def application(environ, start_response):
    mode = environ["PATH_INFO"].strip("/")
    q = apptest.query(environ)
    token = q.get("token", "")
    if mode == "events":
        return apptest.json_response(start_response, RECORDER.events(token))
    if mode == "type":
        w = environ["wsgi.file_wrapper"](io.BytesIO(b"x"))
        return apptest.json_response(start_response, {
            "type": type(w).__name__, "module": type(w).__module__, "iterable": hasattr(w, "__iter__")})
    headers = [("Content-Type", "application/octet-stream")]
    if mode == "filelike":
        f = RecordingBytes(q["data"].encode() * int(q.get("times", "1")))
        f.token = token
    else:
        raw = RecordingFile(q["path"], "rb")
        raw.token = token
        f = raw
        if mode == "offset":
            f.seek(int(q["offset"]))
        elif mode == "short-cl":
            headers.append(("Content-Length", q["cl"]))
        elif mode == "buffered":
            # A buffered file whose logical position (tell) is behind the
            # descriptor's: the file is served from the logical position.
            f = io.BufferedReader(raw)
            f.read(int(q.get("offset", "0")))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](f, int(q.get("blksize", "8192")))
