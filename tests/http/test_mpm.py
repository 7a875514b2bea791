"""mod_pyinterp loads into Debian's apache2 with the event, worker and prefork
MPMs; each serves requests in %{GLOBAL} and in subinterpreters, with
wsgi.multithread/wsgi.multiprocess true to the MPM; Python runs in the
children (never in the parent)."""
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

import harness

EXTRA = """
PyInterpScriptAlias /env "{env}" application-group=envgroup
PyInterpScriptAlias /main "{ident}" application-group=%{{GLOBAL}}
PyInterpScriptAlias /a "{ident}" application-group=alpha
PyInterpScriptAlias /b "{ident}" application-group=beta
""".format(env=harness.app("environ"), ident=harness.app("identity"))


@pytest.mark.parametrize("mpm,processes,threads,multithread,multiprocess", [
    ("event", 2, 3, True, True),
    ("worker", 2, 3, True, True),
    ("prefork", 2, 1, False, True),
    ("event", 1, 1, False, False),
    ("prefork", 1, 1, False, False),
])
def test_mpm_serves_requests(httpd, mpm, processes, threads, multithread, multiprocess):
    server = httpd(name="mpm-" + mpm, mpm=mpm, processes=processes, threads=threads, extra=EXTRA)
    env = server.get_json("/env/x")["environ"]
    assert env["wsgi.multithread"] is multithread
    assert env["wsgi.multiprocess"] is multiprocess
    assert env["PATH_INFO"] == "/x"

    def one(path):
        return path, server.get_json(path)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, ["/main", "/a", "/b"] * 10))
    per_pid = {}
    for path, d in results:
        assert d["interp"] == d["interpreter_id"] == d["import_interp"], d
        assert d["modules_same"] and d["local_count"] == d["thread_count"]
        per_pid.setdefault((d["pid"], path), set()).add(d["interp"])
        if path == "/main":
            assert d["interp"] == 0
        else:
            assert d["interp"] != 0
    assert all(len(ids) == 1 for ids in per_pid.values()), per_pid
    # Python starts in the children: the parent's pid never serves.
    assert all(pid != server.pid for pid, _ in per_pid)


def test_python_not_started_in_parent(httpd):
    server = httpd(name="parent", extra=EXTRA, log_level="debug")
    server.get_json("/main")
    started = re.findall(r"\[pid (\d+):tid \d+\].*PYI0109: Python .* started in child", server.log_text())
    assert started and all(int(pid) != server.pid for pid in started)
