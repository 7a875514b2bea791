"""The runner: `mod/pyinterp serve app.wsgi [--port] [--threads]
[--processes] [--group NAME=path.wsgi]` renders a config from conf/, starts
a private httpd on 127.0.0.1 with the built module, streams its log and
stops cleanly on Ctrl-C or SIGTERM."""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

import harness
from httpclient import wait_until

RUNNER = harness.REPO / "mod" / "pyinterp"


def readme_first_command():
    """The first command of the README's first shell block."""
    text = (harness.REPO / "README.md").read_text()
    m = re.search(r"```(?:sh|bash|console)?\n(?:\$ )?([^\n]+)\n", text)
    assert m, "README.md has no code block"
    return m.group(1).split()


FIRST = readme_first_command()
# The example application the README's first command serves.
EXAMPLE = harness.REPO / FIRST[-1] if len(FIRST) >= 3 else None


def test_readme_first_command_serves_an_example_in_the_repository():
    assert FIRST[:2] == ["mod/pyinterp", "serve"], FIRST
    assert EXAMPLE is not None and EXAMPLE.is_file(), FIRST


def alive(pid):
    try:
        stat = open("/proc/%d/stat" % pid).read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def serve(module_so, module_python, scratch):
    """Starts `mod/pyinterp serve ... --no-setup` with the module under test;
    returns (process, port, output path).  Killed at the end if still running."""
    if harness.python_relocated(module_python[2], module_python[0]):
        pytest.skip("the runner sets no PyInterpPythonHome, which the relocated Python at %s needs"
                    % module_python[2])
    build = scratch / "build"
    (build / "mod").mkdir(parents=True)
    (build / "mod" / "mod_pyinterp.so").symlink_to(module_so)
    procs = []

    def start(*args):
        port = harness.free_port()
        out = scratch / "runner.out"
        env = dict(harness.httpd_env(), PYINTERP_SERVE_BUILD_DIR=str(build))
        with open(out, "wb") as f:
            proc = subprocess.Popen([str(RUNNER), "serve", *map(str, args), "--port", str(port), "--no-setup"],
                                    stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        procs.append((proc, out))

        def up():
            if proc.poll() is not None:
                raise AssertionError("runner exited early:\n" + out.read_text())
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                return False
        assert wait_until(up, 20.0, 0.1), out.read_text()
        return proc, port, out

    yield start
    for proc, out in procs:
        if proc.poll() is None:
            # The runner stops its httpd on SIGTERM; if it does not, kill both
            # (httpd runs in a session of its own, so by its pid).
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        m = re.search(r"httpd pid (\d+)", out.read_text())
        if m and alive(int(m.group(1))):
            pid = int(m.group(1))
            os.kill(pid, signal.SIGTERM)
            if not wait_until(lambda: not alive(pid), 10.0):
                os.kill(pid, signal.SIGKILL)


def httpd_pid(out):
    m = re.search(r"httpd pid (\d+)", out.read_text())
    assert m, out.read_text()
    return int(m.group(1))


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_example_then_stop(serve, stop_signal):
    # The repository's example app, at / and as group "second" (the runner
    # gives apps no PyInterpPythonPath, so the tests' own apps do not fit).
    proc, port, out = serve(EXAMPLE, "--threads", "2", "--group", "second=%s" % EXAMPLE)
    # Printed once httpd listens, which the fixture may see first.
    url = "http://127.0.0.1:%d/" % port
    assert wait_until(lambda: url in out.read_text(), 5.0), out.read_text()
    r = harness.httpclient.get(port, "/")
    assert r.status == 200 and b"Hello from interpreter" in r.body
    r = harness.httpclient.get(port, "/second/x")
    assert r.status == 200
    assert re.search(r"application group</th><td>second<", r.text), r.text
    assert re.search(r"SCRIPT_NAME / PATH_INFO</th><td>&#x27;/second&#x27; / &#x27;/x&#x27;", r.text), r.text
    # The status page it prints shows both interpreters.
    m = re.search(r"status page at http://127\.0\.0\.1:%d(/\S+) " % port, out.read_text())
    assert m, out.read_text()
    status = harness.httpclient.get_json(port, m.group(1) + "?format=json")
    groups = {i["group"] for c in status["children"] for i in c["interpreters"]}
    assert "second" in groups and len(groups) == 2, status
    pid = httpd_pid(out)
    began = time.monotonic()
    proc.send_signal(stop_signal)  # Ctrl-C reaches the runner only (httpd has its own session)
    assert proc.wait(10) == 0, out.read_text()
    assert time.monotonic() - began < 5.0
    assert wait_until(lambda: not alive(pid), 5.0), "httpd %d still running" % pid
    log = out.read_text()
    assert "resuming normal operations" in log  # the error log was streamed
    bad = harness.unexpected_log_lines(log)
    assert not bad, "\n".join(bad)


def test_serve_with_gil_and_interpreters(serve, module_so, module_python, scratch):
    """--gil and --interpreters reach every alias; with Python 3.12+ the
    example runs with its own GIL on a pool, before that httpd refuses the
    configuration and the runner says so."""
    own = tuple(int(x) for x in module_python[0].split(".")) >= (3, 12)
    if not own:
        build = scratch / "build311"
        (build / "mod").mkdir(parents=True)
        (build / "mod" / "mod_pyinterp.so").symlink_to(module_so)
        p = subprocess.run([str(RUNNER), "serve", str(EXAMPLE), "--gil", "own", "--interpreters", "2", "--port",
                            str(harness.free_port()), "--no-setup"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60,
                           env=dict(harness.httpd_env(), PYINTERP_SERVE_BUILD_DIR=str(build)))
        text = p.stdout.decode()
        assert p.returncode != 0, text
        assert "PyInterpScriptAlias: gil=own needs Python 3.12 or newer" in text and "rejected" in text, text
        return
    proc, port, out = serve(EXAMPLE, "--threads", "4", "--gil", "own", "--interpreters", "2",
                            "--group", "second=%s" % EXAMPLE)
    assert wait_until(lambda: "gil=own interpreters=2" in out.read_text(), 5.0), out.read_text()
    for path, name in (("/", r"[^<]*#1"), ("/second/", r"second#1")):
        r = harness.httpclient.get(port, path)
        assert r.status == 200
        assert re.search(r"interpreter</th><td>%s \(id \d+\)<" % name, r.text), r.text
        assert "its own GIL" in r.text, r.text
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert not harness.unexpected_log_lines(out.read_text())


def test_serve_prefork_processes(serve):
    proc, port, out = serve(EXAMPLE, "--mpm", "prefork", "--processes", "2")
    pids = set()
    for _ in range(20):  # bounded
        with harness.httpclient.Connection(port) as c1, harness.httpclient.Connection(port) as c2:
            c1.send_request("GET", "/")
            c2.send_request("GET", "/")
            for c in (c1, c2):
                m = re.search(r"process / thread</th><td>(\d+) /", c.read_response().text)
                pids.add(int(m.group(1)))
        if len(pids) == 2:
            break
    assert len(pids) == 2
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert not harness.unexpected_log_lines(out.read_text())
