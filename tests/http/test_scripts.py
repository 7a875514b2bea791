"""PyInterpImportScript (preloading at child start) and
PyInterpScriptReloading (a changed script is executed again, or not)."""
import os
import re
import time

import pytest

import harness
from conftest import start_shared_server

PRELOAD = harness.app("preload")
BROKEN = harness.app("preload", "broken.wsgi")
TEMPLATE = (harness.APPS / "reload" / "app.wsgi.in").read_text()
GROWTH = (harness.APPS / "reload" / "growth.wsgi.in").read_text()

PRELOAD_EXTRA = """
PyInterpImportScript "{pre}" application-group=pre
PyInterpImportScript "{pre}" application-group=%{{GLOBAL}}
PyInterpImportScript "{broken}" application-group=pre-broken
PyInterpScriptAlias /pre "{pre}" application-group=pre
PyInterpScriptAlias /pre-main "{pre}" application-group=%{{GLOBAL}}
PyInterpScriptAlias /lazy "{pre}" application-group=lazy
""".format(pre=PRELOAD, broken=BROKEN)

PRELOAD_LOG = (r"PYI0104: PyInterpImportScript .*broken\.wsgi", r"PYI0310",
               r"pyinterp-test-preload-failed")


@pytest.fixture(scope="module")
def preloaded(request):
    server = start_shared_server(request, "preload", extra=PRELOAD_EXTRA, threads=2, allowed=PRELOAD_LOG)
    server.started_at = time.time()
    return server


def test_import_script_loaded_at_child_start(preloaded, log_allow):
    log_allow(*PRELOAD_LOG)
    time.sleep(max(0.0, preloaded.started_at + 1.5 - time.time()))
    for path, main in (("/pre", False), ("/pre-main", True)):
        d = preloaded.get_json(path)
        assert d["now"] - d["imported_at"] >= 0.7, d  # long before this first request
        assert d["import_interp"] == d["interp"] == d["interpreter_id"]
        assert (d["interp"] == 0) == main
        assert d["import_pid"] == d["pid"]
        assert d["executions"] == 1
    # Interpreters: the preloaded group's at child start, another group's
    # only on its first request.
    log = preloaded.log_text()
    assert re.search(r"PYI0120: created interpreter 'pre'", log), log
    assert not re.search(r"created interpreter 'lazy'", log)
    lazy = preloaded.get_json("/lazy")
    assert preloaded.wait_for_log(r"PYI0120: created interpreter 'lazy'")
    assert lazy["now"] - lazy["imported_at"] < 0.5  # not preloaded: loaded now
    # Still the one execution after more requests.
    assert preloaded.get_json("/pre")["executions"] == 1


def test_failed_import_script_is_logged_and_server_goes_on(preloaded, log_allow):
    log_allow(*PRELOAD_LOG)
    assert preloaded.wait_for_log(r"PYI0104: PyInterpImportScript .*broken\.wsgi")
    assert preloaded.wait_for_log(r"RuntimeError: pyinterp-test-preload-failed")
    assert preloaded.get("/pre").status == 200


def test_import_script_in_every_prefork_child(httpd):
    extra = 'PyInterpImportScript "{0}" application-group=pre\nPyInterpScriptAlias /pre "{0}" ' \
            'application-group=pre\n'.format(PRELOAD)
    server = httpd(name="preload-prefork", mpm="prefork", processes=2, extra=extra)
    began = time.time()
    time.sleep(1.5)
    seen = {}
    for _ in range(20):  # bounded; prefork hands connections to both children
        with server.connect() as c1, server.connect() as c2:
            c1.send_request("GET", "/pre")
            c2.send_request("GET", "/pre")
            for c in (c1, c2):
                d = c.read_response().json()
                seen[d["pid"]] = d
        if len(seen) == 2:
            break
    assert len(seen) == 2, seen
    for d in seen.values():
        assert d["imported_at"] < began + 1.0 and d["now"] >= began + 1.5 and d["executions"] == 1


# ---------------------------------------------------------------- reloading

def write_script(path, version, mtime):
    path.write_text(TEMPLATE.replace("@VERSION@", version))
    path.chmod(0o644)
    os.utime(path, (mtime, mtime))


@pytest.fixture
def reload_server(httpd, scratch):
    on, off = scratch / "on.wsgi", scratch / "off.wsgi"
    t = time.time() - 100
    write_script(on, "1", t)
    write_script(off, "1", t)
    extra = """
PyInterpScriptAlias /on "{on}" application-group=reload-on
PyInterpScriptAlias /off "{off}" application-group=reload-off
<Location /off>
    PyInterpScriptReloading Off
</Location>
""".format(on=on, off=off)
    server = httpd(name="reload", extra=extra, threads=2)
    server.scripts = (on, off, t)
    return server


def test_changed_script_is_reloaded(reload_server):
    on, _off, t = reload_server.scripts
    first = reload_server.get_json("/on")
    assert first["version"] == 1 and first["loads"] == 1
    assert reload_server.get_json("/on")["loads"] == 1  # unchanged: not executed again
    write_script(on, "2", t + 10)  # same size, new mtime
    second = reload_server.get_json("/on")
    assert second["version"] == 2 and second["loads"] == 2
    assert second["interp"] == first["interp"]  # reloaded in the same interpreter
    write_script(on, "33", t + 10)  # same mtime, new size
    assert reload_server.get_json("/on")["version"] == 33


def test_reloading_off_keeps_the_loaded_script(reload_server):
    _on, off, t = reload_server.scripts
    assert reload_server.get_json("/off")["version"] == 1
    write_script(off, "2", t + 10)
    d = reload_server.get_json("/off")
    assert d["version"] == 1 and d["loads"] == 1


def test_broken_reload_then_fixed(reload_server, log_allow):
    log_allow(r"PYI07\d\d", r"PYI0310")
    on, _off, t = reload_server.scripts
    assert reload_server.get_json("/on")["version"] == 1
    on.write_text("def application(environ, start_response):\n    return [b'x'\n")  # SyntaxError
    os.utime(on, (t + 20, t + 20))
    start = reload_server.log_size()
    assert reload_server.get("/on").status == 500
    assert reload_server.wait_for_log(r"SyntaxError", start)
    write_script(on, "3", t + 30)
    assert reload_server.get_json("/on")["version"] == 3


def test_repeated_reloads_settle(httpd, scratch):
    """A script rewritten and requested again and again: each older version
    is freed by the time its successor serves (not whenever the collector's
    oldest generation next runs), and the interpreter's allocations stay
    flat from one round of reloads to the next."""
    path = scratch / "growth.wsgi"
    t = time.time() - 1000

    def write(version):
        path.write_text(GROWTH.replace("@VERSION@", str(version)))
        path.chmod(0o644)
        os.utime(path, (t + version, t + version))

    write(0)
    server = httpd(name="reload-growth", threads=2, log_level="warn",
                   extra='PyInterpScriptAlias /grow "%s" application-group=growth\n' % path)
    version, blocks = 0, []
    for _round in range(3):
        for _ in range(40):
            version += 1
            write(version)
            assert server.get_json("/grow")["version"] == version
        stats = server.get_json("/grow?stats")
        assert stats["version"] == version and stats["loads"] == version
        assert stats["alive"] == [version], "older versions still alive: %s" % stats["alive"][:-1]
        blocks.append(stats["blocks"])
    # One version is about 2,000 blocks; what stays must not grow by rounds.
    assert blocks[2] - blocks[0] < 1000, blocks
