"""A private httpd on 127.0.0.1: configuration rendered from conf/, started,
stopped and read.

The one harness behind the runner (`mod/pyinterp serve`), the HTTP tests
(tests/http), the simplified-GIL tests (tests/simplified_gil) and the httpd
benchmarks (tests/bench, which load mod_wsgi in mod_pyinterp's place).  It
renders conf/httpd.conf.in (tokens in conf/README.md) around a site
configuration the caller writes, starts Debian's apache2 in the foreground
in a session of its own on a free port, stops it by its own pid (bounded,
SIGKILL as the last resort) and holds the one rule for error-log lines that
mean something went wrong (`unexpected_log_lines`).

Standard library only: the runner imports it before anything is installed
beyond python3.
"""
import os
import pwd
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
HTTPD = os.environ.get("PYINTERP_APACHE", "/usr/sbin/apache2")
MODULE_DIR = "/usr/lib/apache2/modules"
MPMS = ("event", "worker", "prefork")

# Error-log lines that mean something went wrong: error level or worse, a
# Python fatal error, a crashed child, a sanitizer report.  Whoever reads a
# log passes the lines it expects as `allowed`.
BAD_LOG_LINE = re.compile(
    r"\[[\w.-]*:(?:error|crit|alert|emerg)\]"
    r"|Fatal Python error|Segmentation fault|exit signal|core dumped|AddressSanitizer"
    r"|runtime error:|LeakSanitizer|ThreadSanitizer|Aborted \(")
# The templates' process pools are deliberately small, so httpd may note at
# error level that all its workers are busy: a capacity notice, not a failure
# (prefork AH00161, worker AH00286, event AH00484).
ALWAYS_ALLOWED = (r"AH00(?:161|286|484): server reached MaxRequestWorkers",)
# Startup problems worth retrying with another port.
PORT_IN_USE = re.compile(r"could not bind|Address already in use")


def unexpected_log_lines(text, allowed=()):
    """The lines of `text` that look like errors (BAD_LOG_LINE) and match
    neither ALWAYS_ALLOWED nor any of the `allowed` regular expressions."""
    rxs = [re.compile(a) if isinstance(a, str) else a for a in (*ALWAYS_ALLOWED, *allowed)]
    return [line for line in text.splitlines()
            if BAD_LOG_LINE.search(line) and not any(rx.search(line) for rx in rxs)]


def quote(path):
    """A path as an httpd configuration string."""
    return '"%s"' % str(path).replace("\\", "\\\\").replace('"', '\\"')


def run_user():
    """(User, Group) for the children: httpd started as root switches to
    www-data; otherwise they stay the caller."""
    if os.geteuid() == 0:
        return "www-data", "www-data"
    return pwd.getpwuid(os.geteuid()).pw_name, "#%d" % os.getegid()


