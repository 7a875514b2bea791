"""The status page (SetHandler pyinterp-status): counters per interpreter
from every child process, as JSON, as Prometheus text (read back by Debian's
python3-prometheus-client parser) and as an HTML page (opened in Debian's
headless Chromium, screenshot kept under the build tree); the Python stacks
of the requests in flight (?stacks); an answer while every interpreter's GIL
is held, and across a graceful restart."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import zlib
from pathlib import Path

import pytest

import harness
import httpclient

SLOW = harness.app("slow")
# A group name that must come out escaped everywhere.
TRICKY = "<script>alert(1)</script>&x"

EXTRA = """
PyInterpScriptAlias /alpha "{app}" application-group=alpha
PyInterpScriptAlias /beta "{app}" application-group=beta
PyInterpScriptAlias /global "{app}" application-group=%{{GLOBAL}}
PyInterpScriptAlias /tricky "{app}" application-group={tricky}
<Location /pyinterp-status>
    SetHandler pyinterp-status
    Require all granted
</Location>
""".format(app=SLOW, tricky=TRICKY)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def status_json(server, query=""):
    return server.get_json("/pyinterp-status?format=json" + query)


def interp(doc, pid, group):
    """The live interpreter of `group` in child `pid` in a JSON answer, or None."""
    for child in doc["children"]:
        if child["pid"] != pid:
            continue
        for i in child["interpreters"]:
            if i["group"] == group and i["state"] == "live":
                return i
    return None


def exception_pids(server, start):
    """The pid of each PYI0702 (the application raised) logged since `start`."""
    return [int(m) for m in re.findall(r"\[pid (\d+):tid \d+\] \[client [^]]*\] PYI0702", server.log_text(start))]


# ------------------------------------------------------------------ counters

def drive(server):
    """Requests to two groups, tallied per (child pid, group) from what each
    response says: two slow requests at once first (each child has one
    worker, so they land in different children), then fast ones and 404s
    from the application, each on whichever child takes it, and two whose
    application raises (their pids are read from the error log later).
    Returns {(pid, group): expected figures}."""
    expected = {}

    def tally(group, body, status):
        e = expected.setdefault((body["pid"], group), {"requests": 0, "2xx": 0, "4xx": 0, "5xx": 0,
                                                       "exceptions": 0})
        e["requests"] += 1
        e["%dxx" % (status // 100)] += 1

    slow = []
    threads = [threading.Thread(target=lambda: slow.append(server.get("/alpha/sleep?seconds=0.5")))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in slow:
        assert r.status == 200, r
        tally("alpha", r.json(), 200)
    with httpclient.KeepAlive(server.port) as c:
        for group, what, status in [("alpha", "fast", 200)] * 5 + [("beta", "fast", 200)] * 4 + [
                ("beta", "missing", 404)] * 2 + [("alpha", "missing", 404)]:
            r = c.request("GET", "/%s/%s" % (group, what))
            assert r.status == status, r
            tally(group, r.json(), status)
    for _ in range(2):
        assert server.get("/alpha/fail").status == 500
    return expected


@pytest.mark.parametrize("mpm", ["event", "worker", "prefork"])
def test_counters_are_exact_per_interpreter_across_two_children(httpd, log_allow, module_python, mpm):
    log_allow(r"PYI0702|PYI0310")
    server = httpd(name="counters-" + mpm, mpm=mpm, processes=2, threads=1, extra=EXTRA)
    start = server.log_size()
    expected = drive(server)
    pids = {pid for pid, _ in expected}
    assert len(pids) == 2, expected  # both children served
    assert server.wait_for_log(r"(?s)(PYI0702.*){2}", start)
    for pid in exception_pids(server, start):
        e = expected[(pid, "alpha")]
        e["requests"] += 1
        e["5xx"] += 1
        e["exceptions"] += 1
    # Cached thread states are sampled once a second.
    def sampled():
        d = status_json(server)
        return d if all((interp(d, p, g) or {}).get("thread_states", 0) >= 1 for p, g in expected) else None

    doc = httpclient.wait_until(sampled, 5.0)
    assert doc, status_json(server)
    assert {c["pid"] for c in doc["children"]} == set(server.child_pids()) == pids
    assert doc["mpm"] == mpm and doc["counting"] is True
    for (pid, group), e in expected.items():
        i = interp(doc, pid, group)
        assert i is not None, (pid, group, doc)
        got = {"requests": i["requests"], "2xx": i["responses"]["2xx"], "4xx": i["responses"]["4xx"],
               "5xx": i["responses"]["5xx"], "exceptions": i["exceptions"]}
        assert got == e, (pid, group)
        assert i["in_flight"] == 0
        assert i["responses"]["1xx"] == i["responses"]["3xx"] == i["responses"]["none"] == 0
        assert i["latency_seconds"]["count"] == i["gil_wait_seconds"]["count"] == e["requests"]
        assert i["latency_seconds"]["buckets"][-1] == {"le": "+Inf", "count": e["requests"]}
        # CPU time is read on one request in 8 (and counted 8 times).
        assert i["latency_seconds"]["sum"] > 0 and i["cpu_seconds"] >= 0
        assert i["script_loads"] == 1 and i["script_reloads"] == 0
        where = "main" if group == "%{GLOBAL}" else harness.auto_placement(module_python)
        assert i["placement"] == where and i["pool_size"] == 1 and i["interpreter"] == group, (group, i)
        assert i["thread_states"] >= 1
    for child in doc["children"]:
        assert child["busy_workers"] is not None and child["busy_workers"] + child["idle_workers"] >= 1
        assert child["rss_bytes"] > 1 << 20
        assert child["requests_refused"] == child["requests_untracked"] == 0
    # Totals per group over both children.
    for group in ("alpha", "beta"):
        assert doc["groups"][group]["requests"] == sum(e["requests"] for (p, g), e in expected.items()
                                                       if g == group)
    assert doc["groups"]["alpha"]["exceptions"] == 2


# --------------------------------------------------------------- shared server

@pytest.fixture(scope="module")
def server(request):
    from conftest import start_shared_server
    return start_shared_server(request, "status", extra=EXTRA, threads=4, processes=1,
                               allowed=[r"PYI0702", r"PYI0310"])


def warm(server):
    for path in ("/alpha/fast", "/beta/fast", "/global/fast", "/tricky/fast", "/beta/missing"):
        server.get(path)


def test_prometheus_text_parses_with_names_labels_and_consistent_histograms(server, module_python):
    from prometheus_client.parser import text_string_to_metric_families
    warm(server)
    r = server.get("/pyinterp-status?format=prometheus")
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(r.body.decode("utf-8"))}
    doc = status_json(server)
    for name in ("pyinterp_requests", "pyinterp_requests_in_flight", "pyinterp_responses", "pyinterp_exceptions",
                 "pyinterp_request_duration_seconds", "pyinterp_gil_wait_seconds", "pyinterp_cpu_seconds",
                 "pyinterp_script_loads", "pyinterp_script_reloads", "pyinterp_thread_states",
                 "pyinterp_interpreter_info", "pyinterp_child_workers", "pyinterp_child_resident_memory_bytes"):
        assert name in families, sorted(families)
    assert all(n.startswith("pyinterp_") for n in families)
    pid = str(server.child_pids()[0])
    requests = {}
    for s in families["pyinterp_requests"].samples:
        assert set(s.labels) == {"group", "interpreter", "pid"}, s
        assert s.labels["pid"] == pid
        requests[s.labels["group"]] = s.value
    assert {"alpha", "beta", "%{GLOBAL}", TRICKY} <= set(requests)  # the name comes back unescaped
    for group, value in requests.items():
        assert value == interp(doc, int(pid), group)["requests"], group
    info = {s.labels["group"]: s.labels for s in families["pyinterp_interpreter_info"].samples}
    assert info["%{GLOBAL}"]["placement"] == "main" and info["%{GLOBAL}"]["interpreter"] == "main"
    assert info["alpha"]["placement"] == harness.auto_placement(module_python)
    for name in ("pyinterp_request_duration_seconds", "pyinterp_gil_wait_seconds"):
        f = families[name]
        assert f.type == "histogram"
        series = {}
        for s in f.samples:
            key = (s.labels["group"], s.labels["interpreter"], s.labels["pid"])
            series.setdefault(key, {"buckets": [], "sum": None, "count": None})
            if s.name.endswith("_bucket"):
                series[key]["buckets"].append((float(s.labels["le"]), s.value))
            elif s.name.endswith("_sum"):
                series[key]["sum"] = s.value
            else:
                series[key]["count"] = s.value
        assert len(series) == len(requests)
        for key, h in series.items():
            les = [le for le, _ in h["buckets"]]
            counts = [c for _, c in h["buckets"]]
            assert les == sorted(les) and les[-1] == float("inf"), key
            assert counts == sorted(counts), key  # cumulative
            assert counts[-1] == h["count"] == requests[key[0]], key
            assert h["sum"] >= 0
    responses = {(s.labels["group"], s.labels["code"]): s.value for s in families["pyinterp_responses"].samples}
    assert responses[("beta", "4xx")] >= 1
    workers = {s.labels["state"]: s.value for s in families["pyinterp_child_workers"].samples}
    assert workers["busy"] >= 1 and workers["busy"] + workers["idle"] == 4


def test_charts_fill_in_from_the_history(server):
    """History points are sampled every 5 s: after two, the page draws bars
    and a line for each busy interpreter."""
    deadline = time.monotonic() + 15
    page = ""
    while time.monotonic() < deadline:
        warm(server)
        page = server.get("/pyinterp-status").body.decode()
        if page.count("<polyline") >= 4:
            break
        time.sleep(0.5)
    assert page.count("<polyline") >= 4, page[-3000:]
    assert re.search(r"<svg [^>]*role=\"img\" aria-label=\"last 5 min: up to [\d.]+ requests/s", page)


def artefact_dir():
    d = Path(os.environ.get("PYINTERP_TEST_ARTEFACTS") or tempfile.gettempdir()) / "status-page"
    d.mkdir(parents=True, exist_ok=True)
    return d


def chromium(*args, timeout=90):
    profile = tempfile.mkdtemp(prefix="pyinterp-chromium-")
    try:
        return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                               "--no-first-run", "--disable-background-networking", "--disable-component-update",
                               "--disable-sync", "--user-data-dir=" + profile, *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, text=True)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def png_pixels(path):
    """(width, height, distinct byte values of the decoded image data)."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    return width, height, len(set(zlib.decompress(idat)))


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="Debian's chromium is not installed "
                    "(tests/install-deps installs it)")
