#!/usr/bin/python3
"""Instructions per request: mod_pyinterp against mod_wsgi under callgrind.

Run through tests/bench/http-profile, which builds the module and installs
mod_wsgi and valgrind when missing.  For each server and case it starts the
benchmark's httpd (tests/bench/http_bench.py's configuration, same apps) in
one process (-X) under `valgrind --tool=callgrind`, collecting only inside
ap_run_process_connection (what the event MPM runs for each request on a
keep-alive connection), and sends the requests one after another on one
connection.  It does that twice, with W and with W + N requests; the
difference of the two profiles is the cost of N requests in steady state,
without start-up, interpreter creation or script loading.  Instruction counts
do not depend on the machine's load, so they show what a change to the
request path bought where req/s on a small shared box cannot.

Prints, per case, instructions per request for both servers and their ratio,
and with --top K the K functions with the most inclusive instructions per
request in pyinterp's profile (--top-server to pick the other one).
"""
import argparse
import collections
import datetime
import http.client
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import http_bench as hb  # noqa: E402  (same directory)

# (key, URL path, method, body) — a subset of http_bench.CASES that makes sense
# one request at a time.
CASES = {
    "static": ("/hello.txt", "GET", None),
    "hello": ("/hello", "GET", None),
    "hello-global": ("/hello-global", "GET", None),
    "big": ("/big", "GET", None),
    "post": ("/upload", "POST", b"x" * (1 << 20)),
}
COLLECT = "ap_run_process_connection"
BEGIN, END = "<!-- http-profile:begin -->", "<!-- http-profile:end -->"


def log(msg):
    print("http-profile: " + msg, file=sys.stderr, flush=True)


def demote_to(user):
    """valgrind must run as the user httpd serves as: its gdbserver FIFOs
    are opened again after httpd drops privileges."""
    pw = pwd.getpwnam(user)

    def demote():
        os.setgid(pw.pw_gid)
        os.setgroups([])
        os.setuid(pw.pw_uid)
    return demote, pw


def profile_run(server, case, requests, out, user):
    """Starts `server` under callgrind, sends `requests` requests of `case`,
    stops it; returns the callgrind output file."""
    path, method, body = CASES[case]
    out_file = out / ("%s-%s-%d.callgrind" % (server.name, case, requests))
    cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=" + COLLECT,
           "--vgdb=no", "--callgrind-out-file=" + str(out_file),
           hb.private_httpd.HTTPD, "-X", "-d", str(server.workdir), "-f", str(server.conf_path), "-DFOREGROUND"]
    env = hb.private_httpd.httpd_env()
    env["PYTHONHASHSEED"] = "0"  # the same dict layouts in every run
    preexec = None
    if os.geteuid() == 0:
        preexec, pw = demote_to(user)
        for p in (server.workdir, out):
            for dirpath, _dirs, files in os.walk(p):
                os.chown(dirpath, pw.pw_uid, pw.pw_gid)
                for f in files:
                    os.chown(os.path.join(dirpath, f), pw.pw_uid, pw.pw_gid)
    with open(out / ("%s-%s-%d.valgrind.log" % (server.name, case, requests)), "w") as vlog:
        proc = subprocess.Popen(cmd, env=env, preexec_fn=preexec, start_new_session=True,
                                stdin=subprocess.DEVNULL, stdout=vlog, stderr=vlog)
    server.proc = proc
    try:
        conn = None
        deadline = time.monotonic() + 300
        sent = 0
        while sent < requests:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
            try:
                headers = {"Content-Type": "application/octet-stream"} if body else {}
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException):
                # Not listening yet (valgrind starts slowly), or the server
                # closed the connection (MaxKeepAliveRequests): retry.
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("http-profile: %s did not serve %s; see %s" % (server.name, path, vlog.name))
                conn.close()
                conn = None
                time.sleep(0.2)
                continue
            if resp.status != 200:
                raise SystemExit("http-profile: %s %s: HTTP %d" % (server.name, path, resp.status))
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
            sent += 1
        if conn is not None:
            conn.close()
    finally:
        server.stop(timeout=120)
    if not out_file.exists() or out_file.stat().st_size == 0:
        raise SystemExit("http-profile: callgrind wrote no %s; see %s" % (out_file, vlog.name))
    return out_file


def parse_callgrind(path):
    """Returns (total, {function: (self, inclusive)}) from a callgrind file
    with one event (Ir).  Inclusive = self + the inclusive cost of every
    call made from the function (recursive calls count twice; fine here)."""
    names = {}
    self_cost = collections.Counter()
    incl = collections.Counter()
    fn = None
    pending_call = False
    total = 0

    def name_of(spec):
        m = re.match(r"\((\d+)\)(?: (.*))?$", spec)
        if not m:
            return spec
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), spec)

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                cost = int(line.split()[-1]) if len(line.split()) > 1 else 0
                if pending_call:
                    incl[fn] += cost
                    pending_call = False
                else:
                    self_cost[fn] += cost
                    incl[fn] += cost
                continue
            if line.startswith("fn="):
                fn = name_of(line[3:])
            elif line.startswith("cfn="):
                name_of(line[4:])
            elif line.startswith("calls="):
                pending_call = True
            elif line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    return total, {k: (self_cost[k], incl[k]) for k in incl}


