# The write() callable returned by start_response, alone and mixed with the
# returned iterable; write() of a non-bytes value.
import apptest


def application(environ, start_response):
    mode = environ["PATH_INFO"].strip("/")
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    if mode == "mixed":
        write(b"w1;")
        write(b"")
        write(b"w2;")
        return [b"i1;", b"i2;"]
    if mode == "only":
        for i in range(50):
            write(b"%02d" % i)
        return []
    if mode == "non-bytes":
        try:
            write("text")
        except TypeError:
            return [b"write(str) raised TypeError"]
        return [b"write(str) accepted"]
    if mode == "large":
        block = bytes(range(256)) * 256  # 64 KiB
        for _ in range(int(apptest.query(environ).get("blocks", "16"))):
            write(block)
        return []
    raise KeyError(mode)
