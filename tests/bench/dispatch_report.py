#!/usr/bin/env python3
"""Turns dispatch_bench JSON (Google Benchmark, aggregates) into a table of
medians and the ratios the project's targets are stated in.

usage: dispatch_report.py [--write docs/benchmarks.md] NAME=results.json[,loop.txt] ...
"""
import json
import sys

BEGIN = "<!-- dispatch-bench:begin -->"
END = "<!-- dispatch-bench:end -->"


def load(path):
    with open(path) as f:
        data = json.load(f)
    med, spread = {}, {}
    for b in data["benchmarks"]:
        name = b["run_name"]
        if b.get("aggregate_name") == "median":
            med[name] = b
        elif b.get("aggregate_name") == "cv":
            spread[name] = b
    return data["context"], med, spread


def ns(b):
    unit = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
    return b["real_time"] * unit


def report(name, paths):
    path, *texts = paths.split(",")
    ctx, med, cv = load(path)
    out = [f"### {name}", "",
           f"{ctx.get('num_cpus')} CPUs, {ctx.get('date', '')}; medians of 5 repetitions "
           "(spread: coefficient of variation).", "",
           "| benchmark | ns per round trip | spread |", "|---|---:|---:|"]
    for key, b in sorted(med.items()):
        c = cv.get(key)
        spread = f"{100 * c['real_time']:.1f} %" if c else ""
        if "items_per_second" in b:
            out.append(f"| {key} | {ns(b):.0f} (items/s {b['items_per_second']:.0f}) | {spread} |")
        else:
            out.append(f"| {key} | {ns(b):.1f} | {spread} |")
    out += ["", "| ratio | value | target |", "|---|---:|---|"]

    def get(k):
        return med.get(k)
    for threads in (1, 4):
        lib = get(f"BM_Library/real_time/threads:{threads}")
        raw = get(f"BM_RawCachedTstate/real_time/threads:{threads}")
        new = get(f"BM_NewTstatePerCall/real_time/threads:{threads}")
        ens = get(f"BM_GILStateEnsure/real_time/threads:{threads}")
        if lib and raw:
            out.append(f"| library / raw cached thread state, {threads} thread(s) | "
                       f"{ns(lib) / ns(raw):.2f}× | ≤ 1.3× |")
        if lib and new:
            out.append(f"| new thread state per call / library, {threads} thread(s) | "
                       f"{ns(new) / ns(lib):.0f}× | ≥ 20× |")
        if lib and ens:
            out.append(f"| PyGILState_Ensure (no thread state) / library, {threads} thread(s) | "
                       f"{ns(ens) / ns(lib):.0f}× | |")
    own = get("BM_OwnGilParallel/threads:2/real_time")
    shared = get("BM_SharedGilParallel/threads:2/real_time")
    if own and shared:
        out.append(f"| own-GIL / shared-GIL throughput, 2 threads | "
                   f"{own['items_per_second'] / shared['items_per_second']:.2f}× | ≥ 1.7× (3.13) |")
    for kind in ("Own", "Shared"):
        one = get(f"BM_{kind}GilParallel/threads:1/real_time")
        two = get(f"BM_{kind}GilParallel/threads:2/real_time")
        if one and two:
            out.append(f"| {kind.lower()}-GIL throughput, 2 threads / 1 thread | "
                       f"{two['items_per_second'] / one['items_per_second']:.2f}× | |")
    for text in texts:
        with open(text) as f:
            out += ["", "Callbacks delivered through the event loop (loop_bench, one posting thread):",
                    "", "```", f.read().rstrip(), "```"]
    return "\n".join(out) + "\n"


def main(argv):
    write = None
    if argv and argv[0] == "--write":
        write, argv = argv[1], argv[2:]
    text = "\n".join(report(*arg.split("=", 1)) for arg in argv)
    print(text)
    if write:
        with open(write) as f:
            doc = f.read()
        a, b = doc.index(BEGIN) + len(BEGIN), doc.index(END)
        with open(write, "w") as f:
            f.write(doc[:a] + "\n" + text + doc[b:])


if __name__ == "__main__":
    main(sys.argv[1:])
