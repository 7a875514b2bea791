#!/usr/bin/python3
"""Latency of application groups while another group of the same child spins
in pure Python (cpython-facts §7).  Run through tests/bench/gil-fairness.

Starts one httpd (one child, the tests' harness and conf/ templates) serving
tests/http/apps/spin in groups alpha, beta and %{GLOBAL}.  First measures
requests to beta with nothing else running; then, while one request spins in
alpha, a client requests alpha (the spinning group itself: how CPython
hands the GIL over between threads of one interpreter, the reference), then
during a second spin beta, then during a third %{GLOBAL}, back to back until
the spin ends.  Prints
p50/p90/max per group and the ratio of each other group's p90 to the
spinning group's.  Repeat --module LABEL=PATH to compare builds (a build
without the hand-over shows the other groups waiting for the whole spin);
--write also rewrites the gil-fairness block of docs/benchmarks.md.
Asserts nothing.
"""
import argparse
import datetime
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC = HERE.parents[1] / "docs" / "benchmarks.md"
BEGIN, END = "<!-- gil-fairness:begin -->", "<!-- gil-fairness:end -->"
sys.path.insert(0, str(HERE.parents[0] / "http"))
import harness  # noqa: E402  (tests/http/harness.py)

GROUPS = [("alpha", "/a"), ("beta", "/b"), ("%{GLOBAL}", "/global")]


def site(spin_app):
    return "".join('PyInterpScriptAlias %s "%s" application-group=%s\n' % (url, spin_app, group)
                   for group, url in GROUPS)


def timed(server, path, timeout):
    began = time.monotonic()
    try:
        r = server.get(path, timeout=timeout)
        ok = r.status == 200
    except OSError:
        ok = False
    return (time.monotonic() - began) * 1000.0, ok


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def while_alpha_spins(server, url, spin_seconds):
    """Latencies (ms) of back-to-back requests to url while a request spins
    in alpha for spin_seconds, and how many failed."""
    got = {}
    spinner = threading.Thread(
        target=lambda: got.update(r=server.get("/a/spin?seconds=%g" % spin_seconds, timeout=spin_seconds + 60)))
    spinner.start()
    deadline = time.monotonic() + 10
    while server.get_json("/a/state", timeout=10)["spinning"] < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("the spin did not start")
        time.sleep(0.01)
    spin_end = time.monotonic() + spin_seconds - 0.5
    samples, failed = [], 0
    while time.monotonic() < spin_end:
        ms, ok = timed(server, url + "/fast", spin_seconds + 60)
        samples.append(ms)
        failed += 0 if ok else 1
    server.get("/a/stop", timeout=spin_seconds + 60)
    spinner.join(spin_seconds + 60)
    return samples, failed


def measure(module, spin_seconds, idle_requests):
    work = Path(tempfile.mkdtemp(prefix="pyinterp-gil-fairness-"))
    harness.make_readable(work)
    server = harness.Httpd(work, module, name="fairness", threads=6, processes=1, extra=site(harness.app("spin")),
                           log_level="warn")
    server.start()
    rows = []
    try:
        for _, url in GROUPS:
            server.get(url + "/fast", timeout=30)  # interpreters made, scripts loaded
        idle = [timed(server, "/b/fast", 10)[0] for _ in range(idle_requests)]
        rows.append(("beta, nothing else running", idle, 0))

        for group, url in GROUPS:
            ms, failed = while_alpha_spins(server, url, spin_seconds)
            label = "%s, the spinning group" % group if url == "/a" else "%s while alpha spins" % group
            rows.append((label, ms, failed))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--module", action="append", required=True, metavar="LABEL=PATH",
                    help="a mod_pyinterp.so to measure (repeatable); LABEL= is optional")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each spin (default 5)")
    ap.add_argument("--idle-requests", type=int, default=200)
    ap.add_argument("--write", action="store_true", help="also rewrite the gil-fairness block of docs/benchmarks.md")
    args = ap.parse_args()

    out = ["| build | requests to | n | p50 ms | p90 ms | max ms | p90 / spinning group's p90 |",
           "|---|---|---:|---:|---:|---:|---:|"]
    print("\n".join(out), flush=True)
    python = None
    for spec in args.module:
        label, _, path = spec.rpartition("=")
        label = label or Path(path).parent.parent.name
        python = harness.module_python(path)
        print("gil-fairness: measuring %s (%s), spins of %g s" % (label, path, args.seconds), file=sys.stderr,
              flush=True)
        rows = measure(path, args.seconds, args.idle_requests)
        ref = percentile(rows[1][1], 90)  # alpha, the spinning group
        for name, ms, failed in rows:
            other = "while alpha spins" in name
            line = "| %s | %s%s | %d | %.1f | %.1f | %.1f | %s |" % (
                label, name, " (%d failed)" % failed if failed else "", len(ms), percentile(ms, 50),
                percentile(ms, 90), max(ms), "%.1f×" % (percentile(ms, 90) / ref) if other else "")
            out.append(line)
            print(line, flush=True)
    note = ("%s; Python %s (%s); one child, 6 threads, switch interval 5 ms; one spin of %g s per group measured, "
            "the client sending its next request as soon as the previous one is answered."
            % (datetime.date.today().isoformat(), python[0], python[1], args.seconds))
    print("\n" + note)
    if args.write:
        text = DOC.read_text()
        a, b = text.index(BEGIN), text.index(END)
        DOC.write_text(text[:a + len(BEGIN)] + "\n" + "\n".join(out) + "\n\n" + note + "\n" + text[b:])
        print("gil-fairness: wrote %s" % DOC, file=sys.stderr)

if __name__ == "__main__":
    main()
