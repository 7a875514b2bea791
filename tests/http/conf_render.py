"""Renders conf/httpd.conf.in (tokens documented in conf/README.md) for the
HTTP tests, with a site configuration of the test's own: the test
applications' directories and the session's work directory granted, PyInterpPythonPath pointing at
tests/http/pylib, and the test's extra directives."""
import os
import pwd
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONF_DIR = REPO / "conf"
APPS = Path(__file__).resolve().parent / "apps"
MODULE_DIR = "/usr/lib/apache2/modules"


def quote(path):
    return '"%s"' % str(path).replace("\\", "\\\\").replace('"', '\\"')


def run_user():
    """httpd started as root runs its children as www-data; otherwise as us."""
    if os.geteuid() == 0:
        return "www-data", "www-data"
    return pwd.getpwuid(os.geteuid()).pw_name, "#%d" % os.getegid()


def fill(template_name, values):
    text = (CONF_DIR / template_name).read_text()
    for key, value in values.items():
        text = text.replace("@%s@" % key, str(value))
    left = re.search(r"@([A-Z][A-Z0-9_]*)@", text)
    if left:
        raise ValueError("conf/%s: the tests have no value for @%s@ (see conf/README.md)"
                         % (template_name, left.group(1)))
    return text


def render(*, module, workdir, name, port, mpm, threads, processes, error_log, log_level,
           python_path, python_home, extra):
    """Writes <workdir>/<name>-site.conf and returns the text of the main
    configuration (the caller writes it)."""
    workdir = Path(workdir)
    run = workdir / "run"
    run.mkdir(exist_ok=True)
    run.chmod(0o777)  # the children (www-data when we are root) use it
    threads_per_child = 1 if mpm == "prefork" else threads
    site = workdir / ("%s-site.conf" % name)
    site.write_text("\n".join([
        "# HTTP test site configuration for %s" % name,
        "PyInterpPythonPath %s" % quote(python_path),
        "PyInterpPythonHome %s" % quote(python_home) if python_home else "",
        "<Directory %s>\n    Require all granted\n</Directory>" % quote(APPS),
        # The session's work root: this server's files and the tests' own.
        "<Directory %s>\n    Require all granted\n</Directory>" % quote(workdir.parent),
        "",
        extra,
        "",
    ]))
    site.chmod(0o644)
    user, group = run_user()
    return fill("httpd.conf.in", {
        "SERVER_ROOT": workdir,
        "PID_FILE": run / ("%s.pid" % name),
        "PORT": port,
        "USER": user,
        "GROUP": group,
        "ERROR_LOG": error_log,
        "ACCESS_LOG": workdir / ("%s-access.log" % name),
        "LOG_LEVEL": log_level,
        "MPM": mpm,
        "MODULE_DIR": MODULE_DIR,
        "MOD_PYINTERP": module,
        "PROCESSES": processes,
        "THREADS": threads_per_child,
        "MAX_WORKERS": processes * threads_per_child,
        "SITE_CONF": site,
    })
