"""`mod/pyinterp doctor app.wsgi` places an application with the server's
own executor and says where and why, and survives extensions that would
abort an own-GIL interpreter."""
import os
import subprocess
import sys

import pytest

import harness
from conftest import REPO, app
from test_moves import FLASK_APP, NUMPY_APP


@pytest.fixture(scope="module")
def doctor(ext_dir):
    helper = str(harness.built_path("PYINTERP_DOCTOR", None, "the built pyinterp-doctor"))

    def run(script, *extra):
        p = subprocess.run([sys.executable, str(REPO / "mod" / "pyinterp"), "doctor", str(script),
                            "--python-path", "%s:%s" % (ext_dir, harness.PYLIB), *extra],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120,
                           env=dict(os.environ, PYINTERP_DOCTOR=helper))
        lines = {}
        for line in p.stdout.splitlines():
            key, sep, _ = line.partition(": ")
            if sep:
                lines.setdefault(key, line)
        return p.returncode, lines, p.stdout + p.stderr

    return run


def test_a_single_phase_extension_gets_a_shared_gil(doctor, own_gil):
    rc, lines, out = doctor(app("single"))
    assert rc == 0, out
    assert "not with its own GIL (single-phase init" in lines["single_phase_ext"], out
    assert "fine in a subinterpreter" in lines["single_phase_ext"], out
    assert lines["placement"] == "placement: shared GIL (interpreter 'doctor (shared GIL)')", out
    assert "PYI0216" in lines["why"], out


def test_doing_without_it_keeps_the_own_gil(doctor, own_gil):
    rc, lines, out = doctor(app("caught"))
    assert rc == 0, out
    assert "the application runs without it" in lines["single_phase_ext"], out
    assert lines["placement"] == "placement: own GIL (interpreter 'doctor')", out
    assert "verdict: can run isolated in a subinterpreter (with its own GIL)" in out


def test_gil_shared_is_where_it_starts(doctor, own_gil):
    rc, lines, out = doctor(app("single"), "--gil", "shared")
    assert rc == 0, out
    assert lines["placement"] == "placement: shared GIL (interpreter 'doctor')", out
    assert "own GIL not checked (gil=shared)" in lines["single_phase_ext"], out


def test_numpy_needs_main_and_the_doctor_survives_it(doctor, python_version):
    pytest.importorskip("numpy")
    rc, lines, out = doctor(NUMPY_APP)
    assert rc == 1, out
    assert lines["placement"] == "placement: main interpreter (interpreter 'main')", out
    core = [name for name in lines if name.endswith("._multiarray_umath")]
    assert len(core) == 1 and "needs the main interpreter" in lines[core[0]], out


def test_flask_keeps_its_own_gil(doctor, own_gil):
    pytest.importorskip("flask")
    rc, lines, out = doctor(FLASK_APP)
    assert rc == 0, out
    assert lines["placement"] == "placement: own GIL (interpreter 'doctor')", out
    assert "the application runs without it" in lines["markupsafe._speedups"], out


def test_a_pool_is_loaded_into_every_member(doctor, own_gil):
    rc, lines, out = doctor(app("probe"), "--gil", "own", "--interpreters", "3")
    assert rc == 0, out
    assert lines["placement"] == "placement: own GIL (interpreter 'doctor#1')", out
    assert lines["pool"].startswith("pool: doctor#1 (id "), out
    assert "doctor#2 (id " in lines["pool"] and "doctor#3 (id " in lines["pool"], out
