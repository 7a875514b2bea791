#!/usr/bin/python3
"""Stop times and RSS across script reloads.  Run through
tests/bench/stop-reload.

Stop: starts httpd (event MPM, one child, the tests' harness and conf/
templates) serving tests/http/apps/stuck and tests/http/apps/lifecycle, and
times SIGTERM-to-exit of the parent: idle (the reference), with a request
spinning in pure Python, with one sleeping in C (time.sleep(60)), and with
an application's non-daemon thread running.  Reloads: rewrites a script
(tests/http/apps/reload/growth.wsgi.in) --reloads times per round, requesting
it after each rewrite, and prints the child's RSS after each round.
Repeat --module LABEL=PATH to compare builds.  Asserts nothing.
"""
import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "http"))
import harness  # noqa: E402  (tests/http/harness.py)

STUCK = harness.app("stuck")
LIFE = harness.app("lifecycle")
GROWTH = (harness.APPS / "reload" / "growth.wsgi.in").read_text()


def rss_mib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def stop_time(work, module, name, path):
    extra = ('PyInterpScriptAlias /s "%s" application-group=stuck\n'
             'PyInterpScriptAlias /life "%s" application-group=life\n' % (STUCK, LIFE))
    server = harness.Httpd(work / name, module, name=name, threads=4, extra=extra, log_level="warn")
    server.start()
    try:
        server.get("/s/ok")
        if path:
            threading.Thread(target=lambda: _quiet_get(server, path), daemon=True).start()
            time.sleep(0.5)
        return server.stop(timeout=30, wait_idle=not path)
    finally:
        if server.running():
            server.stop(timeout=30)


def _quiet_get(server, path):
    try:
        server.get(path, timeout=60)
    except Exception:  # noqa: BLE001 - the stop cuts it
        pass


def reload_rss(work, module, rounds, reloads):
    script = work / "growth.wsgi"
    base = time.time() - 10 * rounds * reloads

    def write(v):
        script.write_text(GROWTH.replace("@VERSION@", str(v)))
        script.chmod(0o644)
        os.utime(script, (base + v, base + v))

    write(0)
    server = harness.Httpd(work / "reload", module, name="reload", threads=2, log_level="warn",
                           extra='PyInterpScriptAlias /g "%s" application-group=growth\n' % script)
    server.start()
    try:
        server.get("/g")
        child = server.child_pids()[0]
        out = [rss_mib(child)]
        v = 0
        for _ in range(rounds):
            for _ in range(reloads):
                v += 1
                write(v)
                server.get("/g")
            out.append(rss_mib(child))
        return out
    finally:
        server.stop(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--module", action="append", required=True, help="LABEL=PATH of a mod_pyinterp.so")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reloads", type=int, default=200)
    args = ap.parse_args()
    cases = [("idle", None), ("spinning request", "/s/spin-forever"), ("request in time.sleep(60)", "/s/sleep?s=60"),
             ("non-daemon thread", "/life/threads")]
    for spec in args.module:
        label, path = spec.split("=", 1)
        path = str(Path(path).resolve())
        work = Path(tempfile.mkdtemp(prefix="pyinterp-bench-stop-"))
        harness.make_readable(work)
        try:
            print("== %s (%s)" % (label, path))
            print("%-28s %8s %8s" % ("stop", "seconds", "x idle"))
            idle = None
            for name, url in cases:
                took = stop_time(work, Path(path), name.split()[0] + str(len(name)), url)
                idle = idle or took
                print("%-28s %8.2f %8.1f" % (name, took, took / idle))
            rss = reload_rss(work, Path(path), args.rounds, args.reloads)
            print("child RSS (MiB) at start and after each round of %d reloads: %s"
                  % (args.reloads, " ".join("%.1f" % r for r in rss)))
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
