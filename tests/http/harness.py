"""A private httpd with mod_pyinterp for the HTTP tests.

The server itself is the project's one httpd harness, mod/private_httpd.py
(rendering from the conf/ templates, start on a free 127.0.0.1 port, stop by
its own pid, the error log and the rule for unexpected lines in it).  This
file adds what the tests need on top: the site every test server gets (the
test applications' directory and the session's work directory granted,
PyInterpPythonPath pointing at tests/http/pylib, the test's extra
directives), finding the module under test and the Python it embeds, and the
HTTP client.  conftest.py turns this into fixtures and checks every error
log after every test; tests/simplified_gil uses it too.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "mod"))

import private_httpd  # noqa: E402
from private_httpd import (  # noqa: E402,F401  (re-exported for the tests)
    BAD_LOG_LINE, StartError, StopError, free_port, httpd_env, make_readable, quote, unexpected_log_lines,
    world_traversable)

import httpclient  # noqa: E402

APPS = HERE / "apps"
PYLIB = HERE / "pylib"


def find_module():
    """mod_pyinterp.so: $PYINTERP_MODULE, else the build tree in
    $PYINTERP_BUILD_DIR (default /tmp/httpbuild).  None if not found."""
    explicit = os.environ.get("PYINTERP_MODULE")
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    build = Path(os.environ.get("PYINTERP_BUILD_DIR", "/tmp/httpbuild"))
    for candidate in [build / "mod" / "mod_pyinterp.so", *sorted(build.glob("**/mod_pyinterp.so"))]:
        if candidate.is_file():
            return candidate
    return None


def module_python(module):
    """(version "3.X", libpython path, sys.prefix) of the Python the module
    links, read with ldd; None if it links none."""
    out = subprocess.run(["ldd", str(module)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, timeout=30).stdout
    m = re.search(r"libpython(3\.\d+)\S*\s*=>\s*(\S+)", out)
    if not m:
        return None
    lib = Path(m.group(2)).resolve()
    # Debian's libpython lives in /usr/lib/<triplet> (prefix /usr); a
    # separately installed Python in <prefix>/lib.
    prefix = Path("/usr") if str(lib).startswith(("/usr/lib/", "/lib/")) else lib.parent.parent
    return m.group(1), lib, prefix


def auto_placement(python):
    """Where gil=auto (the default) puts an application group for the
    module's Python (module_python()): 'own' (a GIL of its own) from
    3.12.4, 'shared' before."""
    version = tuple(int(x) for x in python[0].split(".")[:3])
    return "own" if version >= (3, 12, 4) else "shared"


def python_relocated(prefix, version):
    """True if the Python at `prefix` was built for another prefix (a copied
    installation): it finds its standard library only when told its home."""
    if str(prefix) == "/usr":
        return False
    exe = Path(prefix) / "bin" / ("python" + version)
    try:
        built = subprocess.run([str(exe), "-c", "import sysconfig; print(sysconfig.get_config_var('prefix'))"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=30).stdout
    except OSError:
        return True
    return Path(built.strip()).resolve() != Path(prefix).resolve()


def app(scenario, name="app.wsgi"):
    """Path of a scenario's application script."""
    path = APPS / scenario / name
    assert path.is_file(), "no such test application: %s" % path
    return path


