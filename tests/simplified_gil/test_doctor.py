"""`mod/pyinterp doctor app.wsgi`: verdicts per extension and exit status."""
import os
import subprocess
import sys

import pytest

import harness
from conftest import PYLIB, REPO, app


@pytest.fixture(scope="module")
def doctor(ext_dir):
    helper = str(harness.built_path("PYINTERP_DOCTOR", None, "the built pyinterp-doctor"))

    def run(name, *extra):
        p = subprocess.run([sys.executable, str(REPO / "mod" / "pyinterp"), "doctor", str(app(name)),
                            "--python-path", "%s:%s" % (ext_dir, PYLIB), *extra],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120,
                           env=dict(os.environ, PYINTERP_DOCTOR=helper))
        lines = {line.split(":", 1)[0]: line for line in p.stdout.splitlines() if ": " in line}
        return p.returncode, lines, p.stdout + p.stderr

    return run


def test_gilstate_extension_needs_main(doctor):
    rc, lines, out = doctor("gilstate")
    assert rc == 1, out
    assert "needs the main interpreter" in lines["sg_gilstate"] and "PyGILState_Ensure" in lines["sg_gilstate"]
    assert "verdict: needs the main interpreter" in out


def test_dispatch_extension_is_fine(doctor):
    rc, lines, out = doctor("dispatch")
    assert rc == 0, out
    assert "fine in a subinterpreter" in lines["sg_dispatch"]
    assert "verdict: can run isolated" in out


def test_numpy_needs_main(doctor):
    rc, lines, out = doctor("numpy")
    assert rc == 1, out
    # numpy 2 moved its core from numpy.core to numpy._core (Debian 12 has 1.24, Debian 13 2.2).
    core = [name for name in lines if name in ("numpy.core._multiarray_umath", "numpy._core._multiarray_umath")]
    assert len(core) == 1, out
    assert "needs the main interpreter" in lines[core[0]]


def test_sqlite_is_fine(doctor):
    rc, lines, out = doctor("sqlite")
    assert rc == 0, out
    assert "fine in a subinterpreter" in lines["_sqlite3"]
    if sys.version_info >= (3, 12):
        assert "fine with its own GIL" in lines["_sqlite3"]


def test_broken_script_is_an_error(doctor, tmp_path):
    rc, _, out = doctor("plain", "--callable", "no_such_callable")
    assert rc == 2, out
    rc = subprocess.run([sys.executable, str(REPO / "mod" / "pyinterp"), "doctor", str(tmp_path / "missing.wsgi")],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60).returncode
    assert rc == 2
