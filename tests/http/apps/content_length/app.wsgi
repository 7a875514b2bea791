# A declared Content-Length that does not match the body: shorter (the
# connection must close) and longer (the body is cut at the declared size).
import apptest


def application(environ, start_response):
    q = apptest.query(environ)
    declared = q.get("cl")
    body = q.get("body", "").encode()
    pieces = int(q.get("pieces", "1"))
    headers = [("Content-Type", "text/plain")]
    if declared is not None:
        headers.append(("Content-Length", declared))
    start_response("200 OK", headers)
    if pieces == 1:
        return [body]
    return (body for _ in range(pieces))
