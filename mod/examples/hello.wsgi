# A minimal WSGI application: a short page naming the interpreter
# (application group) that served it.  Run it with:
#     mod/pyinterp serve mod/examples/hello.wsgi
import html
import os
import sys
import threading


def application(environ, start_response):
    group = environ.get("pyinterp.application_group", "?")
    interp = environ.get("pyinterp.interpreter", "?")
    interp_id = environ.get("pyinterp.interpreter_id", "?")
    placement = {"own": "its own GIL", "shared": "the GIL it shares with the main interpreter",
                 "main": "the main interpreter's GIL"}.get(environ.get("pyinterp.placement"), "?")
    rows = [
        ("application group", group if group else "%{GLOBAL} (main interpreter)"),
        ("interpreter", f"{interp} (id {interp_id})"),
        ("GIL", placement),
        ("process / thread", f"{os.getpid()} / {threading.get_ident()}"),
        ("Python", sys.version.split()[0]),
        ("SCRIPT_NAME / PATH_INFO", f"{environ.get('SCRIPT_NAME')!r} / {environ.get('PATH_INFO')!r}"),
        ("wsgi.multithread / multiprocess", f"{environ['wsgi.multithread']} / {environ['wsgi.multiprocess']}"),
    ]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>\n" for k, v in rows)
    page = (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>pyinterp</title></head>\n"
        f"<body><h1>Hello from interpreter {html.escape(interp)}</h1>\n<table>\n{body}</table></body></html>\n"
    ).encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(page)))])
    return [page]
