"""Stopping (SIGTERM) and gracefully restarting (SIGUSR1, `apachectl -k
graceful`) httpd does not hang: interpreters end cleanly or are skipped
safely, within a second or two; with every MPM."""
import re
import threading
import time

import pytest

import harness
from httpclient import wait_until

LIFE = harness.app("lifecycle")
EXTRA = """
PyInterpScriptAlias /main "{app}" application-group=%{{GLOBAL}}
PyInterpScriptAlias /a "{app}" application-group=alpha
PyInterpScriptAlias /b "{app}" application-group=beta
""".format(app=LIFE)

MPMS = ["event", "worker", "prefork"]
# "Within a second or two": a stop (SIGTERM to the parent until it exited)
# may take at most this long, whatever the applications left running.
STOP_LIMIT = 3.0
ATEXIT = r"pyinterp-test-atexit interp=(\d+)"
# httpd's own complaints about children that do not exit.
STRAGGLERS = re.compile(r"AH00273|AH00274|AH00275|AH00276|still did not exit")


def warm(server, rounds=3):
    ids = {}
    for _ in range(rounds):
        for p in ("/main", "/a", "/b"):
            d = server.get_json(p)
            ids.setdefault(p, set()).add(d["interp"])
    return ids


def start(httpd, mpm, **kw):
    kw.setdefault("threads", 2)
    kw.setdefault("processes", 1)
    return httpd(name="life-" + mpm, mpm=mpm, extra=EXTRA, **kw)


@pytest.mark.parametrize("mpm", MPMS)
def test_stop_is_quick_and_clean(httpd, mpm):
    server = start(httpd, mpm)
    ids = warm(server)
    pids = server.child_pids()
    took = server.stop()
    assert took < STOP_LIMIT, "stop took %.1f s" % took
    log = server.log_text()
    assert not STRAGGLERS.search(log), log
    # Interpreters ended cleanly: each one ran its atexit hooks.
    ended = {int(i) for i in re.findall(ATEXIT, log)}
    assert {next(iter(ids["/a"])), next(iter(ids["/b"])), 0} <= ended, log[-3000:]
    for pid in pids:
        assert not harness.Path("/proc/%d" % pid).exists() or _is_zombie(pid)


def _is_zombie(pid):
    try:
        return harness.Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.parametrize("mpm", MPMS)
def test_stop_with_application_threads(httpd, mpm, log_allow):
    """Applications left Python threads running (daemon and not) in a
    subinterpreter and the main one: stopping still finishes in seconds,
    without a crash."""
    log_allow(r"PYI010\d")
    server = start(httpd, mpm)
    warm(server, 1)
    for p in ("/a", "/main"):
        assert server.get("%s/threads" % p).status == 200
    took = server.stop()
    assert took < STOP_LIMIT, "stop took %.1f s" % took
    assert not re.search(r"AH00276|SIGKILL", server.log_text())


@pytest.mark.parametrize("mpm", MPMS)
def test_stop_with_request_in_flight(httpd, mpm, log_allow):
    log_allow(r"PYI010\d", r"PYI07\d\d", r"PYI0310")
    server = start(httpd, mpm)
    warm(server, 1)
    result = {}

    def slow():
        try:
            result["r"] = server.get("/a/sleep?s=2", timeout=15)
        except Exception as e:  # the connection may be cut: that is fine
            result["e"] = e

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.4)
    took = server.stop(wait_idle=False)
    t.join(20)
    assert took < STOP_LIMIT, "stop took %.1f s (request: %r)" % (took, result)
    assert not re.search(r"AH00276|SIGKILL", server.log_text())


