"""Request timeouts (PyInterpRequestTimeout, request-timeout= on the alias)
and stopping with requests still running: the request is interrupted in its
own thread and interpreter, the client gets a 504 (503 at a stop) or a cut
connection, the log has one entry with the stack, the worker goes on
serving; a child stops or restarts in about two seconds even when a request
is stuck."""
import re
import threading
import time
import uuid

import pytest

import harness
from httpclient import wait_until

STUCK = harness.app("stuck")
EXTRA = """
PyInterpScriptAlias /t "{app}" application-group=timeouts request-timeout=1
PyInterpScriptAlias /d "{app}" application-group=timeouts
PyInterpScriptAlias /g "{app}" application-group=%{{GLOBAL}} request-timeout=0.5
PyInterpScriptAlias /n "{app}" application-group=timeouts
PyInterpScriptAlias /import "{slow}" application-group=timeouts request-timeout=0.5
<Location /d>
    PyInterpRequestTimeout 1
</Location>
""".format(app=STUCK, slow=harness.app("stuck", "slow_import.wsgi"))
# The interruption's entry is at error level, on purpose.
INTERRUPTED = (r"PYI081\d", r"PYI0812")
# httpd's complaints about children that do not exit.
STRAGGLERS = re.compile(r"AH00273|AH00274|AH00275|AH00276|still did not exit")
# A stop (SIGTERM to the parent until it exited) with requests stuck.
STOP_LIMIT = 3.0


def token():
    return uuid.uuid4().hex[:12]


def entries(log, url):
    """The interruption entries' first lines for `url`."""
    return re.findall(r"PYI081[01]: .*#(\d+): %s in application group '([^']*)' .* interrupted after ([\d.]+) s"
                      % re.escape(url), log)


@pytest.mark.parametrize("base,group,mpm", [("/t", "timeouts", "event"), ("/d", "timeouts", "worker"),
                                            ("/g", "%{GLOBAL}", "event"), ("/t", "timeouts", "prefork")])
def test_timeout_answers_504_logs_the_stack_and_the_thread_serves_on(httpd, log_allow, base, group, mpm):
    log_allow(*INTERRUPTED)
    server = httpd(name="timeouts-" + mpm, mpm=mpm, threads=1, extra=EXTRA)
    before = server.get_json(base + "/ok")
    start = server.settle_log()
    t = token()
    began = time.monotonic()
    r = server.get("%s/spin-forever?token=%s" % (base, t), timeout=30)
    took = time.monotonic() - began
    assert r.status == 504, r
    assert b"Traceback" not in r.body
    # One entry: group, URL, elapsed time, then the stack naming the loop.
    url = "%s/spin-forever?token=%s" % (base, t)
    assert server.wait_for_log(r"PYI0810: .*spin_forever", start)
    log = server.log_text(start)
    found = entries(log, url)
    assert len(found) == 1, log
    assert found[0][1] == group and float(found[0][2]) >= 0.4
    number = found[0][0]
    frames = re.findall(r"PYI0810: #%s   File \"([^\"]+)\", line \d+, in (\S+)" % number, log)
    assert (str(STUCK), "spin_forever") in frames and (str(STUCK), "application") in frames, log
    assert took < 15
    # The application's finally blocks saw RequestTimeout, a BaseException.
    assert server.get_json(base + "/events?token=" + t) == ["_pyinterp.RequestTimeout", "finally"]
    # The same (only) worker thread serves the next requests normally.
    for _ in range(3):
        after = server.get_json(base + "/ok")
        assert after["thread"] == before["thread"] and after["pid"] == before["pid"]
    assert server.get("%s/spin?s=0.1" % base).status == 200


def test_timeout_while_the_script_loads(httpd, log_allow):
    log_allow(*INTERRUPTED)
    server = httpd(name="timeouts", threads=2, extra=EXTRA)
    start = server.settle_log()
    assert server.get("/import", timeout=30).status == 504
    assert server.wait_for_log(r"PYI0810: #\d+   File .*slow_import\.wsgi\", line \d+, in <module>", start)
    assert "PYI0701" not in server.log_text(start)
    assert server.get("/t/ok").status == 200


def test_except_exception_does_not_swallow_the_timeout(httpd, log_allow):
    log_allow(*INTERRUPTED)
    server = httpd(name="timeouts", threads=2, extra=EXTRA)
    assert server.get("/t/spin-catching", timeout=30).status == 504


def test_timeout_after_the_headers_cuts_the_connection(httpd, log_allow):
    log_allow(*INTERRUPTED)
    server = httpd(name="timeouts", threads=2, extra=EXTRA)
    with server.connect(timeout=30) as c:
        c.send_request("GET", "/t/after-headers")
        r = c.read_response()
        assert r.status == 200 and not r.complete and r.body == b"started\n"
        assert c.closed_by_server()
    assert server.wait_for_log(r"PYI0707: .* interrupted \(request timeout\); connection cut")