def per_request(small, large, n):
    t1, f1 = parse_callgrind(small)
    t2, f2 = parse_callgrind(large)
    funcs = {}
    for k in set(f1) | set(f2):
        s1, i1 = f1.get(k, (0, 0))
        s2, i2 = f2.get(k, (0, 0))
        funcs[k] = ((s2 - s1) / n, (i2 - i1) / n)
    return (t2 - t1) / n, funcs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--module", required=True, help="mod_pyinterp.so to load")
    ap.add_argument("--cases", default=",".join(CASES),
                    help="comma-separated subset of: " + ",".join(CASES))
    ap.add_argument("--servers", default=",".join(hb.SERVERS))
    ap.add_argument("--warmup", type=int, default=50, help="requests in the smaller run (W)")
    ap.add_argument("--requests", type=int, default=500, help="extra requests in the larger run (N)")
    ap.add_argument("--top", type=int, default=0, help="show the K costliest functions per request")
    ap.add_argument("--top-server", default="pyinterp")
    ap.add_argument("--keep", action="store_true", help="keep the callgrind files")
    ap.add_argument("--write", action="store_true", help="rewrite docs/benchmarks.md's http-profile block")
    args = ap.parse_args()
    cases = args.cases.split(",")
    servers = args.servers.split(",")
    for c in cases:
        if c not in CASES:
            raise SystemExit("http-profile: unknown case %r (expected some of %s)" % (c, ", ".join(CASES)))
    for s in servers:
        if s not in hb.SERVERS:
            raise SystemExit("http-profile: unknown server %r (expected some of %s)" % (s, ", ".join(hb.SERVERS)))

    work = Path(tempfile.mkdtemp(prefix="pyinterp-http-profile-"))
    work.chmod(0o755)
    hb.prepare_apps(work)
    out = work / "callgrind"
    out.mkdir()
    user, _group = hb.private_httpd.run_user()
    results = {}
    profiles = {}
    for s in servers:
        # threads=2: the fewest the event MPM takes; -X serves from one process.
        server = hb.Server(s, work, os.path.abspath(args.module), 2)
        if s == "mod_wsgi":
            # With -X, mod_wsgi 4.9.4 on Python 3.11 hangs in threading's
            # shutdown when it destroys its interpreters, and callgrind
            # writes its profile only at exit.  Shutdown only; the request
            # path is untouched.
            server.site += "WSGIDestroyInterpreter Off\n"
            server.render(server.port)
        for c in cases:
            log("%s %s: %d then %d requests under callgrind" % (s, c, args.warmup, args.warmup + args.requests))
            small = profile_run(server, c, args.warmup, out, user)
            large = profile_run(server, c, args.warmup + args.requests, out, user)
            results[(s, c)], profiles[(s, c)] = per_request(small, large, args.requests)

    lines = ["%s; %s.  Instructions per request (callgrind), counted inside %s, %d requests after %d "
             "on one keep-alive connection, httpd -X, PYTHONHASHSEED=0:" % (
                 datetime.date.today().isoformat(), hb.versions(), COLLECT, args.requests, args.warmup), ""]
    lines.append("| case | " + " | ".join(servers) + (" | pyinterp / mod_wsgi |" if len(servers) == 2 else " |"))
    lines.append("|---|" + "---:|" * len(servers) + ("---:|" if len(servers) == 2 else ""))
    for c in cases:
        cells = ["%.1fk" % (results[(s, c)] / 1000.0) for s in servers]
        ratio = ""
        if len(servers) == 2 and results[(servers[1], c)]:
            ratio = " %.2f |" % (results[(servers[0], c)] / results[(servers[1], c)])
        lines.append("| %s | %s |%s" % (c, " | ".join(cells), ratio))
    block = "\n".join(lines)
    print(block)
    if args.write:
        hb.write_doc(block, BEGIN, END)
        log("wrote %s" % hb.DOC)
    if args.top:
        for c in cases:
            key = (args.top_server, c)
            if key not in profiles:
                continue
            print("\n%s, %s: the %d functions with the most instructions per request (inclusive, self):"
                  % (args.top_server, c, args.top))
            rows = sorted(profiles[key].items(), key=lambda kv: -kv[1][1])[:args.top]
            for name, (self_ir, incl_ir) in rows:
                print("  %10.0f %10.0f  %s" % (incl_ir, self_ir, name[:110]))
    if args.keep:
        log("callgrind files kept in %s" % out)
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