def render_template(name, values):
    """conf/<name> with every @KEY@ token replaced; a token left without a
    value is an error rather than a broken configuration."""
    text = (CONF_DIR / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("@%s@" % key, str(value))
    left = re.search(r"@([A-Z][A-Z0-9_]*)@", text)
    if left:
        raise ValueError("conf/%s: no value for @%s@ (see conf/README.md)" % (name, left.group(1)))
    return text


def free_port():
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def make_readable(path):
    """httpd's children drop root for www-data: let them read (and, for
    directories, traverse) what the caller created."""
    p = Path(path)
    p.chmod(0o755 if p.is_dir() else 0o644)


def world_traversable(path):
    """True if every directory up to `path` lets other users in (httpd's
    children run as www-data when httpd is started as root)."""
    return blocking_directory(path) is None


def blocking_directory(path):
    """The first directory on the way to `path` that other users cannot
    enter (no o+x), or None."""
    p = Path(path).resolve()
    for d in [*reversed(p.parents), p]:
        try:
            if d.is_dir() and not d.stat().st_mode & 0o001:
                return d
        except OSError:
            return d
    return None


def httpd_env():
    """Environment for apache2: LANG defaults to C; PYINTERP_HTTPD_PRELOAD (a
    sanitizer runtime for an instrumented module) becomes LD_PRELOAD for
    httpd alone."""
    env = dict(os.environ)
    env.setdefault("LANG", "C")
    preload = os.environ.get("PYINTERP_HTTPD_PRELOAD")
    if preload:
        env["LD_PRELOAD"] = preload
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    return env


def wait_until(predicate, timeout, interval=0.05):
    """Calls `predicate` until it returns something true (returned) or
    `timeout` seconds passed (returns the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def _allow_cores():
    """In httpd's process, before exec: allow core files when
    PYINTERP_HTTP_CORES names a directory for them."""
    if os.environ.get("PYINTERP_HTTP_CORES"):
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


class StartError(AssertionError):
    """httpd did not start (its output and error log are in the message)."""


class StopError(AssertionError):
    """httpd did not stop within its time after SIGTERM and was killed."""


class Httpd:
    """One private httpd: its files in `workdir`, named after `name`
    (<name>.conf, <name>-site.conf, <name>-error.log, <name>-access.log,
    <name>-stdout.log, run/<name>.pid), a process, an error log.

    `site` is the site configuration (the applications), included at the
    end of conf/httpd.conf.in; subclasses may compute it in site_text().
    `mpm` is event, worker or prefork; `threads` and `processes` size it.
    `module` is loaded as `module_name` (a benchmark loads mod_wsgi's
    wsgi_module in mod_pyinterp's place).
    """

    def __init__(self, workdir, module, *, name="httpd", mpm="event", threads=4, processes=1, site="",
                 log_level="info", module_name="pyinterp_module"):
        if mpm not in MPMS:
            raise ValueError("unknown MPM %r (expected one of %s)" % (mpm, ", ".join(MPMS)))
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        make_readable(self.workdir)
        self.module = Path(module)
        self.module_name = module_name
        self.name = name
        self.mpm = mpm
        self.threads = threads
        self.processes = processes
        self.site = site
        self.log_level = log_level
        self.port = None
        self.proc = None
        self.conf_path = self.workdir / ("%s.conf" % name)
        self.site_path = self.workdir / ("%s-site.conf" % name)
        self.error_log = self.workdir / ("%s-error.log" % name)
        self.access_log = self.workdir / ("%s-access.log" % name)
        self.stdout_path = self.workdir / ("%s-stdout.log" % name)
        self.pid_file = self.workdir / "run" / ("%s.pid" % name)
        self.checked_upto = 0  # error-log offset already checked by a harness

    # -- configuration

    def site_text(self):
        return self.site

    def render(self, port=None):
        """Writes the site and main configuration for `port` (default: a
        free one); returns the main configuration's path."""
        self.port = port or free_port()
        run = self.pid_file.parent
        run.mkdir(exist_ok=True)
        run.chmod(0o777)  # the children (www-data when we are root) use it
        self.site_path.write_text(self.site_text(), encoding="utf-8")
        make_readable(self.site_path)
        user, group = run_user()
        threads = 1 if self.mpm == "prefork" else self.threads
        self.conf_path.write_text(render_template("httpd.conf.in", {
            "SERVER_ROOT": self.workdir,
            "PID_FILE": self.pid_file,
            "PORT": self.port,
            "USER": user,
            "GROUP": group,
            "ERROR_LOG": self.error_log,
            "ACCESS_LOG": self.access_log,
            "LOG_LEVEL": self.log_level,
            "MPM": self.mpm,
            "MODULE_DIR": MODULE_DIR,
            "MODULE_NAME": self.module_name,
            "MODULE_SO": self.module,
            "PROCESSES": self.processes,
            "THREADS": threads,
            "MAX_WORKERS": self.processes * threads,
            "SITE_CONF": self.site_path,
        }), encoding="utf-8")
        make_readable(self.conf_path)
        return self.conf_path

    def _apache(self, *args):
        return [HTTPD, "-d", str(self.workdir), "-f", str(self.conf_path), *args]

    def configtest(self):
        """`apache2 -t` on a fresh rendering: (exit code, stdout+stderr)."""
        self.render(self.port)
        p = subprocess.run(self._apache("-t"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                           text=True, errors="replace", env=httpd_env())
        return p.returncode, p.stdout

    def list_directives(self):
        """`apache2 -L`: {directive: help text} of mod_pyinterp's directives."""
        self.render(self.port)
        out = subprocess.run(self._apache("-L"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                             text=True, errors="replace", env=httpd_env()).stdout
        return {m.group(1): m.group(2).strip()
                for m in re.finditer(r"^(PyInterp\w+) \(mod_pyinterp\.\w+\)\n\t(.*)$", out, re.M)}

    # -- lifetime

    def start(self, timeout=15.0, port=None, stdout=None):
        """Renders and starts httpd in the foreground, in a session of its
        own (prefork signals its whole process group when it stops, which
        must not include the caller; a terminal's Ctrl-C reaches only the
        caller), and waits until it accepts connections.  A fixed `port` is
        tried once; a free one is retried with another port when taken
        meanwhile.  httpd's own output goes to `stdout` (default:
        <name>-stdout.log).  Raises StartError."""
        last = ""
        for _attempt in range(1 if port else 3):
            self.render(port)
            start_offset = self.log_size()
            out = stdout if stdout is not None else open(self.stdout_path, "ab")
            try:
                self.proc = subprocess.Popen(self._apache("-DFOREGROUND"), stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True, env=httpd_env(),
                                             preexec_fn=_allow_cores)
            finally:
                if stdout is None:
                    out.close()
            if self._wait_for_port(timeout):
                return self
            rc = self.proc.poll()
            self.kill()
            last = self.stdout_text() + self.log_text(start_offset)
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

    def held_connections(self):
        """Sockets on our port that httpd still owns, the listener aside
        (connections it has not finished closing, lingering closes
        included), from /proc/net/tcp and tcp6."""
        held = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                rows = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                cols = row.split()
                local, state, inode = cols[1], cols[3], cols[9]
                if int(local.rsplit(":", 1)[1], 16) == self.port and state != "0A" and inode != "0":
                    held += 1
        return held

    def wait_idle(self, limit=3.0):
        """Waits (at most `limit` seconds) until httpd holds no connection."""
        wait_until(lambda: self.held_connections() == 0, limit, 0.02)

    def stop(self, timeout=10.0, wait_idle=True):
        """SIGTERM to httpd's parent; waits up to `timeout` seconds, then
        kills it and its children and raises StopError.  Returns the seconds
        the stop took (None if it was not running).

        With `wait_idle`, first lets httpd finish closing its connections
        (at most 3 s): SIGTERM is an ungraceful stop, and the event MPM's
        child then closes its workers' sockets from its main thread
        (close_worker_sockets), racing a worker that is finishing a
        lingering close, whose pool it destroys: a segfault at exit in httpd
        itself (reproduced without mod_pyinterp), which is not what the
        callers look for."""
        if not self.running():
            return None
        if wait_idle:
            self.wait_idle()
            time.sleep(0.05)  # the worker frees the connection just after closing it
        began = time.monotonic()
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise StopError("httpd %s did not stop within %.0f s of SIGTERM; killed" % (self.name, timeout))
        return time.monotonic() - began

    def kill(self):
        """SIGKILL to httpd's parent and its children."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for pid in [self.proc.pid] + self.child_pids():
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
            fields = stat.rsplit(")", 1)[1].split()  # pid (comm) state ppid ...
            if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                out.append(int(entry.name))
        return sorted(out)

    def rss_kib(self):
        """Sum of VmRSS of httpd's children (the parent excluded), in KiB."""
        total = 0
        for pid in self.child_pids():
            try:
                m = re.search(r"^VmRSS:\s+(\d+) kB", Path("/proc/%d/status" % pid).read_text(), re.M)
            except OSError:
                continue
            total += int(m.group(1)) if m else 0
        return total

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

    def stdout_text(self):
        try:
            return self.stdout_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def settle_log(self, quiet=0.08, limit=1.5):
        """Waits until the error log stops growing for `quiet` seconds (at
        most `limit` seconds): lines about a request can land just after its
        response.  Returns its size."""
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
        return wait_until(lambda: rx.search(self.log_text(start)), timeout)

    def unexpected(self, allowed=(), start=0, end=None):
        """unexpected_log_lines() of the error log between two offsets."""
        return unexpected_log_lines(self.log_text(start, end), allowed)