def test_no_timeout_where_none_is_configured(httpd):
    server = httpd(name="timeouts", threads=2, extra=EXTRA)
    assert server.get("/n/spin?s=1.5", timeout=30).status == 200
    assert "PYI081" not in server.log_text()


def test_blocked_in_c_is_interrupted_when_it_returns(httpd, log_allow):
    """A request sleeping in C cannot be interrupted before the call returns
    (documented); it then gets the exception, and the 504."""
    log_allow(*INTERRUPTED)
    server = httpd(name="timeouts", threads=2, extra=EXTRA)
    began = time.monotonic()
    r = server.get("/t/sleep?s=2", timeout=30)
    assert r.status == 504 and time.monotonic() - began >= 1.9
    assert server.wait_for_log(r"PYI0810: .*sleep\?s=2")


def start_stuck(server, path):
    """Starts a request that never finishes on its own; returns (thread, result)."""
    result = {}

    def run():
        try:
            result["r"] = server.get(path, timeout=30)
        except Exception as e:  # the connection may be cut
            result["e"] = e

    t = threading.Thread(target=run)
    t.start()
    return t, result


@pytest.mark.parametrize("mpm", ["event", "worker", "prefork"])
@pytest.mark.parametrize("path", ["/n/spin-forever", "/n/sleep?s=60"])
def test_stop_with_a_stuck_request(httpd, log_allow, mpm, path):
    log_allow(*INTERRUPTED, r"PYI010\d", r"PYI07\d\d")
    server = httpd(name="stop-" + mpm, mpm=mpm, threads=2, extra=EXTRA)
    server.get("/n/ok")
    t, result = start_stuck(server, path)
    assert wait_until(lambda: server.held_connections() > 0, 5.0)
    time.sleep(0.5)
    took = server.stop(wait_idle=False)
    t.join(30)
    assert took < STOP_LIMIT, "stop took %.1f s" % took
    log = server.log_text()
    assert not STRAGGLERS.search(log), log[-3000:]
    if "spin" in path and mpm != "prefork":
        # Interrupted in its own interpreter, answered 503 (which httpd,
        # stopping, may not deliver before it closes the connection).
        assert re.search(r"PYI0811: .*spin_forever", log), log[-3000:]
        assert "interrupted (server stopping); answered 503" in log
        assert "r" not in result or result["r"].status == 503, result


@pytest.mark.parametrize("path", ["/n/spin-forever", "/n/sleep?s=60"])
def test_graceful_restart_with_a_stuck_request(httpd, log_allow, path):
    """The old child lets its requests finish for a moment, then interrupts
    the one still in Python (a spinning one answers 503; one blocked in C
    cannot be reached and the child exits under it): the restart completes
    in seconds and the new child serves."""
    # httpd notes that the old child still holds its slot meanwhile.
    log_allow(*INTERRUPTED, r"AH03490: scoreboard is full")
    server = httpd(name="graceful-stuck", threads=2, extra=EXTRA)
    old = server.get_json("/n/ok")["pid"]
    t, result = start_stuck(server, path)
    assert wait_until(lambda: server.held_connections() > 0, 5.0)
    time.sleep(0.3)
    offset = server.log_size()
    server.graceful()
    assert wait_until(lambda: old not in server.child_pids(), 5.0), server.log_text(offset)
    t.join(10)
    if "spin" in path:
        assert result.get("r") is not None and result["r"].status == 503, result
    else:
        assert "e" in result, result  # the connection went with the child
        assert server.wait_for_log(r"PYI0812: child still busy", offset)
    assert wait_until(lambda: server.get_json("/n/ok")["pid"] != old, 5.0)
    assert not STRAGGLERS.search(server.log_text(offset))


def test_graceful_timeout_off_lets_requests_run_on(httpd, log_allow):
    """PyInterpGracefulTimeout Off: a graceful restart interrupts nothing; a
    request running Python well past the default 1.5 s completes with its
    200 in the old child, which then exits."""
    log_allow(r"AH03490: scoreboard is full")
    server = httpd(name="graceful-off", threads=2, processes=2, extra=EXTRA + "PyInterpGracefulTimeout Off\n")
    t, result = start_stuck(server, "/n/spin?s=3")
    assert wait_until(lambda: server.held_connections() > 0, 5.0)
    time.sleep(0.3)
    old = set(server.child_pids())
    offset = server.log_size()
    server.graceful()
    t.join(30)
    assert result.get("r") is not None and result["r"].status == 200, result
    assert "PYI081" not in server.log_text(offset)
    assert wait_until(lambda: not old & set(server.child_pids()), 10.0)
