"""libapache2-mod-pyinterp in a Debian root, as an administrator uses it.

Run by tests/deb/in-root inside an overlay of a kept Debian root (tests/deb/run), as
root, with the package in $PYINTERP_DEB and its upgrade (the same build, a higher
version) in $PYINTERP_DEB_NEXT.  The tests are the steps of one story and run in this
file's order, each starting from where the one before left the system:

  a root without apache2 -> apt-get install ./the.deb (apache2 comes with it, the
  module is enabled) -> a site for /var/www/app -> configtest -> apache2ctl start with
  Debian's apache2.conf and envvars (ports.conf: 127.0.0.1 only) -> requests ->
  graceful -> mistakes configtest catches -> the pyinterp command -> stop ->
  mod_wsgi beside it -> upgrade, reinstall -> remove -> purge.

Error logs are read with the one rule the other HTTP tests use
(mod/private_httpd.py's unexpected_log_lines).
"""
import http.client
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(SRC / "mod"))
import private_httpd  # noqa: E402

DEB = Path(os.environ.get("PYINTERP_DEB", "/nonexistent.deb"))
DEB_NEXT = Path(os.environ.get("PYINTERP_DEB_NEXT", "/nonexistent.deb"))
PACKAGE = "libapache2-mod-pyinterp"
APP_DIR = Path("/var/www/app")
APP = APP_DIR / "app.wsgi"
SITE = Path("/etc/apache2/sites-available/app.conf")
MODS = Path("/etc/apache2/mods-available")
LOG_DIR = Path("/var/log/apache2")
ERROR_LOG = LOG_DIR / "error.log"
APP_ERROR_LOG = LOG_DIR / "app-error.log"
PID_FILE = Path("/var/run/apache2/apache2.pid")
PYTHON = "%d.%d" % sys.version_info[:2]  # /usr/bin/python3 runs this file: the system's


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT = free_port()


def run(*cmd, check=True, timeout=300):
    """Runs cmd; returns (exit status, stdout and stderr together)."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s" % (" ".join(map(str, cmd)), p.returncode, p.stdout))
    return p.returncode, p.stdout


def apt_get(*args):
    return run("apt-get", "-y", "-q", "-o", "Dpkg::Use-Pty=0", *args)[1]


def status_of(package):
    """dpkg's status words of a package ("install ok installed", ...), "" if unknown."""
    rc, out = run("dpkg-query", "-W", "-f=${Status}", package, check=False)
    return out.strip() if rc == 0 else ""


def a2query_module(name):
    return run("a2query", "-m", name, check=False)


