"""Request timeouts and stopping in own-GIL groups and pools: the watchdog
interrupts a request inside the request's own interpreter, taking that
interpreter's GIL, so an interruption neither waits for the main
interpreter's GIL nor for the GIL of another own-GIL group; each pool member
is interrupted in its own interpreter; a stop interrupts a request spinning
in an own-GIL group."""
import re
import threading
import time
import uuid

import harness
from conftest import alias
from httpclient import wait_until

STUCK = harness.app("stuck")
# The interruption's entries are at error level, on purpose.
INTERRUPTED = r"PYI081\d"


def stuck(url, group, *options):
    return 'PyInterpScriptAlias %s "%s" application-group=%s %s' % (url, STUCK, group, " ".join(options))


def token():
    return uuid.uuid4().hex[:12]


def scratch_dir(workdir):
    """A directory the children (www-data when root) can write in."""
    d = workdir / "meet"
    d.mkdir()
    d.chmod(0o777)
    return d


class Background:
    """A request in a thread of its own; join() returns its status."""

    def __init__(self, server, path, timeout=60):
        self.result = None
        self.error = None

        def run():
            try:
                self.result = server.get(path, timeout=timeout)
            except Exception as e:  # noqa: BLE001 - the connection may be cut
                self.error = e

        self.thread = threading.Thread(target=run)
        self.thread.start()

    def join(self, timeout=60):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the request did not end"
        return self.result[0] if self.result else None


def spin_while_held(server, held_url, spin_url, workdir, wait=0.0):
    """Keeps `held_url`'s interpreter's GIL in C (its /hold, up to 30 s),
    waits `wait` seconds, then asks `spin_url` to spin forever.  Returns the
    spinning request's status, how long it took, and the hold's status once
    it was let go."""
    flag = scratch_dir(workdir) / "flag"
    held = flag.with_name(flag.name + ".held")
    holder = Background(server, "%s/hold?f=%s&s=30" % (held_url, flag))
    try:
        assert wait_until(held.exists, 20.0), "the hold request never held"
        time.sleep(wait)
        began = time.monotonic()
        status, _ = server.get("%s/spin-forever?token=%s" % (spin_url, token()), timeout=40)
        took = time.monotonic() - began
        assert not flag.exists()
    finally:
        flag.touch()
    return status, took, holder.join()


def interrupted(log, url):
    """(request number, group, interpreter) of the PYI0810 entries for `url`."""
    return re.findall(r"PYI0810: request timeout of request #(\d+): %s in application group '([^']*)' "
                      r"\(interpreter '([^']*)', id \d+\) interrupted" % re.escape(url), log)


def test_timeout_in_an_own_gil_group(serve, own_gil):
    server = serve(stuck("/o", "ownt", "gil=own", "request-timeout=1"))
    server.allow(INTERRUPTED)
    status, body = server.get("/o/ok")
    assert status == 200 and body["interpreter"] == "ownt"
    t = token()
    url = "/o/spin-forever?token=%s" % t
    began = time.monotonic()
    status, _ = server.get(url, timeout=30)
    assert status == 504 and time.monotonic() - began < 15
    server.wait_log(r"PYI0810: #\d+   File .*, in spin_forever")
    found = interrupted(server.log_text(), url)
    assert len(found) == 1 and found[0][1:] == ("ownt", "ownt"), server.log_text()[-4000:]
    # RequestTimeout of that interpreter reached the application's finally.
    assert server.get("/o/events?token=" + t)[1] == ["_pyinterp.RequestTimeout", "finally"]
    status, after = server.get("/o/ok")
    assert status == 200 and after["interp"] == body["interp"]


def test_every_member_of_a_pool_is_interrupted_in_its_own_interpreter(serve, own_gil):
    server = serve(stuck("/p", "ownpool", "gil=own", "interpreters=2", "request-timeout=1"))
    server.allow(INTERRUPTED)
    assert server.get("/p/ok")[0] == 200
    urls = ["/p/spin-forever?token=%s" % token() for _ in range(2)]
    spinning = [Background(server, url) for url in urls]
    for bg in spinning:
        assert bg.join() == 504
    log = server.log_text()
    members = sorted(interrupted(log, url)[0][2] for url in urls)
    assert members == ["ownpool#1", "ownpool#2"], log[-4000:]


def test_timeout_does_not_wait_for_the_main_interpreters_gil(serve, own_gil, workdir):
    """The main interpreter's GIL held in C for the whole test: an own-GIL
    group's request still times out, interrupted under its own GIL."""
    server = serve("\n".join([alias("/m", "hold", "%{GLOBAL}"),
                              stuck("/o", "ownt", "gil=own", "request-timeout=1")]))
    server.allow(INTERRUPTED)
    assert server.get("/o/ok")[0] == 200  # loaded before main's GIL is taken
    status, took, held = spin_while_held(server, "/m", "/o", workdir)
    assert status == 504 and took < 15, took
    assert held == 200


def test_timeout_does_not_wait_for_another_own_gil_group(serve, own_gil, workdir):
    """A request of group X keeps X's GIL in C past its own timeout (no
    exception reaches it there); a request of group Y spinning in Python
    past its timeout is interrupted all the same, not once X lets go."""
    server = serve("\n".join([alias("/x", "hold", "ownx", "gil=own", "request-timeout=1"),
                              stuck("/y", "owny", "gil=own", "request-timeout=1")]))
    server.allow(INTERRUPTED)
    assert server.get("/y/ok")[0] == 200
    # X's deadline passes first: the watchdog waits for X's GIL meanwhile.
    status, took, held = spin_while_held(server, "/x", "/y", workdir, wait=1.5)
    assert status == 504 and took < 15, took
    # X's request, out of C, ends (with its RequestTimeout if the watchdog
    # reached it before its Python code was done).
    assert held in (200, 504)


def test_stop_interrupts_a_request_spinning_in_an_own_gil_group(serve, own_gil):
    server = serve(stuck("/o", "ownt", "gil=own"))
    server.allow(INTERRUPTED)
    server.allow(r"PYI010\d|PYI07\d\d")
    assert server.get("/o/ok")[0] == 200
    bg = Background(server, "/o/spin-forever?token=%s" % token(), timeout=30)
    assert wait_until(lambda: server.held_connections() > 0, 5.0)
    time.sleep(0.5)
    took = server.stop(wait_idle=False)
    bg.thread.join(30)
    assert took < 3.0, "stop took %.1f s" % took
    log = server.log_text()
    assert re.search(r"PYI0811: server stopping, request #\d+: /o/spin-forever.* in application group 'ownt' "
                     r"\(interpreter 'ownt', id \d+\)", log), log[-3000:]
    assert re.search(r"PYI0811: #\d+   File .*, in spin_forever", log), log[-3000:]