def test_html_page_renders_in_chromium_with_every_interpreter_and_no_script(server):
    warm(server)
    r = server.get("/pyinterp-status")
    assert r.status == 200 and r.header("Content-Type") == "text/html; charset=utf-8"
    page = r.body.decode("utf-8")
    assert "<script" not in page.lower() and "javascript:" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;x" in page
    assert '<meta http-equiv="refresh"' in page
    url = "http://127.0.0.1:%d/pyinterp-status" % server.port
    # The DOM Chromium built: one row per interpreter, the tricky group as
    # text (re-serialised escaped), no script element.
    dom = chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<script" not in dom.stdout.lower()
    doc = status_json(server)
    rows = re.findall(r"<tr>(?:(?!</tr>).)*?<svg|<tr>(?:(?!</tr>).)*?collecting", dom.stdout, re.S)
    live = [i for c in doc["children"] for i in c["interpreters"]]
    assert len(rows) == len(live) == 4, dom.stdout[-3000:]
    for group in ("alpha", "beta", "%{GLOBAL}", "&lt;script&gt;alert(1)&lt;/script&gt;&amp;x"):
        assert '<td class="l">%s</td>' % group in dom.stdout, group
    shot = artefact_dir() / "status-page.png"
    if shot.exists():
        shot.unlink()
    res = chromium("--window-size=1800,900", "--screenshot=" + str(shot), url)
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    width, height, distinct = png_pixels(shot)
    assert (width, height) == (1800, 900)
    assert distinct > 20  # text, tables and charts, not a blank page
    (artefact_dir() / "status-page.html").write_text(page)