def get(host, path="/", timeout=15):
    """GET http://127.0.0.1:PORT/path with Host: host; returns (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def get_json(host, path="/"):
    status, body = get(host, path)
    assert status == 200, (status, body[:500])
    return json.loads(body)


def listening():
    try:
        socket.create_connection(("127.0.0.1", PORT), timeout=0.5).close()
        return True
    except OSError:
        return False


def apache_pid():
    try:
        pid = int(PID_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if Path("/proc/%d" % pid).exists() else None


def child_pids(parent):
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent and fields[0] != "Z":
                out.append(int(entry.name))
    return sorted(out)


def apache2_processes():
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "apache2":
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


class Log:
    """A log file read from an offset on: what happened since."""

    def __init__(self, path):
        self.path = Path(path)
        self.offset = self.size()

    def size(self):
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def text(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, pattern, timeout=15):
        rx = re.compile(pattern)
        return private_httpd.wait_until(lambda: rx.search(self.text()), timeout)


def assert_clean(*logs, allowed=()):
    for log in logs:
        bad = private_httpd.unexpected_log_lines(log.text(), allowed)
        assert not bad, "%s:\n%s" % (log.path, "\n".join(bad))


def apache2ctl(*args, check=True):
    return run("apache2ctl", *args, check=check, timeout=120)


def start():
    apache2ctl("start")
    assert private_httpd.wait_until(listening, 20), "apache2 does not listen on 127.0.0.1:%d" % PORT


def stop():
    """apache2ctl stop, and waits until every apache2 process is gone."""
    apache2ctl("stop")
    gone = private_httpd.wait_until(lambda: not apache2_processes(), 20)
    assert gone, "apache2 processes left after stop: %s" % apache2_processes()


def configtest():
    """apache2ctl configtest: (exit status, output without the ServerName notices a root
    without a resolvable host name gives)."""
    rc, out = apache2ctl("configtest", check=False)
    out = "\n".join(line for line in out.splitlines() if not re.match(r"AH0055[78]: ", line))
    return rc, out


def stop_if_running():
    if apache_pid():
        apache2ctl("stop", check=False)
        private_httpd.wait_until(lambda: not apache2_processes(), 20)


@pytest.fixture(scope="module", autouse=True)
def no_apache_left():
    yield
    stop_if_running()


# ---------------------------------------------------------------- the package file

def test_package_file_name_and_fields():
    arch = run("dpkg", "--print-architecture")[1].strip()
    fields = dict(line.split(": ", 1) for line in run("dpkg-deb", "-f", str(DEB))[1].splitlines()
                  if ": " in line and not line.startswith(" "))
    assert DEB.name == "%s_%s_%s.deb" % (PACKAGE, fields["Version"], arch), DEB.name
    assert fields["Package"] == PACKAGE and fields["Architecture"] == arch
    depends = [d.strip() for d in fields["Depends"].split(",")]
    mmn = re.search(r"^#define MODULE_MAGIC_NUMBER_MAJOR (\d+)", Path("/usr/include/apache2/ap_mmn.h").read_text(),
                    re.M).group(1)
    major, minor = sys.version_info[:2]
    for expected in ("apache2-api-%s" % mmn, "python3 (>= %d.%d~)" % (major, minor),
                     "python3 (<< %d.%d)" % (major, minor + 1)):
        assert expected in depends, (expected, depends)
    # From dpkg-shlibdeps: the libpython the module links, with a version.
    assert any(re.fullmatch(r"libpython%d\.%d(t64)? \(>= [^)]+\)" % (major, minor), d) for d in depends), depends
    assert fields.get("Recommends") == "apache2"
    for field in ("Conflicts", "Breaks", "Replaces", "Provides"):
        assert field not in fields, (field, fields[field])


def test_package_contents_module_and_command_not_the_sdk():
    listing = run("dpkg-deb", "-c", str(DEB))[1]
    paths = {line.split()[5].lstrip(".") for line in listing.splitlines()}
    for expected in ("/usr/lib/apache2/modules/mod_pyinterp.so", "/etc/apache2/mods-available/pyinterp.load",
                     "/etc/apache2/mods-available/pyinterp.conf", "/usr/bin/pyinterp",
                     "/usr/libexec/pyinterp/mod/pyinterp", "/usr/libexec/pyinterp/mod/pyinterp-doctor",
                     "/usr/libexec/pyinterp/mod/private_httpd.py", "/usr/libexec/pyinterp/conf/httpd.conf.in",
                     "/usr/share/doc/%s/install.md" % PACKAGE):
        assert expected in paths, (expected, sorted(paths))
    sdk = [p for p in paths if p.startswith(("/usr/include", "/usr/lib/python3")) or p.endswith((".a", ".pc"))
           or "/cmake/" in p]
    assert not sdk, sdk
    control = run("dpkg-deb", "-I", str(DEB), "conffiles")[1].split()
    assert sorted(control) == ["/etc/apache2/mods-available/pyinterp.conf",
                               "/etc/apache2/mods-available/pyinterp.load"], control


# ---------------------------------------------------------------- installing

def test_install_pulls_apache2_and_enables_the_module():
    # A root without the web server: the package brings it (Recommends, which apt
    # installs by default; this root's apt is configured not to).  mod_wsgi goes too,
    # to come back later.
    apt_get("purge", "apache2", "libapache2-mod-wsgi-py3")
    assert status_of("apache2") != "install ok installed"
    out = apt_get("install", "-o", "APT::Install-Recommends=true", str(DEB))
    assert status_of(PACKAGE) == "install ok installed", out
    assert status_of("apache2") == "install ok installed", out
    rc, said = a2query_module("pyinterp")
    assert rc == 0 and "enabled" in said, (rc, said, out)
    assert (Path("/etc/apache2/mods-enabled/pyinterp.load").resolve() == MODS / "pyinterp.load")
    assert (Path("/etc/apache2/mods-enabled/pyinterp.conf").resolve() == MODS / "pyinterp.conf")


def test_installed_files():
    assert "LoadModule pyinterp_module /usr/lib/apache2/modules/mod_pyinterp.so" in \
        (MODS / "pyinterp.load").read_text()
    conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", PACKAGE)[1]
    for name in ("pyinterp.load", "pyinterp.conf"):
        assert str(MODS / name) in conffiles, conffiles
    assert os.path.realpath("/usr/bin/pyinterp") == "/usr/libexec/pyinterp/mod/pyinterp"


def test_every_directive_is_in_pyinterp_conf():
    rc, out = apache2ctl("-L")
    directives = re.findall(r"^(PyInterp\w+) \(mod_pyinterp\.\w+\)$", out, re.M)
    assert len(directives) >= 9, out
    conf = (MODS / "pyinterp.conf").read_text()
    missing = [d for d in directives if not re.search(r"^\s*#%s\b" % d, conf, re.M)]
    assert not missing, "not shown in pyinterp.conf: %s" % missing


# ---------------------------------------------------------------- a site

def test_site_for_an_application_under_var_www_passes_configtest():
    APP_DIR.mkdir(parents=True, exist_ok=True)
    APP.write_text((SRC / "tests" / "deb" / "app" / "app.wsgi").read_text())
    APP.chmod(0o644)
    # Tests listen on loopback only; the default site moves to the same port.
    Path("/etc/apache2/ports.conf").write_text("Listen 127.0.0.1:%d\n" % PORT)
    default = Path("/etc/apache2/sites-available/000-default.conf")
    default.write_text(default.read_text().replace("<VirtualHost *:80>", "<VirtualHost *:%d>" % PORT))
    SITE.write_text("""<VirtualHost *:{port}>
    ServerName app.test
    PyInterpScriptAlias / {app} application-group=app
    <Directory {app_dir}>
        Require all granted
    </Directory>
    ErrorLog ${{APACHE_LOG_DIR}}/app-error.log
    CustomLog ${{APACHE_LOG_DIR}}/app-access.log combined
