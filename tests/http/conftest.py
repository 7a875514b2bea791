"""Fixtures of the HTTP tests.

* `module_so`: the built mod_pyinterp.so ($PYINTERP_MODULE, else searched
  in $PYINTERP_BUILD_DIR, default /tmp/httpbuild); the session fails
  without it.
* `httpd`: a factory for servers that live as long as the test.
* `start_shared_server(request, ...)`: for module- or class-scoped fixtures
  that share one server between tests.
* After every test, every server's error log (the part written during the
  test) is checked: a line at error level or worse, a "Fatal Python error"
  or a crashed child fails the test unless the test declared it with
  `log_allow(pattern, ...)`.  A shared server's shutdown is checked when
  its fixture ends.
"""
import itertools
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import pytest

import harness

# Every server created in this session, with how far its log was checked.
_SERVERS = []
_SESSION = {"unusable": False}
# Exit status when the whole suite was skipped because httpd cannot run the
# module here (ctest's SKIP_RETURN_CODE in CMakeLists.txt).
EXIT_SKIPPED = 77


def pytest_sessionfinish(session, exitstatus):
    if _SESSION["unusable"] and exitstatus == 0:
        session.exitstatus = EXIT_SKIPPED


@pytest.fixture(scope="session")
def module_so():
    path = harness.find_module()
    if path is None:
        pytest.fail("mod_pyinterp.so not found: set PYINTERP_MODULE, or PYINTERP_BUILD_DIR to a build "
                    "tree (default /tmp/httpbuild) where the mod_pyinterp target was built")
    python = harness.module_python(path)
    if python is None:
        pytest.fail("%s links no libpython" % path)
    if os.geteuid() == 0 and not harness.world_traversable(python[2]):
        # httpd's children switch to www-data, which cannot read this
        # Python's standard library (under a private home directory, say).
        _SESSION["unusable"] = True
        pytest.skip("the module's Python (%s) is not readable by httpd's children (www-data)" % python[2])
    return path


@pytest.fixture(scope="session")
def module_python(module_so):
    """(version, libpython, prefix) of the Python the module embeds."""
    return harness.module_python(module_so)


@pytest.fixture(scope="session")
def system_python(module_python):
    """Skips a test that needs Debian's python3-* packages (Flask, Django)
    when the module embeds another Python than the system's."""
    if module_python[0] != "%d.%d" % sys.version_info[:2] or str(module_python[2]) != "/usr":
        pytest.skip("Debian's python3-flask/python3-django are for the system Python, the module "
                    "embeds %s from %s" % (module_python[0], module_python[2]))


_counter = itertools.count(1)


@pytest.fixture(scope="session")
def work_root():
    """Where servers and tests keep their files: a directory httpd's children
    (www-data when the tests run as root) can traverse, unlike pytest's
    private tmp_path.  Removed at the end unless PYINTERP_HTTP_KEEP is set."""
    root = Path(tempfile.mkdtemp(prefix="pyinterp-http-"))
    harness.make_readable(root)
    yield root
    if os.environ.get("PYINTERP_HTTP_KEEP"):
        print("\nHTTP test files kept in %s" % root)
    else:
        shutil.rmtree(root, ignore_errors=True)


def new_dir(work_root, name):
    """A fresh directory under work_root that httpd's children can read."""
    path = work_root / ("%03d-%s" % (next(_counter), re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:60]))
    path.mkdir()
    harness.make_readable(path)
    return path


@pytest.fixture
def scratch(work_root, request):
    """A per-test directory readable by httpd's children."""
    return new_dir(work_root, request.node.name)


def _new_server(workdir, module, **kw):
    server = harness.Httpd(workdir, module, **kw)
    _SERVERS.append(server)
    return server


def _settle(servers, quiet=0.08, limit=1.5):
    """Waits until none of the servers' error logs grew for `quiet` seconds
    (at most `limit` seconds): lines about a request can land just after
    its response."""
    deadline = time.monotonic() + limit
    sizes = [s.log_size() for s in servers]
    while servers and time.monotonic() < deadline:
        time.sleep(quiet)
        now = [s.log_size() for s in servers]
        if now == sizes:
            break
        sizes = now


def _check_new_log(server, allowed, when):
    end = server.log_size()
    bad = server.unexpected(allowed, server.checked_upto, end)
    server.checked_upto = end
    if bad:
        pytest.fail("unexpected lines in the error log of %s (%s):\n%s"
                    % (server.name, when, "\n".join(bad[:40])), pytrace=False)


def shared_sqlite_db(work_root, name, filename, schema):
    """A WAL-mode SQLite database created with `schema` (one statement) in a
    fresh directory that httpd's children (www-data) can write, with the
    database and its WAL there.  Returns its path."""
    d = new_dir(work_root, name)
    d.chmod(0o777)
    path = d / filename
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(schema)
    con.commit()
    con.close()
    for f in d.iterdir():
        f.chmod(0o666)
    return path


def start_shared_server(request, name, allowed=(), **kw):
    """Starts a server for a module/class-scoped fixture; stops it (and
    checks the rest of its log) when the fixture's scope ends."""
    module = request.getfixturevalue("module_so")
    workdir = new_dir(request.getfixturevalue("work_root"), name)
    server = _new_server(workdir, module, name=name, **kw)

    def finish():
        try:
            server.stop()
        finally:
            if server in _SERVERS:
                _SERVERS.remove(server)
            _check_new_log(server, allowed, "during its shutdown")

    request.addfinalizer(finish)
    server.start()
    return server


@pytest.fixture
def httpd(module_so, work_root, request):
    """httpd(name=..., mpm=..., threads=..., processes=..., extra=..., start=True)
    -> a harness.Httpd, stopped when the test ends."""
    made = []

    def make(name="httpd", start=True, **kw):
        server = _new_server(new_dir(work_root, "%s-%s" % (request.node.name, name)), module_so, name=name,
                             **kw)
        made.append(server)
        if start:
            server.start()
        return server

    yield make
    errors = []
    for server in made:
        try:
            server.stop()
        except AssertionError as e:  # did not stop: killed; report after the others stopped
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture
def log_allow():
    """log_allow(pattern, ...): error-log lines matching any of these regular
    expressions do not fail the current test."""
    patterns = []

    def allow(*more):
        patterns.extend(more)

    allow.patterns = patterns
    return allow


@pytest.fixture(autouse=True)
def _error_log_check(request, log_allow):
    yield
    if getattr(request.node, "rep_call_failed", False):
        # The test failed already (its report carries the logs): do not
        # pile a second failure on it.
        for server in _SERVERS:
            server.checked_upto = server.log_size()
        return
    # Servers stopped and checked already need nothing more.
    _SERVERS[:] = [s for s in _SERVERS if s.running() or s.log_size() > s.checked_upto]
    _settle([s for s in _SERVERS if s.running()])
    problems = []
    for server in _SERVERS:
        try:
            _check_new_log(server, log_allow.patterns, "during " + request.node.name)
        except pytest.fail.Exception as e:
            problems.append(str(e))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call_failed = report.failed
        if report.failed:
            # Attach the error log of every server touched by the test.
            for server in _SERVERS:
                text = server.log_text(server.checked_upto)
                if text:
                    report.sections.append(("error log of %s" % server.name, text[-6000:]))