@pytest.mark.parametrize("mpm", MPMS)
def test_graceful_restart(httpd, mpm):
    server = start(httpd, mpm)
    before = warm(server)
    old_pids = set(server.child_pids())
    start_offset = server.log_size()
    server.graceful()
    # A new generation of children serves within a few seconds...
    assert wait_until(lambda: re.search(r"resuming normal operations", server.log_text(start_offset)), 5.0), \
        server.log_text(start_offset)

    def new_child_serves():
        d = server.get_json("/a")
        return d["pid"] not in old_pids and d
    assert wait_until(new_child_serves, 5.0, interval=0.1)
    # ... and the old ones are gone within a few seconds.
    assert wait_until(lambda: not (old_pids & set(server.child_pids())), 5.0), (old_pids, server.child_pids())
    after = warm(server)
    for p in ("/main", "/a", "/b"):
        assert len(after[p]) == 1
    assert after["/main"] == {0} and after["/a"] != after["/b"]
    log = server.log_text(start_offset)
    assert not STRAGGLERS.search(log), log
    # The old child's interpreters ended cleanly.
    ended = {int(i) for i in re.findall(ATEXIT, log)}
    assert {next(iter(before["/a"])), next(iter(before["/b"])), 0} <= ended, log[-3000:]
    took = server.stop()
    assert took < STOP_LIMIT, "stop took %.1f s" % took


@pytest.mark.parametrize("mpm", MPMS)
def test_graceful_restart_with_request_in_flight(httpd, mpm):
    """The request in flight completes; the server serves afterwards."""
    server = start(httpd, mpm, threads=2, processes=2)
    warm(server, 1)
    result = {}

    def slow():
        result["r"] = server.get("/b/sleep?s=1.5", timeout=15)

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.4)
    server.graceful()
    t.join(15)
    assert result["r"].status == 200, result
    assert wait_until(lambda: server.get("/a").status == 200, 5.0)
    assert server.stop() < STOP_LIMIT


def test_repeated_graceful_restarts(httpd):
    server = start(httpd, "event")
    for _ in range(3):
        warm(server, 1)
        offset = server.log_size()
        server.graceful()
        assert wait_until(lambda: "resuming normal operations" in server.log_text(offset), 5.0)
    warm(server, 1)
    assert server.stop() < STOP_LIMIT


ATEXIT_APP = harness.app("atexit")
ATEXIT_EXTRA = """
PyInterpScriptAlias /a "{app}" application-group=alpha
PyInterpScriptAlias /b "{app}" application-group=beta
PyInterpScriptAlias /g "{app}" application-group=%{{GLOBAL}}
""".format(app=ATEXIT_APP)


@pytest.mark.parametrize("mpm", MPMS)
def test_atexit_handlers_run_in_their_interpreters_each_bounded(httpd, mpm, log_allow):
    """At a normal stop every group's atexit handlers run in that group's
    interpreter; one that never returns is interrupted after its bound
    (logged with its stack) and the handlers after it still run; one taken
    back with atexit.unregister does not run; the stop stays quick."""
    log_allow(r"PYI0813", r"Exception ignored in atexit callback", r"RequestTimeout", r"Traceback",
              r"File \"", r"spinning_handler|while True|\^")
    server = httpd(name="atexit-" + mpm, mpm=mpm, threads=2, extra=ATEXIT_EXTRA)
    ids = {p: server.get_json(p)["interp"] for p in ("/a/spin", "/b/unregister", "/g/decorator")}
    took = server.stop()
    assert took < STOP_LIMIT, "stop took %.1f s" % took
    log = server.log_text()
    ran = set(re.findall(r"pyinterp-test-atexit-ran name=(\w+) interp=(\d+)", log))
    assert ("first", str(ids["/a/spin"])) in ran, log[-3000:]
    assert ("first", str(ids["/b/unregister"])) in ran and ("first", "0") in ran, log[-3000:]
    assert ("decorated", "0") in ran, log[-3000:]
    assert not any(name == "unregistered" for name, _ in ran), ran
    assert re.search(r"PYI0813: atexit handler spinning_handler #\d+ in interpreter 'alpha' .*interrupted", log), \
        log[-3000:]
    assert re.search(r"PYI0813: #\d+ +File .*, in spinning_handler", log)