</VirtualHost>
""".format(port=PORT, app=APP, app_dir=APP_DIR))
    run("a2ensite", "-q", "app")
    rc, out = configtest()
    assert rc == 0 and "Syntax OK" in out, out


def test_pyinterp_conf_settings_uncommented_are_valid():
    # Every setting pyinterp.conf shows, uncommented: still a valid configuration (the
    # examples name /var/www/app/app.wsgi, which exists now).
    conf = MODS / "pyinterp.conf"
    original = conf.read_text()
    try:
        conf.write_text(re.sub(r"^(\s*)#(PyInterp)", r"\1\2", original, flags=re.M))
        rc, out = configtest()
        assert rc == 0 and "Syntax OK" in out, out
    finally:
        conf.write_text(original)


# ---------------------------------------------------------------- the server

def test_start_serves_the_app_from_its_interpreter():
    logs = Log(ERROR_LOG), Log(APP_ERROR_LOG)
    start()
    www_data = pwd.getpwnam("www-data").pw_uid
    for _ in range(3):
        answer = get_json("app.test")
        assert answer["served_by"] == "mod_pyinterp", answer
        assert answer["group"] == "app", answer
        assert answer["interpreter_id"] > 0, answer  # a subinterpreter, not main
        assert answer["uid"] == www_data, answer
        assert answer["python"].startswith(PYTHON + "."), answer
    status, body = get("localhost")
    assert status == 200 and b"Apache2 Debian Default Page" in body, (status, body[:300])
    assert logs[0].wait_for(r"AH00489: .* configured -- resuming normal operations")
    assert_clean(*logs)


def test_application_output_goes_to_the_error_logs():
    logs = Log(ERROR_LOG), Log(APP_ERROR_LOG)
    get_json("app.test", "/log")
    # wsgi.errors: the request's virtual host's ErrorLog; stderr and stdout: the
    # server's (stdout at notice, which httpd writes whatever the LogLevel).
    assert logs[1].wait_for(r"\[pyinterp:error\] .*PYI0300: wsgi.errors: deb-test: to wsgi.errors")
    assert logs[0].wait_for(r"\[pyinterp:error\] .*PYI0301: stderr: deb-test: to stderr")
    assert logs[0].wait_for(r"\[pyinterp:notice\] .*PYI0302: stdout: deb-test: to stdout")
    assert "deb-test" not in logs[1].text().replace("deb-test: to wsgi.errors", "")
    assert "to wsgi.errors" not in logs[0].text()
    assert_clean(*logs, allowed=[r"PYI030[01]: (wsgi.errors|stderr): deb-test"])


def test_graceful_restart_is_clean():
    logs = Log(ERROR_LOG), Log(APP_ERROR_LOG)
    parent = apache_pid()
    before = get_json("app.test")
    old_children = set(child_pids(parent))
    apache2ctl("graceful")
    assert logs[0].wait_for(r"AH00493: SIGUSR1 received.  Doing graceful restart")
    assert logs[0].wait_for(r"AH00489: .* configured -- resuming normal operations")
    assert private_httpd.wait_until(lambda: old_children.isdisjoint(child_pids(parent)), 20), \
        "the old children did not go"
    after = get_json("app.test")
    assert apache_pid() == parent
    assert after["pid"] != before["pid"] and after["group"] == "app", (before, after)
    assert_clean(*logs)


BAD = [
    ("PyInterpScriptAlias", "PyInterpScriptAlias /x %s bogus=1" % APP),
    ("PyInterpApplicationGroup", "PyInterpApplicationGroup %{BOGUS}"),
    ("PyInterpImportScript", "PyInterpImportScript /var/www/app/missing.wsgi application-group=app"),
    ("PyInterpPythonHome", "PyInterpPythonHome relative/path"),
    ("PyInterpPythonPath", "<VirtualHost *:%d>\n    PyInterpPythonPath /srv\n</VirtualHost>" % PORT),
    ("PyInterpScriptReloading", "PyInterpScriptReloading maybe"),
    ("PyInterpBogus", "PyInterpBogus value"),
]


@pytest.mark.parametrize("directive,text", BAD, ids=[d for d, _ in BAD])
def test_configtest_names_the_directive_of_a_mistake(directive, text):
    # The mistakes the private runner's configtest catches (tests/http/test_configtest.py),
    # in Debian's configuration: a conf-enabled snippet, as an administrator writes one.
    snippet = Path("/etc/apache2/conf-enabled/zz-deb-test.conf")
    snippet.write_text(text + "\n")
    try:
        rc, out = configtest()
    finally:
        snippet.unlink()
    assert rc != 0 and "Syntax OK" not in out, out
    assert directive in out, out
    assert "zz-deb-test.conf" in out, out  # where: the file (and line) httpd names


def test_the_running_server_is_untouched_by_the_failed_configtests():
    rc, out = configtest()
    assert rc == 0, out
    assert get_json("app.test")["group"] == "app"


def test_pyinterp_command_doctor_and_serve_from_the_installed_tree():
    rc, out = run("pyinterp", "doctor", str(APP), check=False)
    assert rc == 0 and "can run isolated" in out, out
    port = free_port()
    out_path = Path("/tmp/pyinterp-serve.out")
    with open(out_path, "wb") as out_file:
        proc = subprocess.Popen(["pyinterp", "serve", str(APP), "--port", str(port)], stdout=out_file,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        def up():
            assert proc.poll() is None, out_path.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                return False
        assert private_httpd.wait_until(up, 30), out_path.read_text()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        conn.request("GET", "/")
        answer = json.loads(conn.getresponse().read())
        conn.close()
        assert answer["served_by"] == "mod_pyinterp" and answer["interpreter_id"] > 0, answer
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, out_path.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = out_path.read_text()
    # Installed: nothing was built, the installed module served.
    assert "building" not in text and "install-deps" not in text, text
    assert "/usr/lib/apache2/modules/mod_pyinterp.so" in Path("/usr/libexec/pyinterp/mod/install.json").read_text()


def test_stop_is_clean():
    logs = Log(ERROR_LOG), Log(APP_ERROR_LOG)
    stop()
    assert logs[0].wait_for(r"AH00491: caught SIGTERM, shutting down")
    assert not PID_FILE.exists()
    assert_clean(*logs)


# ---------------------------------------------------------------- mod_wsgi beside it

def test_mod_wsgi_installs_beside_it_and_mod_pyinterp_stands_aside():
    out = apt_get("install", "libapache2-mod-wsgi-py3")
    assert status_of("libapache2-mod-wsgi-py3") == "install ok installed", out
    assert a2query_module("wsgi")[0] == 0 and a2query_module("pyinterp")[0] == 0
    Path("/etc/apache2/sites-available/wsgiapp.conf").write_text("""<VirtualHost *:{port}>
    ServerName wsgi.test
    WSGIScriptAlias / {app}
    <Directory {app_dir}>
        Require all granted
    </Directory>
