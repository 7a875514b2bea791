"""Fairness between application groups sharing one GIL (Python 3.11 and
3.12, where CPython hands the GIL over between interpreters only when its
holder blocks; cpython-facts §7): while a request spins in pure Python in
one group, requests to other groups of the same child are answered, as are
requests to the spinning group itself.  The bound is far below the spin's
length, so it tells a fair hand-over from none, also on a loaded machine;
latency figures are printed by tests/bench/gil-fairness, not asserted."""
import threading
import time

import pytest

import harness
from conftest import start_shared_server

SPIN = harness.app("spin")

EXTRA = """
PyInterpScriptAlias /a "{spin}" application-group=alpha
PyInterpScriptAlias /b "{spin}" application-group=beta
PyInterpScriptAlias /c "{spin}" application-group=gamma
PyInterpScriptAlias /global "{spin}" application-group=%{{GLOBAL}}
""".format(spin=SPIN)

# A spin lasts this long unless stopped; every answer must come well before.
SPIN_SECONDS = 60
BOUND = 5.0


@pytest.fixture(scope="module")
def server(request):
    # One child process: every group lives in it and shares its GIL.
    return start_shared_server(request, "fairness", extra=EXTRA, threads=4, processes=1)


class Spinner:
    """A /<group>/spin request on a thread of its own, stopped on exit."""

    def __init__(self, server, group):
        self.server, self.group, self.result = server, group, {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.result["r"] = self.server.get("/%s/spin?seconds=%d" % (self.group, SPIN_SECONDS),
                                           timeout=SPIN_SECONDS + 30)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        # Requests to the spinning group itself are answered (CPython's own
        # hand-over between threads of one interpreter).
        while self.server.get_json("/%s/state" % self.group, timeout=10)["spinning"] < 1:
            assert time.monotonic() < deadline, "the spin did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.get("/%s/stop" % self.group, timeout=10)
        self.thread.join(SPIN_SECONDS + 30)

    def response(self):
        r = self.result["r"]
        assert r.status == 200, r
        return r.json()


def timed_get(server, path):
    began = time.monotonic()
    r = server.get(path, timeout=BOUND + 25)
    took = time.monotonic() - began
    assert r.status == 200, r
    return took, r.json()


def test_other_groups_answer_while_one_spins(server):
    paths = ["/b/fast", "/c/fast", "/global/fast", "/a/fast"]
    ids = {p: server.get_json(p)["interp"] for p in paths}  # interpreters made, scripts loaded
    assert len(set(ids.values())) == 4, ids
    with Spinner(server, "a") as spinner:
        took = {p: [] for p in paths}
        for _ in range(5):
            for p in paths:
                t, d = timed_get(server, p)
                assert d["interp"] == ids[p], d
                took[p].append(t)
        assert spinner.thread.is_alive()
    spin = spinner.response()
    # The spin was still running when the test stopped it: every request
    # above was answered while it held its share of the GIL.
    assert spin["stopped"] and spin["seconds"] < SPIN_SECONDS, spin
    assert spin["interp"] == ids["/a/fast"], spin
    slow = {p: max(ts) for p, ts in took.items() if max(ts) >= BOUND}
    assert not slow, took


def test_spinning_group_keeps_running_while_others_are_served(server):
    # The hand-over goes both ways: with requests to another group arriving
    # all the time, the spin still advances.
    with Spinner(server, "c") as spinner:
        ends = time.monotonic() + 1.0
        n = 0
        while time.monotonic() < ends:
            t, _ = timed_get(server, "/b/fast")
            assert t < BOUND
            n += 1
    spin = spinner.response()
    assert spin["stopped"] and spin["iterations"] > 0, spin
    assert n >= 5, n
