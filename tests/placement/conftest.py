"""Fixtures for the placement tests.

The servers are the HTTP tests' (tests/http/harness.py): each test gets
private httpds on free 127.0.0.1 ports serving the site lines it passes,
with the placement test extensions (PYINTERP_FIXTURE_MODULE_DIR, built with
the unit tests) and tests/http/pylib on sys.path.  After the test the
servers are stopped and their error logs checked with the harness's rule:
a line at error level or worse, a Python fatal error or a crashed child
fails the test unless the test allowed it.
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


class Server(harness.Httpd):
    def __init__(self, workdir, module, ext_dir, site, threads):
        extra = "\n".join(['<Directory "%s">' % APPS, "    Require all granted", "</Directory>",
                           '<Directory "%s">' % (REPO / "tests"), "    Require all granted", "</Directory>",
                           site])
        super().__init__(workdir, module, name="httpd", threads=threads, extra=extra,
                         python_path="%s:%s" % (ext_dir, harness.PYLIB))
        self.allowed = []

    def get(self, path, timeout=30):
        """(status, body as JSON or text)."""
        r = httpclient.get(self.port, path, timeout=timeout)
        try:
            return r.status, json.loads(r.body)
        except ValueError:
            return r.status, r.body.decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=10):
        m = self.wait_for_log(r"(?m)^.*(?:%s).*$" % pattern, timeout=timeout)
        if not m:
            raise AssertionError("no log line matches %r in:\n%s" % (pattern, self.log_text()[-4000:]))
        return m.group(0)

    def allow(self, pattern):
        self.allowed.append(re.compile(pattern))


@pytest.fixture(scope="session")
def module_so():
    path = os.environ.get("PYINTERP_MODULE")
    if not path or not Path(path).is_file():
        pytest.fail("set PYINTERP_MODULE to the built mod_pyinterp.so (ctest does)")
    return Path(path)


@pytest.fixture(scope="session")
def python_version(module_so):
    return tuple(int(x) for x in harness.module_python(module_so)[0].split("."))


@pytest.fixture(scope="session")
def own_gil(python_version):
    """Skips a test that needs own-GIL interpreters (Python 3.12+)."""
    if python_version < (3, 12):
        pytest.skip("own-GIL interpreters need Python 3.12+; the module embeds %d.%d" % python_version)


@pytest.fixture(scope="session")
def ext_dir():
    path = os.environ.get("PYINTERP_FIXTURE_MODULE_DIR")
    if not path or not list(Path(path).glob("single_phase_ext*.so")):
        pytest.fail("set PYINTERP_FIXTURE_MODULE_DIR to where the test extensions were built (ctest does)")
    return Path(path)


@pytest.fixture
def workdir():
    d = Path(tempfile.mkdtemp(prefix="pyinterp-placement-"))
    d.chmod(0o755)
    yield d
    if not os.environ.get("PYINTERP_PLACEMENT_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def serve(module_so, ext_dir, workdir):
    """serve(site_lines, threads=4) -> a started Server."""
    servers = []

    def start(site_lines, threads=4):
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


def alias(url, name, group, *options):
    return 'PyInterpScriptAlias %s "%s" application-group=%s %s' % (url, app(name), group, " ".join(options))
