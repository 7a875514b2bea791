"""The `pyinterp` and `sqlite_changes` extension modules in a plain python3.

Run by ctest with PYTHONPATH pointing at <build>/python, where both modules
are built.  Here nothing embeds Python: importing `pyinterp` starts the
library in extension mode, and Python's exit stops the default loop.
Exits non-zero on the first failure.
"""
import os
import subprocess
import sys
import tempfile
import threading
import time

import pyinterp
import sqlite_changes
import ticker


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def run_child(code, timeout=30):
    """Runs `code` in a fresh interpreter process; returns (rc, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ))
    return p.returncode, p.stdout, p.stderr


def test_interpreter():
    assert pyinterp.interpreter() == ("main", 0, False), pyinterp.interpreter()


def test_call_soon_and_call_later():
    calls = []
    main_thread = threading.get_ident()

    def rec(tag, *rest):
        calls.append((tag, rest, threading.get_ident() != main_thread))

    pyinterp.call_later(0.06, rec, "later2")
    h1 = pyinterp.call_soon(rec, "soon", 1, "two")
    pyinterp.call_later(0.02, rec, "later1")
    h = pyinterp.call_later(0.04, rec, "cancelled")
    assert h.cancel() is True and h.cancelled() is True
    assert wait_for(lambda: len(calls) >= 3), calls
    time.sleep(0.05)
    assert calls == [("soon", (1, "two"), True), ("later1", (), True), ("later2", (), True)], calls
    assert h1.cancel() is False and repr(h1) == "<pyinterp.Handle done>", repr(h1)


def test_exception_is_logged_and_loop_goes_on():
    rc, out, err = run_child(
        "import pyinterp, threading\n"
        "done = threading.Event()\n"
        "def inner(): raise ValueError('boom-from-loop')\n"
        "def bad(): inner()\n"
        "pyinterp.call_soon(bad)\n"
        "pyinterp.call_soon(lambda: (print('after'), done.set()))\n"
        "assert done.wait(10)\n")
    assert rc == 0, (rc, out, err)
    assert "after" in out, out
    assert "Traceback (most recent call last)" in err and "ValueError: boom-from-loop" in err, err
    assert "in inner" in err, err


def test_exceptions_go_to_unraisablehook():
    rc, out, err = run_child(
        "import pyinterp, sys, threading\n"
        "seen = []\n"
        "done = threading.Event()\n"
        "def hook(u):\n"
        "    seen.append((u.exc_type.__name__, str(u.exc_value), u.err_msg))\n"
        "    done.set()\n"
        "sys.unraisablehook = hook\n"
        "def bad(): raise KeyError('from-the-loop')\n"
        "pyinterp.call_soon(bad)\n"
        "assert done.wait(10)\n"
        "print(seen)\n")
    assert rc == 0 and err == "", (rc, out, err)
    assert out.startswith("[('KeyError', \"'from-the-loop'\", 'Exception ignored in pyinterp callback"), out


def test_exit_with_pending_calls_is_prompt():
    start = time.monotonic()
    rc, out, err = run_child(
        "import pyinterp\n"
        "class Probe:\n"
        "    def __call__(self): print('called')\n"
        "    def __del__(self): print('released')\n"
        "pyinterp.call_later(60, Probe())\n"
        "pyinterp.call_soon(print, 'ran')\n"
        "import time; time.sleep(0.05)\n")
    assert rc == 0, (rc, out, err)
    assert time.monotonic() - start < 20
    # The pending call was dropped at exit and its references released.
    assert out.split() == ["ran", "released"], out
    assert err == "", err


def test_sqlite_changes():
    got = []
    main_thread = threading.get_ident()

    def on_change(op, table, rowid):
        got.append((op, table, rowid, threading.get_ident() != main_thread))

    with tempfile.TemporaryDirectory() as d:
        db = sqlite_changes.connect(os.path.join(d, "t.db"))
        db.on_change(on_change)
        db.execute("CREATE TABLE t(x)")
        db.execute("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)")
        db.execute("BEGIN; INSERT INTO t VALUES (3); ROLLBACK")
        db.execute("BEGIN; UPDATE t SET x = 9 WHERE rowid = 1; DELETE FROM t WHERE rowid = 2; COMMIT")
        db.flush()
        db.execute("INSERT INTO nosuch VALUES (1)")
        try:
            db.flush()
            raise AssertionError("flush() did not raise")
        except sqlite_changes.Error as e:
            assert "no such table: nosuch" in str(e), e
        assert wait_for(lambda: len(got) >= 4), got
        time.sleep(0.02)
        db.close()
        try:
            db.execute("SELECT 1")
            raise AssertionError("execute() after close() did not raise")
        except ValueError:
            pass
    assert got == [("INSERT", "t", 1, True), ("INSERT", "t", 2, True), ("UPDATE", "t", 1, True),
                   ("DELETE", "t", 2, True)], got


def test_ticker():
    got = []
    main_thread = threading.get_ident()

    def on_tick(n):
        got.append((n, threading.get_ident() != main_thread))
        if n == 3:
            t.stop()  # from inside the callback, on the ticker's own thread

    t = ticker.start(on_tick, 0.002)
    other = ticker.start(lambda n: None, 0.001)
    assert wait_for(lambda: not t.running), got
    assert got == [(1, True), (2, True), (3, True)], got
    assert wait_for(lambda: other.ticks >= 10), other.ticks
    assert ticker.running() == 1
    other.stop()  # joins, with the GIL released
    assert not other.running and ticker.running() == 0
    assert wait_for(lambda: ticker.threads() == 0), ticker.threads()
    # Python exits with a ticker still running: the module's m_free joins it.
    rc, out, err = run_child(
        "import ticker, time\n"
        "calls = []\n"
        "t = ticker.start(calls.append, 0.001)\n"
        "while len(calls) < 5: time.sleep(0.001)\n"
        "print('ticking', ticker.threads())\n")
    assert rc == 0 and out == "ticking 1\n" and err == "", (rc, out, err)


def test_a_deadlocking_join_is_named_in_development_mode():
    # bad_join.join(fn, False) joins a thread that entered the interpreter
    # while holding the GIL: the thread needs that GIL to delete its thread
    # state as it ends, so neither moves.  In Python's development mode the
    # library says so (here through the extension-mode sink, standard error).
    env = dict(os.environ, PYTHONPATH=os.environ["PYTHONPATH"] + os.pathsep + os.environ["PYINTERP_TEST_FIXTURES"])
    code = "import pyinterp, bad_join\nprint('joined', bad_join.join(lambda: None, %s), flush=True)\n"
    # The right way: joined with the GIL released, nothing logged.
    p = subprocess.run([sys.executable, "-X", "dev", "-c", code % "True"], capture_output=True, text=True,
                       timeout=60, env=env)
    assert (p.returncode, p.stdout, p.stderr) == (0, "joined 0\n", ""), p
    # The wrong way.
    p = subprocess.Popen([sys.executable, "-X", "dev", "-c", code % "False"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(iter(p.stderr.readline, "")), daemon=True)
        reader.start()
        assert wait_for(lambda: any("deadlocked" in line for line in lines), timeout=60), lines
        assert p.poll() is None, "the process was expected to hang"
    finally:
        p.kill()
        p.wait()
        reader.join(10)
    line = next(line for line in lines if "deadlocked" in line)
    assert line.startswith("[error] pyinterp: thread "), line  # one name, the message's own
    assert "for the GIL of interpreter 'main' to delete its thread state" in line, line
    assert "join threads that entered an interpreter with the GIL released (Py_BEGIN_ALLOW_THREADS)" in line, line


def test_a_second_copy_of_the_library_is_refused():
    # An extension that links its own copy of the library and starts it in
    # extension mode, after `pyinterp` (the first copy) took the interpreter.
    sys.path.insert(0, os.environ["PYINTERP_TEST_FIXTURES"])
    try:
        import second_copy  # noqa: F401
        raise AssertionError("a second copy of the library started")
    except ImportError as e:
        assert str(e).startswith("second_copy: pyinterp_initialize: already exists (an interpreter with that "
                                 "name, or another copy of the library) (-4)"), e
    finally:
        sys.path.pop(0)
    assert pyinterp.interpreter() == ("main", 0, False), pyinterp.interpreter()


def main():
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_")]
    for t in tests:
        t()
        print("ok", t.__name__)


if __name__ == "__main__":
    main()
