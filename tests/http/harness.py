"""A private httpd with mod_pyinterp for the HTTP tests.

Renders a configuration from the conf/ templates (see conf/README.md) into a
temporary directory, with extra directives appended per test, starts
/usr/sbin/apache2 in the foreground on a free 127.0.0.1 port, stops it by its
own pid, and reads its error log.  conftest.py turns this into fixtures and
checks every error log after every test.
"""
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import conf_render
import httpclient

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
APPS = HERE / "apps"
PYLIB = HERE / "pylib"
APACHE = os.environ.get("PYINTERP_APACHE", "/usr/sbin/apache2")

# Lines in an error log that fail a test unless it declared them expected.
BAD_LOG_LINE = re.compile(
    r"\[[\w.-]*:(?:error|crit|alert|emerg)\]"
    r"|Fatal Python error|Segmentation fault|exit signal|core dumped|AddressSanitizer"
    r"|runtime error:|LeakSanitizer|ThreadSanitizer|Aborted \(")

# Startup problems worth retrying with another port.
PORT_IN_USE = re.compile(r"could not bind|Address already in use")


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


def world_traversable(path):
    """True if every directory up to `path` lets other users in (httpd's
    children run as www-data when the tests run as root)."""
    p = Path(path).resolve()
    for d in [p, *p.parents]:
        try:
            if not d.stat().st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def httpd_env():
    """Environment for apache2: PYINTERP_HTTPD_PRELOAD (a sanitizer runtime
    for an instrumented module) becomes LD_PRELOAD for httpd alone."""
    env = dict(os.environ)
    env.setdefault("LANG", "C")
    preload = os.environ.get("PYINTERP_HTTPD_PRELOAD")
    if preload:
        env["LD_PRELOAD"] = preload
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    return env


def _allow_cores():
    """In httpd's process, before exec: allow core files when
    PYINTERP_HTTP_CORES names a directory for them."""
    if os.environ.get("PYINTERP_HTTP_CORES"):
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app(scenario, name="app.wsgi"):
    """Path of a scenario's application script."""
    path = APPS / scenario / name
    assert path.is_file(), "no such test application: %s" % path
    return path


def make_readable(path):
    """httpd's children drop root for the configured user: let them read
    (and, for directories, traverse) what the tests create."""
    p = Path(path)
    p.chmod(0o755 if p.is_dir() else 0o644)


class StartError(AssertionError):
    pass


