"""Fixtures for the PyInterpSubinterpreterFallback and `pyinterp doctor` tests.

The servers are the HTTP tests' (tests/http/harness.py, on the project's one
httpd harness, mod/private_httpd.py): each test gets private httpds on free
127.0.0.1 ports serving the site lines it passes, with the test extensions'
build directory and tests/http/pylib on sys.path.  After the test the
servers are stopped (bounded) and their error logs are checked with the
harness's rule: a line at error level or worse, a Python fatal error or a
crashed child fails the test unless the test allowed it.

Environment (set by ctest, see CMakeLists.txt): PYINTERP_MODULE (the built
mod_pyinterp.so), PYINTERP_SG_EXT_DIR (where sg_gilstate/sg_dispatch were
built), PYINTERP_DOCTOR (the doctor helper, optional).
"""
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
APPS = HERE / "apps"
sys.path.insert(0, str(REPO / "tests" / "http"))

import harness  # noqa: E402
import httpclient  # noqa: E402

PYLIB = harness.PYLIB


class Server(harness.Httpd):
    """A test server whose site is `site` (after the harness's own lines),
    with `ext_dir` and tests/http/pylib on sys.path and this suite's apps
    granted."""

    def __init__(self, workdir, module, ext_dir, site, threads=2):
        extra = "\n".join(['<Directory "%s">' % APPS, "    Require all granted", "</Directory>", site])
        super().__init__(workdir, module, name="httpd", threads=threads, extra=extra,
                         python_path="%s:%s" % (ext_dir, PYLIB))
        self.allowed = []

    def get(self, path, timeout=30):
        """(status, body as JSON or text)."""
        r = httpclient.get(self.port, path, timeout=timeout)
        try:
            return r.status, json.loads(r.body)
        except ValueError:
            return r.status, r.body.decode("utf-8", "replace")

    def log(self):
        return self.log_text()

    def wait_log(self, pattern, timeout=10):
        """The first error-log line matching `pattern` (regex), waiting for it."""
        m = self.wait_for_log(r"(?m)^.*(?:%s).*$" % pattern, timeout=timeout)
        if not m:
            raise AssertionError("no log line matches %r in:\n%s" % (pattern, self.log()[-4000:]))
        return m.group(0)

    def allow(self, pattern):
        """Declares error-level lines matching `pattern` expected."""
        self.allowed.append(re.compile(pattern))


@pytest.fixture(scope="session")
def module_so():
    path = os.environ.get("PYINTERP_MODULE")
    if not path or not Path(path).is_file():
        pytest.fail("set PYINTERP_MODULE to the built mod_pyinterp.so (ctest does)")
    return Path(path)


@pytest.fixture(scope="session")
def ext_dir():
    path = os.environ.get("PYINTERP_SG_EXT_DIR")
    if not path or not list(Path(path).glob("sg_gilstate*.so")):
        pytest.fail("set PYINTERP_SG_EXT_DIR to where sg_gilstate and sg_dispatch were built (ctest does)")
    return Path(path)


@pytest.fixture
def workdir():
    d = Path(tempfile.mkdtemp(prefix="pyinterp-sg-"))
    d.chmod(0o755)
    yield d
    if not os.environ.get("PYINTERP_SG_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def serve(module_so, ext_dir, workdir):
    """serve(site_lines, threads=2) -> a started Server.  `site_lines` is
    appended to a site that already puts the extensions on sys.path and
    grants the apps' directory."""
    servers = []

    def start(site_lines, threads=2):
        server = Server(workdir / ("srv%d" % len(servers)), module_so, ext_dir, site_lines, threads)
        servers.append(server)
        return server.start(timeout=20)

    yield start
    problems = []
    for server in servers:
        try:
            server.stop()
        except harness.StopError as e:
            problems.append(str(e))
    for server in servers:
        bad = server.unexpected(server.allowed)
        if bad:
            problems.append("unexpected error-log lines of %s:\n%s" % (server.workdir.name, "\n".join(bad)))
    assert not problems, "\n".join(problems)


def app(name):
    return APPS / name / "app.wsgi"
