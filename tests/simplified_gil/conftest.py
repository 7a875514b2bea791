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
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
APPS = HERE / "apps"
sys.path.insert(0, str(REPO / "tests" / "http"))

import harness  # noqa: E402

PYLIB = harness.PYLIB


class Server(harness.ExtServer):
    """A test server whose site is `site` (after the harness's own lines),
    with `ext_dir` and tests/http/pylib on sys.path and this suite's apps
    granted."""

    def __init__(self, workdir, module, ext_dir, site, threads=2):
        super().__init__(workdir, module, ext_dir, [APPS], site, threads)

    def log(self):
        return self.log_text()


@pytest.fixture(scope="session")
def module_so():
    return harness.built_path("PYINTERP_MODULE", None, "the built mod_pyinterp.so")


@pytest.fixture(scope="session")
def ext_dir():
    return harness.built_path("PYINTERP_SG_EXT_DIR", "sg_gilstate*.so", "where sg_gilstate and sg_dispatch were built")


@pytest.fixture
def workdir():
    yield from harness.work_dir("pyinterp-sg-", "PYINTERP_SG_KEEP")


@pytest.fixture
def serve(module_so, ext_dir, workdir):
    """serve(site_lines, threads=2) -> a started Server.  `site_lines` is
    appended to a site that already puts the extensions on sys.path and
    grants the apps' directory."""
    servers = harness.ServerSet(
        lambda n, site_lines, threads=2: Server(workdir / ("srv%d" % n), module_so, ext_dir, site_lines, threads))
    yield servers.start
    servers.finish()


def app(name):
    return APPS / name / "app.wsgi"
