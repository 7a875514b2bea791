"""Fixtures for the placement tests.

The servers are the HTTP tests' (tests/http/harness.py): each test gets
private httpds on free 127.0.0.1 ports serving the site lines it passes,
with the placement test extensions (PYINTERP_FIXTURE_MODULE_DIR, built with
the unit tests) and tests/http/pylib on sys.path.  After the test the
servers are stopped and their error logs checked with the harness's rule:
a line at error level or worse, a Python fatal error or a crashed child
fails the test unless the test allowed it.
"""
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
APPS = HERE / "apps"
sys.path.insert(0, str(REPO / "tests" / "http"))

import harness  # noqa: E402


@pytest.fixture(scope="session")
def module_so():
    return harness.built_path("PYINTERP_MODULE", None, "the built mod_pyinterp.so")


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
    return harness.built_path("PYINTERP_FIXTURE_MODULE_DIR", "single_phase_ext*.so", "where the test extensions were built")


@pytest.fixture
def workdir():
    yield from harness.work_dir("pyinterp-placement-", "PYINTERP_PLACEMENT_KEEP")


@pytest.fixture
def serve(module_so, ext_dir, workdir):
    """serve(site_lines, threads=4) -> a started server (harness.ExtServer)
    granting the apps and tests/ (the HTTP suite's apps)."""
    def make(n, site_lines, threads=4):
        return harness.ExtServer(workdir / ("srv%d" % n), module_so, ext_dir, [APPS, REPO / "tests"], site_lines,
                                 threads)

    servers = harness.ServerSet(make)
    yield servers.start
    servers.finish()


def app(name):
    return APPS / name / "app.wsgi"


def alias(url, name, group, *options):
    return 'PyInterpScriptAlias %s "%s" application-group=%s %s' % (url, app(name), group, " ".join(options))