def test_stacks_show_each_busy_worker_in_its_own_interpreter(server, scratch):
    flags = {g: scratch / ("release-" + g) for g in ("alpha", "beta")}
    results = {}

    def hold(group):
        results[group] = server.get_json("/%s/hold?flag=%s" % (group, flags[group]))

    threads = [threading.Thread(target=hold, args=(g,)) for g in flags]
    for t in threads:
        t.start()
    try:
        pid = server.child_pids()[0]
        assert httpclient.wait_until(lambda: all(
            (interp(status_json(server), pid, g) or {}).get("in_flight") == 1 for g in flags), 10.0)
        def both_held():
            d = status_json(server, "&stacks")
            held = [r for r in d["stacks"][0]["requests"]
                    if r["frames"] and r["frames"][-1]["function"] == "holds_until_released"]
            return d if len(held) == 2 else None

        doc = httpclient.wait_until(both_held, 10.0)
        assert doc, status_json(server, "&stacks")
        [child] = doc["stacks"]
        assert child["pid"] == pid and child["answered"] and not child["truncated"]
        seen = {r["group"]: r for r in child["requests"]}
        for g in flags:
            r = seen[g]
            assert r["url"].startswith("/%s/hold?flag=" % g)
            assert r["captured"] and r["elapsed_seconds"] >= 0
            assert [f["function"] for f in r["frames"]][-2:] == ["application", "holds_until_released"]
            assert r["frames"][-1]["file"] == str(SLOW)
        html = server.get("/pyinterp-status?stacks").body.decode()
        assert html.count("in holds_until_released") == 2
        assert "<script" not in html.lower()
    finally:
        for f in flags.values():
            f.write_text("go")
        for t in threads:
            t.join()
    # Each stack was read in the interpreter that served the request.
    for g in flags:
        assert seen[g]["interpreter_id"] == results[g]["interp"]
        assert seen[g]["interpreter"] == g