</VirtualHost>
""".format(port=PORT, app=APP, app_dir=APP_DIR))
    run("a2ensite", "-q", "wsgiapp")
    try:
        rc, out = configtest()
        assert rc == 0 and "Syntax OK" in out, out
        assert "PYI0004: mod_wsgi.c is loaded too" in out, out
        logs = Log(ERROR_LOG), Log(APP_ERROR_LOG)
        start()
        assert get_json("wsgi.test")["served_by"] == "mod_wsgi"
        status, _ = get("app.test")
        assert status == 503
        assert logs[1].wait_for(r"PYI0601: Python is not running in this child")
        apache2ctl("graceful")
        assert logs[0].wait_for(r"AH00493: SIGUSR1 received")
        assert private_httpd.wait_until(lambda: get("wsgi.test")[0] == 200, 15)
        stop()
        assert "PYI0004" in logs[0].text()
        # No Python crashing in a child, which is what both modules starting Python did.
        # Debian 12's mod_wsgi 4.9 alone leaves its children of before a graceful restart
        # to be killed at the stop (AH00045, AH00046), with or without mod_pyinterp.
        assert_clean(*logs, allowed=[r"PYI0004: mod_wsgi.c is loaded too", r"PYI0601: ",
                                     r"AH00046: child process \d+ still did not exit, sending a SIGKILL"])
    finally:
        stop_if_running()
        # The administrator's choice made: mod_wsgi off.
        run("a2dissite", "-q", "wsgiapp")
        run("a2dismod", "-q", "wsgi")


def test_without_mod_wsgi_mod_pyinterp_serves_again():
    logs = Log(ERROR_LOG), Log(APP_ERROR_LOG)
    start()
    assert get_json("app.test")["served_by"] == "mod_pyinterp"
    assert "PYI0004" not in logs[0].text()
    assert_clean(*logs)


# ---------------------------------------------------------------- upgrade, reinstall

def test_upgrade_keeps_the_module_enabled_and_the_administrators_settings():
    conf = MODS / "pyinterp.conf"
    conf.write_text(conf.read_text() + "# deb-test: an administrator's edit\n")
    old_version = run("dpkg-query", "-W", "-f=${Version}", PACKAGE)[1]
    out = apt_get("install", str(DEB_NEXT))
    new_version = run("dpkg-query", "-W", "-f=${Version}", PACKAGE)[1]
    assert new_version != old_version and status_of(PACKAGE) == "install ok installed", out
    assert a2query_module("pyinterp")[0] == 0, out
    assert "deb-test: an administrator's edit" in conf.read_text()
    # apache2-maintscript-helper asked for a restart (denied in this root, which runs no
    # init system): the administrator's own graceful picks the new module up.
    logs = Log(ERROR_LOG), Log(APP_ERROR_LOG)
    apache2ctl("graceful")
    assert logs[0].wait_for(r"AH00489: .* configured -- resuming normal operations")
    assert private_httpd.wait_until(lambda: get("app.test")[0] == 200, 15)
    assert_clean(*logs)


def test_reinstall_leaves_a_module_the_administrator_disabled_off():
    run("a2dismod", "-q", "pyinterp")
    run("a2dissite", "-q", "app")  # its directives need the module
    apt_get("install", "--reinstall", str(DEB_NEXT))
    rc, said = a2query_module("pyinterp")
    assert rc == 32 and "disabled by site administrator" in said, (rc, said)
    run("a2enmod", "-q", "pyinterp")
    run("a2ensite", "-q", "app")


# ---------------------------------------------------------------- remove, purge

def test_remove_leaves_the_system_apache2_working_without_the_module():
    logs = Log(ERROR_LOG), Log(APP_ERROR_LOG)
    apache2ctl("graceful")
    assert private_httpd.wait_until(lambda: get("app.test")[0] == 200, 15)
    out = apt_get("remove", PACKAGE)
    assert status_of(PACKAGE) == "deinstall ok config-files", out
    rc, said = a2query_module("pyinterp")
    assert rc == 33 and "disabled by maintainer script" in said, (rc, said, out)
    assert not Path("/usr/lib/apache2/modules/mod_pyinterp.so").exists()
    assert not Path("/usr/bin/pyinterp").exists() and not Path("/usr/libexec/pyinterp").exists()
    assert (MODS / "pyinterp.conf").exists()  # the administrator's until purge
    # A site that still uses the module's directives no longer passes; without it,
    # everything else does.
    rc, out = configtest()
    assert rc != 0 and "PyInterpScriptAlias" in out, out
    run("a2dissite", "-q", "app")
    rc, out = configtest()
    assert rc == 0 and "Syntax OK" in out, out
    apache2ctl("graceful")
    assert logs[0].wait_for(r"AH00493: SIGUSR1 received")
    assert private_httpd.wait_until(lambda: get("localhost")[0] == 200, 15)
    status, body = get("localhost")
    assert b"Apache2 Debian Default Page" in body
    assert "pyinterp_module" not in apache2ctl("-M")[1]
    stop()
    start()
    assert get("localhost")[0] == 200
    stop()
    assert_clean(*logs)


def test_purge_removes_its_configuration():
    out = apt_get("purge", PACKAGE)
    assert status_of(PACKAGE) == "", out
    assert not (MODS / "pyinterp.conf").exists() and not (MODS / "pyinterp.load").exists()
    rc, said = a2query_module("pyinterp")
    assert rc == 1, (rc, said)  # no such module, no state left
    assert not list(Path("/var/lib/apache2/module").glob("*/pyinterp")), out
    rc, out = configtest()
    assert rc == 0, out
