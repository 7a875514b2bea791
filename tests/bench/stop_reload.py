#!/usr/bin/python3
"""Stop times and RSS across script reloads.  Run through
tests/bench/stop-reload.

Stop: for each case, starts httpd (event MPM, one child, 4 threads, the
tests' harness and conf/ templates) serving tests/http/apps/stuck and
tests/http/apps/lifecycle, and times SIGTERM to the parent's exit: idle (the
reference), with a request spinning in pure Python, with one sleeping in C
(time.sleep(60)), and after an application started a non-daemon thread that
never ends.  Reloads: rewrites a script (tests/http/apps/reload/
growth.wsgi.in) --reloads times per round, requesting it after each rewrite,
and reports the child's RSS at the start and after each round.  Repeat
--module LABEL=PATH to compare builds; --write also rewrites the stop-reload
block of docs/benchmarks.md.  Asserts nothing.
"""
import argparse
import datetime
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- stop-reload:begin -->", "<!-- stop-reload:end -->"
sys.path.insert(0, str(HERE.parents[0] / "http"))
import harness  # noqa: E402  (tests/http/harness.py)
import http_bench as hb  # noqa: E402  (its write_doc)

STUCK = harness.app("stuck")
LIFE = harness.app("lifecycle")
GROWTH = (harness.APPS / "reload" / "growth.wsgi.in").read_text()
CASES = [("idle", None), ("a request spinning in Python", "/s/spin-forever"),
         ("a request in time.sleep(60)", "/s/sleep?s=60"), ("a non-daemon thread running", "/life/threads")]


def rss_mib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _quiet_get(server, path):
    try:
        server.get(path, timeout=60)
    except Exception:  # noqa: BLE001 - the stop cuts it
        pass


def stop_time(work, module, name, path):
    """Seconds from SIGTERM to the parent's exit, with `path` requested
    just before (None: idle)."""
    extra = ('PyInterpScriptAlias /s "%s" application-group=stuck\n'
             'PyInterpScriptAlias /life "%s" application-group=life\n' % (STUCK, LIFE))
    server = harness.Httpd(work / name, module, name=name, threads=4, extra=extra, log_level="warn")
    server.start()
    try:
        server.get("/s/ok")
        if path:
            threading.Thread(target=_quiet_get, args=(server, path), daemon=True).start()
            time.sleep(0.5)
        return server.stop(timeout=30, wait_idle=not path)
    finally:
        if server.running():
            server.kill()


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
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--module", action="append", required=True, metavar="LABEL=PATH",
                    help="a mod_pyinterp.so to measure (repeatable)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reloads", type=int, default=200)
    ap.add_argument("--write", action="store_true", help="also rewrite the stop-reload block of docs/benchmarks.md")
    args = ap.parse_args()
    stops = ["| build | stopping with | seconds | × idle |", "|---|---|---:|---:|"]
    reloads = ["| build | child RSS MiB: at start | " + " | ".join(
        "after %d reloads" % (args.reloads * (i + 1)) for i in range(args.rounds)) + " |",
        "|---|---:|" + "---:|" * args.rounds]
    python = None
    for spec in args.module:
        label, _, path = spec.rpartition("=")
        path = Path(path).resolve()
        python = harness.module_python(path)
        work = Path(tempfile.mkdtemp(prefix="pyinterp-bench-stop-"))
        harness.make_readable(work)
        try:
            print("stop-reload: measuring %s (%s)" % (label, path), file=sys.stderr, flush=True)
            idle = None
            for i, (name, url) in enumerate(CASES):
                took = stop_time(work, path, "stop%d" % i, url)
                idle = idle or took
                stops.append("| %s | %s | %.2f | %.0f× |" % (label, name, took, took / idle))
                print(stops[-1], flush=True)
            rss = reload_rss(work, path, args.rounds, args.reloads)
            reloads.append("| %s | " % label + " | ".join("%.1f" % r for r in rss) + " |")
            print(reloads[-1], flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    note = ("%s; Python %s (%s); event MPM, one child; stop: SIGTERM to the parent until it exited; reloads: "
            "a script of 100 functions and a class rewritten and requested %d times per round."
            % (datetime.date.today().isoformat(), python[0], python[1], args.reloads))
    out = stops + [""] + reloads
    print("\n".join(["", *out, "", note]))
    if args.write:
        hb.write_doc("\n".join(out) + "\n\n" + note, BEGIN, END)
        print("stop-reload: wrote %s" % hb.DOC, file=sys.stderr)


if __name__ == "__main__":
    main()