class Httpd(private_httpd.Httpd):
    """One test server: a private_httpd.Httpd whose site grants the test
    applications and the session's work root (the parent of `workdir`),
    puts `python_path` (default tests/http/pylib) in front of sys.path and
    appends `extra` verbatim.
    """

    def __init__(self, workdir, module, *, extra="", python_path=PYLIB, **kw):
        super().__init__(workdir, module, **kw)
        self.extra = extra
        self.python_path = python_path
        # A relocated Python (a copied installation) is told its home; others
        # find it by themselves.
        python = module_python(self.module)
        self.python_home = python[2] if python and python_relocated(python[2], python[0]) else None

    def site_text(self):
        lines = [
            "# HTTP test site configuration for %s" % self.name,
            "PyInterpPythonPath %s" % quote(self.python_path),
            "PyInterpPythonHome %s" % quote(self.python_home) if self.python_home else "",
            "<Directory %s>\n    Require all granted\n</Directory>" % quote(APPS),
            # The session's work root: this server's files and the tests' own.
            "<Directory %s>\n    Require all granted\n</Directory>" % quote(self.workdir.parent),
            "",
            self.extra,
        ]
        cores = os.environ.get("PYINTERP_HTTP_CORES")
        if cores:  # debugging aid: core files of crashed children go there
            Path(cores).mkdir(parents=True, exist_ok=True)
            Path(cores).chmod(0o777)
            lines.append('CoreDumpDirectory "%s"' % cores)
        return "\n".join(lines) + "\n"

    # -- HTTP

    def get(self, path, headers=None, **kw):
        return httpclient.get(self.port, path, headers, **kw)

    def get_json(self, path, headers=None, **kw):
        return httpclient.get_json(self.port, path, headers, **kw)

    def request(self, method, path, headers=None, body=None, **kw):
        return httpclient.request(self.port, method, path, headers, body, **kw)

    def connect(self, **kw):
        return httpclient.Connection(self.port, **kw)


class ExtServer(Httpd):
    """A server of a suite with test extensions (tests/placement,
    tests/simplified_gil): `ext_dir` and tests/http/pylib on sys.path, the
    `granted` directories readable, `site` after the harness's own lines.
    get() answers (status, body as JSON or text); allow() declares
    error-level log lines expected (ServerSet checks the rest)."""

    def __init__(self, workdir, module, ext_dir, granted, site, threads):
        extra = "\n".join(['<Directory "%s">\n    Require all granted\n</Directory>' % d for d in granted] + [site])
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

    def wait_log(self, pattern, timeout=10):
        """The first error-log line matching `pattern` (regex), waiting for it."""
        m = self.wait_for_log(r"(?m)^.*(?:%s).*$" % pattern, timeout=timeout)
        if not m:
            raise AssertionError("no log line matches %r in:\n%s" % (pattern, self.log_text()[-4000:]))
        return m.group(0)

    def allow(self, pattern):
        """Declares error-level lines matching `pattern` expected."""
        self.allowed.append(re.compile(pattern))


class ServerSet:
    """The servers one test starts: start(...) makes one with `make(n, ...)`
    (n counts from 0) and starts it; finish() stops them all (bounded) and
    fails on a stop that failed or on an error-log line nobody allowed."""

    def __init__(self, make):
        self.make = make
        self.servers = []

    def start(self, *args, **kw):
        server = self.make(len(self.servers), *args, **kw)
        self.servers.append(server)
        return server.start(timeout=20)

    def finish(self):
        problems = []
        for server in self.servers:
            try:
                server.stop()
            except StopError as e:
                problems.append(str(e))
        for server in self.servers:
            bad = server.unexpected(server.allowed)
            if bad:
                problems.append("unexpected error-log lines of %s:\n%s" % (server.workdir.name, "\n".join(bad)))
        assert not problems, "\n".join(problems)


def built_path(var, pattern, what):
    """The path in environment variable `var` (set by ctest), which must hold
    a file matching `pattern` (or be that file, with pattern None); a test
    error saying what to set otherwise."""
    path = os.environ.get(var)
    ok = bool(path) and (Path(path).is_file() if pattern is None else bool(list(Path(path).glob(pattern))))
    if not ok:
        import pytest
        pytest.fail("set %s to %s (ctest does)" % (var, what))
    return Path(path)


def work_dir(prefix, keep_var):
    """A fixture's body: a fresh directory others can read, removed after
    the test unless environment variable `keep_var` is set."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    d.chmod(0o755)
    yield d
    if not os.environ.get(keep_var):
        shutil.rmtree(d, ignore_errors=True)