class Httpd:
    """One httpd instance: a rendered config, a process, an error log.

    `extra` is appended verbatim to the rendered configuration.  `mpm` is
    event, worker or prefork; `threads` and `processes` size it.
    """

    def __init__(self, workdir, module, *, name="httpd", mpm="event", threads=4, processes=1,
                 extra="", log_level="info"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        make_readable(self.workdir)
        self.module = Path(module)
        self.name = name
        self.mpm = mpm
        self.threads = threads
        self.processes = processes
        self.extra = extra
        self.log_level = log_level
        self.port = None
        self.proc = None
        self.conf_path = self.workdir / ("%s.conf" % name)
        self.error_log = self.workdir / ("%s-error.log" % name)
        self.stdout_path = self.workdir / ("%s-stdout.log" % name)
        self.checked_upto = 0  # error-log offset already checked by the harness
        # A relocated Python (a copied installation) is told its home; others
        # find it by themselves.
        python = module_python(self.module)
        self.python_home = python[2] if python and python_relocated(python[2], python[0]) else None

    # -- configuration

    def render(self, port=None):
        self.port = port or free_port()
        extra = self.extra
        cores = os.environ.get("PYINTERP_HTTP_CORES")
        if cores:  # debugging aid: core files of crashed children go there
            Path(cores).mkdir(parents=True, exist_ok=True)
            Path(cores).chmod(0o777)
            extra += '\nCoreDumpDirectory "%s"\n' % cores
        text = conf_render.render(
            module=self.module,
            workdir=self.workdir,
            name=self.name,
            port=self.port,
            mpm=self.mpm,
            threads=self.threads,
            processes=self.processes,
            error_log=self.error_log,
            log_level=self.log_level,
            python_path=PYLIB,
            python_home=self.python_home,
            extra=extra,
        )
        self.conf_path.write_text(text)
        make_readable(self.conf_path)
        return self.conf_path

    def configtest(self):
        """`apache2 -t -f conf`: (exit code, stdout+stderr)."""
        self.render(self.port)
        p = subprocess.run([APACHE, "-t", "-f", str(self.conf_path)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60, text=True, errors="replace", env=httpd_env())
        return p.returncode, p.stdout

    def list_directives(self):
        """`apache2 -L`: {directive: help text} of mod_pyinterp's directives."""
        self.render(self.port)
        out = subprocess.run([APACHE, "-L", "-f", str(self.conf_path)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=60, text=True, errors="replace",
                             env=httpd_env()).stdout
        found = {}
        for m in re.finditer(r"^(PyInterp\w+) \(mod_pyinterp\.\w+\)\n\t(.*)$", out, re.M):
            found[m.group(1)] = m.group(2).strip()
        return found

    # -- lifetime

    def start(self, timeout=15.0):
        last = ""
        for _attempt in range(3):
            self.render()
            start_offset = self.log_size()
            out = open(self.stdout_path, "ab")
            try:
                # A session of its own: prefork signals its whole process
                # group when it stops, which must not include pytest.
                self.proc = subprocess.Popen([APACHE, "-f", str(self.conf_path), "-DFOREGROUND"],
                                             stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True,
                                             env=httpd_env(), preexec_fn=_allow_cores)
            finally:
                out.close()
            if self._wait_for_port(timeout):
                return self
            rc = self.proc.poll()
            self._kill_process()
            last = self.stdout_path.read_text(errors="replace") + self.log_text(start_offset)
            if rc is None or not PORT_IN_USE.search(last):
                break
        raise StartError("httpd %s did not start (exit %s):\n%s" % (self.name, self.proc.returncode, last[-4000:]))

    def _wait_for_port(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.02)
        return False

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def open_connections(self):
        """Server-side TCP connections on our port that httpd still holds
        (ESTABLISHED or CLOSE_WAIT), from /proc/net/tcp."""
        count = 0
        try:
            lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
        except OSError:
            return 0
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            if int(local.split(":")[1], 16) == self.port and state in ("01", "08"):
                count += 1
        return count

    def stop(self, timeout=10.0, wait_idle=True):
        """SIGTERM to httpd's parent; waits up to `timeout` seconds, then
        SIGKILL.  Returns the seconds the stop took (None if not running).

        With `wait_idle`, first waits (at most a second) until httpd holds no
        client connection: Debian's event MPM can crash a child that is
        closing a connection when SIGTERM arrives (SIGSEGV in
        apr_os_sock_get from the child's main thread, reproduced without
        mod_pyinterp), which is not what these tests look for."""
        if not self.running():
            return None
        if wait_idle:
            httpclient.wait_until(lambda: self.open_connections() == 0, 1.0, 0.02)
        began = time.monotonic()
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill_process()
            raise AssertionError("httpd %s did not stop within %.0f s of SIGTERM; killed" % (self.name, timeout))
        return time.monotonic() - began

    def _kill_process(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        pids = self.child_pids()
        for pid in [self.proc.pid] + pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def graceful(self):
        """`apachectl -k graceful`: SIGUSR1 to the parent."""
        os.kill(self.proc.pid, signal.SIGUSR1)

    def child_pids(self):
        """Pids of the parent's live child processes (from /proc)."""
        if self.proc is None:
            return []
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                out.append(int(entry.name))
        return sorted(out)

    # -- the error log

    def log_size(self):
        try:
            return self.error_log.stat().st_size
        except FileNotFoundError:
            return 0

    def log_text(self, start=0, end=None):
        try:
            with open(self.error_log, "rb") as f:
                f.seek(start)
                data = f.read() if end is None else f.read(max(0, end - start))
        except FileNotFoundError:
            return ""
        return data.decode("utf-8", "replace")

    def settle_log(self, quiet=0.08, limit=1.5):
        """Waits until the error log stops growing for `quiet` seconds (at most
        `limit` seconds); returns its size."""
        deadline = time.monotonic() + limit
        size = self.log_size()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self.log_size()
            if now == size:
                break
            size = now
        return size

    def wait_for_log(self, pattern, start=0, timeout=5.0):
        """Waits for a line matching `pattern` after offset `start`; returns
        the match or None."""
        rx = re.compile(pattern)
        return httpclient.wait_until(lambda: rx.search(self.log_text(start)), timeout)

    # -- HTTP

    def get(self, path, headers=None, **kw):
        return httpclient.get(self.port, path, headers, **kw)

    def get_json(self, path, headers=None, **kw):
        return httpclient.get_json(self.port, path, headers, **kw)

    def request(self, method, path, headers=None, body=None, **kw):
        return httpclient.request(self.port, method, path, headers, body, **kw)

    def connect(self, **kw):
        return httpclient.Connection(self.port, **kw)


def unexpected_log_lines(text, allowed=()):
    """The lines of `text` that look like errors and match none of the
    `allowed` regular expressions."""
    rxs = [re.compile(a) for a in allowed]
    bad = []
    for line in text.splitlines():
        if BAD_LOG_LINE.search(line) and not any(rx.search(line) for rx in rxs):
            bad.append(line)
    return bad
