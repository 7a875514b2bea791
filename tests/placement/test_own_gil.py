"""Own-GIL application groups and pools in a real httpd: by default (gil=auto)
a group gets an interpreter with its own GIL on Python 3.12.4+, two groups
run Python at the same time, a pool of own-GIL interpreters spreads one
application's requests (least busy first), and PyInterpImportScript fills
every member."""
import threading
import time
from pathlib import Path

from conftest import alias, app
from httpclient import wait_until


def hold_and_touch(server, hold_url, touch_url, tmp):
    """Sends /hold (which keeps its interpreter's GIL until a file appears),
    then, once it holds, /touch (which creates that file running Python).
    Returns (hold's JSON, touch's JSON, seconds the touch took)."""
    flag = Path(tmp) / "flag"
    held = Path(str(flag) + ".held")
    out = {}

    def hold():
        out["hold"] = server.get("%s/hold?f=%s&s=%s" % (hold_url, flag, out["seconds"]), timeout=30)

    out["seconds"] = 10
    return _meet(server, hold, out, held, touch_url, flag)


def hold_briefly_and_touch(server, hold_url, touch_url, tmp):
    """hold_and_touch with a 2 s hold: for interpreters that share a GIL,
    where the touch can only run once the hold gave up."""
    flag = Path(tmp) / "flag"
    held = Path(str(flag) + ".held")
    out = {"seconds": 2}

    def hold():
        out["hold"] = server.get("%s/hold?f=%s&s=%s" % (hold_url, flag, out["seconds"]), timeout=30)

    return _meet(server, hold, out, held, touch_url, flag)


def _meet(server, hold, out, held, touch_url, flag):
    t = threading.Thread(target=hold)
    t.start()
    deadline = time.monotonic() + 20
    while not held.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert held.exists(), "the hold request never held"
    began = time.monotonic()
    touch = server.get("%s/touch?f=%s" % (touch_url, flag), timeout=30)
    took = time.monotonic() - began
    t.join(30)
    status, body = out["hold"]
    assert status == 200 and touch[0] == 200, (out, touch)
    return body, touch[1], took


def scratch_dir(workdir):
    """A directory the children (www-data when root) can write in."""
    d = workdir / "meet"
    d.mkdir()
    d.chmod(0o777)
    return d


def test_groups_get_their_own_gil_by_default(serve, python_version):
    server = serve(alias("/a", "probe", "alpha"))
    status, body = server.get("/a")
    assert status == 200
    own = python_version >= (3, 13)  # 3.12 before 3.12.4: shared (PYI0111)
    if python_version[:2] == (3, 12):
        own = "PYI0111" not in server.log_text()
    assert body["placement"] == ("own" if own else "shared"), body
    assert body["interpreter"] == "alpha"
    if own:
        server.wait_log(r"PYI0120: created interpreter 'alpha' \(id \d+, own GIL\) for application group 'alpha'")


def test_two_own_gil_groups_run_python_at_the_same_time(serve, own_gil, workdir):
    server = serve("\n".join([alias("/g1", "hold", "g1", "gil=own"), alias("/g2", "hold", "g2", "gil=own")]))
    hold, touch, _ = hold_and_touch(server, "/g1", "/g2", scratch_dir(workdir))
    assert hold["met"] is True, (hold, touch)
    assert hold["placement"] == touch["placement"] == "own"
    assert hold["interp"] != touch["interp"]


def test_shared_gil_groups_take_turns(serve, workdir):
    # The control for the test above: with one GIL, the touch runs only
    # once the hold gave up.
    server = serve("\n".join([alias("/s1", "hold", "s1", "gil=shared"), alias("/s2", "hold", "s2", "gil=shared")]))
    hold, touch, took = hold_briefly_and_touch(server, "/s1", "/s2", scratch_dir(workdir))
    assert hold["met"] is False, (hold, touch)
    assert hold["placement"] == touch["placement"] == "shared"
    assert took > 1.0, took


def test_a_pool_serves_a_busy_application_from_another_member(serve, own_gil, workdir):
    server = serve(alias("/p", "hold", "pool", "gil=own", "interpreters=2"))
    hold, touch, _ = hold_and_touch(server, "/p", "/p", scratch_dir(workdir))
    assert hold["met"] is True, (hold, touch)
    assert {hold["interpreter"], touch["interpreter"]} == {"pool#1", "pool#2"}, (hold, touch)
    assert hold["interp"] != touch["interp"]
    # Idle again: the least busy member is the first.
    status, body = server.get("/p")
    assert status == 200 and body["interpreter"] == "pool#1", body
    log = server.log_text()
    assert "own GIL, pool member 2 of 2) for application group 'pool'" in log, log[-3000:]


def test_an_import_script_fills_every_member_of_a_pool(serve, own_gil):
    server = serve("\n".join([
        alias("/p", "probe", "preloaded", "gil=own", "interpreters=3"),
        'PyInterpImportScript "%s" application-group=preloaded gil=own interpreters=3' % app("probe"),
    ]))
    for member in (1, 2, 3):
        server.wait_log(r"PYI0120: created interpreter 'preloaded#%d' \(id \d+, own GIL, pool member %d of 3\)"
                        % (member, member))
    loaded = "PYI0201: loaded script '%s' in application group 'preloaded'" % app("probe")
    assert wait_until(lambda: server.log_text().count(loaded) == 3, 10.0), server.log_text()[-3000:]
    status, body = server.get("/p")
    assert status == 200 and body["interpreter"] == "preloaded#1" and body["placement"] == "own", body


def test_pyinterp_group_directive_takes_gil_and_interpreters(serve, own_gil):
    server = serve("\n".join([
        'PyInterpScriptAlias /d "%s"' % app("probe"),
        '<Location /d>\n    PyInterpApplicationGroup dgroup gil=own interpreters=2\n</Location>',
    ]))
    status, body = server.get("/d")
    assert status == 200
    assert body["group"] == "dgroup" and body["interpreter"] == "dgroup#1" and body["placement"] == "own", body
