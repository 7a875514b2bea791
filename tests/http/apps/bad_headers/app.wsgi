# Headers that must never reach the wire: CR, LF or NUL in a name or value,
# a hop-by-hop header, non-str names and values.  The application does not
# catch what start_response raises, so the response must be a clean 500.
import apptest

CASES = {
    "cr-value": ("X-Test", "a\rInjected: yes"),
    "lf-value": ("X-Test", "a\nInjected: yes"),
    "crlf-value": ("X-Test", "a\r\nInjected: yes"),
    "nul-value": ("X-Test", "a\x00b"),
    "cr-name": ("X-Te\rst", "v"),
    "lf-name": ("X-Te\nst", "v"),
    "nul-name": ("X-Te\x00st", "v"),
    "space-name": ("X Test", "v"),
    "hop-by-hop": ("Connection", "close"),
    "bytes-value": ("X-Test", b"v"),
    "non-latin1": ("X-Test", "\u20ac"),
}


def application(environ, start_response):
    q = apptest.query(environ)
    name, value = CASES[environ["PATH_INFO"].strip("/")]
    where = q.get("where", "start")
    if where == "start":
        start_response("200 OK", [("Content-Type", "text/plain"), (name, value)])
        return [b"MUST-NOT-BE-SENT"]
    # Through exc_info before the body: the replacement headers are bad.
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("first")
    except ValueError:
        import sys
        start_response("500 Replaced", [(name, value)], sys.exc_info())
    return [b"MUST-NOT-BE-SENT"]
