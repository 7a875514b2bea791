# Body items that are not bytes: as the first item (nothing sent yet) and
# after bytes went out (headers sent: the connection must be cut).
import apptest


def application(environ, start_response):
    mode = environ["PATH_INFO"].strip("/")
    headers = [("Content-Type", "text/plain")]
    if "cl" in apptest.query(environ):
        headers.append(("Content-Length", apptest.query(environ)["cl"]))
    start_response("200 OK", headers)
    if mode == "str-first":
        return ["a str, not bytes"]
    if mode == "int-first":
        return [42]
    if mode == "str-later":
        def gen():
            yield b"first-bytes;"
            yield "then a str"
            yield b"never"
        return gen()
    if mode == "str-in-list":
        return [b"x" * 10, "y"]
    raise KeyError(mode)