def test_answers_while_every_interpreter_gil_is_held(server):
    """Three workers hold the GIL of every interpreter of the child (one
    shared GIL here: each in turn, in one C call that never lets it go, 4 s
    each); the fourth answers the status page meanwhile, in every form."""
    warm(server)
    done = {}
    held_until = {}

    def spin(path):
        held_until[path] = server.get_json(path + "/spin?seconds=4", timeout=60)["held_until"]
        done[path] = time.monotonic()

    threads = [threading.Thread(target=spin, args=(p,)) for p in ("/alpha", "/beta", "/global")]
    for t in threads:
        t.start()
    try:
        pid = server.child_pids()[0]
        # One of them is inside its interpreter, holding the GIL.
        assert httpclient.wait_until(lambda: any(
            (interp(status_json(server), pid, g) or {}).get("in_flight") == 1
            for g in ("alpha", "beta", "%{GLOBAL}")), 10.0)
        time.sleep(0.3)  # well inside its C call
        answered = []
        for form in ("?format=json", "?format=prometheus", ""):
            began = time.monotonic()
            r = server.get("/pyinterp-status" + form, timeout=30)
            answered.append((form, r.status, time.monotonic() - began, time.monotonic()))
        # Stacks need each interpreter's GIL: the child's watchdog waits for
        # it, and the page says so after its bounded wait.
        began = time.monotonic()
        stacks = status_json(server, "&stacks")
        stacks_at = time.monotonic()
        assert stacks_at - began < 5
    finally:
        for t in threads:
            t.join()
    first_done = min(done.values())
    for form, status, took, at in answered:
        assert status == 200, form
        assert at < first_done, form  # answered while the GIL was held
        assert took < 1.5, (form, took)
    # Until the first C call ended, a GIL was held without a break (the
    # response reaches the client later still, all the more on a busy machine).
    if stacks_at < min(held_until.values()):
        assert stacks["stacks"][0]["answered"] is False, (began, stacks_at, held_until, done, stacks)


def test_bad_queries_and_methods(server):
    assert server.get("/pyinterp-status?format=xml").status == 400
    assert server.get("/pyinterp-status?stacks&format=prometheus").status == 400
    r = server.request("POST", "/pyinterp-status", body=b"x", headers={"Content-Length": "1"})
    assert r.status == 405 and "GET" in (r.header("Allow") or "")


def test_a_graceful_restart_keeps_counting_in_the_same_memory(httpd):
    server = httpd(name="restart", processes=2, threads=2, extra=EXTRA)
    for _ in range(3):
        server.get("/alpha/fast")

    # Every child of this generation, once each has claimed its region (a
    # child that had not yet would pass for a new one below).
    def listed(d):
        return {c["pid"] for c in d["children"]} == set(server.child_pids())

    def all_listed():
        d = status_json(server)
        return d if listed(d) else None

    before = httpclient.wait_until(all_listed, 10.0)
    assert before, status_json(server)
    old = {c["pid"] for c in before["children"]}
    start = server.log_size()
    server.graceful()
    assert server.wait_for_log(r"AH00493|resuming normal operations", start, timeout=15)

    # Every child of the new generation, and only those, once the old ones
    # have exited (each gave its region back).
    def new_children():
        d = status_json(server)
        pids = {c["pid"] for c in d["children"]}
        return d if pids and not pids & old and listed(d) else None

    after = httpclient.wait_until(new_children, 15.0)
    assert after, status_json(server)
    assert after["generation"] == before["generation"] + 1
    assert all(c["generation"] == after["generation"] for c in after["children"])
    assert all(c["interpreters"] == [] for c in after["children"])  # nothing served yet
    for _ in range(4):
        server.get("/alpha/fast")
    doc = status_json(server)
    assert sum(i["requests"] for c in doc["children"] for i in c["interpreters"]) == 4
