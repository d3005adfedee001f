#!/usr/bin/env python3
"""Parsing and reporting for scripts/bench.sh.

  report.py iperf FILE            receiver-side Gbit/s from `iperf3 -J` output
  report.py wrk FILE              requests/s and error counts from wrk's output
  report.py field SRC KEY         one field (a.b for nested) of a JSON object
                                  given inline or as a file's last line
  report.py table META RESULTS    the markdown report

RESULTS is JSON lines, one per measurement:
  {"metric": "cps", "path": "zring-splice", "rep": 1, "value": 12345.6, "raw": {...}}
META is a JSON object with the header (machine, versions, parameters) and
the ordered list of paths ("columns").
"""
import json
import re
import statistics
import sys

# key, label, unit, which way is better, decimals
METRICS = [
    ("tput_p1", "Throughput, 1 stream (iperf3)", "Gbit/s", "higher", 2),
    ("tput_p4", "Throughput, 4 streams (iperf3 -P 4)", "Gbit/s", "higher", 2),
    ("cpu_gb_p1", "Proxy CPU per GB carried, 1 stream", "CPU ms", "lower", 0),
    ("cpu_gb_p4", "Proxy CPU per GB carried, 4 streams", "CPU ms", "lower", 0),
    ("cps", "New connections/s (wrk, `Connection: close`)", "conn/s", "higher", 0),
    ("cpu_conn", "Proxy CPU per new connection", "CPU µs", "lower", 1),
    ("lat_ka_p50", "Latency p50, keep-alive, {rate}/s per path", "µs", "lower", 1),
    ("lat_ka_p99", "Latency p99, keep-alive, {rate}/s per path", "µs", "lower", 1),
    ("lat_nc_p50", "Latency p50, new connection, {rate}/s per path", "µs", "lower", 1),
    ("lat_nc_p99", "Latency p99, new connection, {rate}/s per path", "µs", "lower", 1),
    ("mem_rss", "Memory per idle connection ({mem_conns} conns, RSS)", "KiB", "lower", 2),
    ("mem_fds", "File descriptors per idle connection", "fds", "lower", 2),
    ("maxconn", "Idle connections held (of {max_conns} tried)", "conns", "higher", 0),
]


def cmd_iperf(path):
    with open(path) as f:
        d = json.load(f)
    if "error" in d:
        raise SystemExit("iperf3: " + d["error"])
    end = d["end"]
    recv = end["sum_received"]["bits_per_second"] / 1e9
    retr = end.get("sum_sent", {}).get("retransmits")
    print(json.dumps({"gbps": round(recv, 3), "retransmits": retr}))


def cmd_wrk(path):
    text = open(path).read()
    m = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    if not m:
        raise SystemExit("wrk: no Requests/sec in output:\n" + text)
    out = {"rps": float(m.group(1))}
    m = re.search(r"(\d+) requests in", text)
    if m:
        out["requests"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(map(int, m.groups())) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    errs = out["socket_errors"] + out["non2xx"]
    if errs:
        out["note"] = f"{errs} wrk errors of {out.get('requests', '?')} requests"
        # A rate of failures is no rate of connections: more than 1% voids it.
        if out["non2xx"] or errs > 0.01 * out.get("requests", 0):
            out["note"] += "; value dropped"
            out["rps"] = None
    print(json.dumps(out))


def cmd_field(src, key):
    """KEY of the JSON object SRC, or of the last line of file SRC; "" if absent."""
    if src.lstrip().startswith("{"):
        d = json.loads(src)
    else:
        with open(src) as f:
            d = json.loads(f.read().strip().splitlines()[-1])
    v = d
    for k in key.split("."):
        if not isinstance(v, dict) or k not in v:
            print("")
            return
        v = v[k]
    print("" if v is None else v)


def fmt(v, dec):
    if v is None:
        return "—"
    if dec == 0:
        return f"{v:,.0f}"
    return f"{v:.{dec}f}"


def label_of(path):
    if path == "direct":
        return "direct"
    if path.startswith("haproxy-"):
        return {"auto": "HAProxy (splice-auto)", "always": "HAProxy (splice always)",
                "off": "HAProxy (no splice)"}.get(path[8:], path)
    if path.startswith("zring-"):
        return f"zring ({path[6:]})"
    return path


def cmd_table(meta_path, results_path):
    meta = json.load(open(meta_path))
    rows = []
    with open(results_path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    paths = meta["paths"]
    zrings = [p for p in paths if p.startswith("zring")]
    ref = meta.get("ratio_ref")
    samples = {}
    paired = {}  # (metric, pair) -> {path: value}: paths measured together
    for r in rows:
        if r.get("value") is not None:
            samples.setdefault((r["metric"], r["path"]), []).append(r["value"])
            if r.get("pair"):
                paired.setdefault((r["metric"], r["pair"]), {})[r["path"]] = r["value"]

    def ratio(metric, z, r):
        """zring over reference: the median of the ratios within each shared
        measurement where there are some, else the ratio of the medians."""
        within = [d[z] / d[r] for (m, _), d in paired.items()
                  if m == metric and z in d and d.get(r)]
        if within:
            return statistics.median(within), True
        zv, rv = med(metric, z), med(metric, r)
        return (zv / rv if zv is not None and rv else None), False

    def med(metric, path):
        v = samples.get((metric, path))
        return statistics.median(v) if v else None

    out = []
    p = out.append
    p(f"# zring benchmark — {meta['timestamp']}")
    p("")
    p("| | |")
    p("|---|---|")
    for k, v in meta["header"]:
        p(f"| {k} | {v} |")
    p("")
    cols = ["metric", "unit", "better"] + [label_of(x) for x in paths]
    refs = [r for r in (ref, "direct") if r in paths]
    for z in zrings:
        for r in refs:
            cols.append(f"{label_of(z)} / {label_of(r)}")
    p("| " + " | ".join(cols) + " |")
    p("|" + "|".join(["---"] * 3 + ["---:"] * (len(cols) - 3)) + "|")
    params = meta.get("params", {})
    for key, label, unit, better, dec in METRICS:
        if not any((key, x) in samples for x in paths):
            continue
        cells = [label.format(**params), unit, better]
        for x in paths:
            cells.append(fmt(med(key, x), dec))
        for z in zrings:
            for r in refs:
                v, was_paired = ratio(key, z, r)
                cells.append("—" if v is None else f"{v:.2f}" + ("*" if was_paired else ""))
        p("| " + " | ".join(cells) + " |")
    p("")
    p(f"Each cell is the median of {params.get('repeats', '?')} run(s); "
      "ratios are zring's median over the other's, except those marked * "
      "(latency: the paths were measured together, request by request), which are "
      "the median of the ratios within each probe run. "
      "\"better\" says which direction is good for zring's ratio.")
    p("")

    # Spread and raw samples, so noisy rows are visible.
    p("<details><summary>All samples (min … max, spread = (max-min)/median)</summary>")
    p("")
    p("| metric | path | samples | spread |")
    p("|---|---|---|---:|")
    for key, label, unit, better, dec in METRICS:
        for x in paths:
            v = samples.get((key, x))
            if not v:
                continue
            m = statistics.median(v)
            spread = f"{(max(v) - min(v)) / m * 100:.0f}%" if m else "—"
            p(f"| {key} | {label_of(x)} | {', '.join(fmt(s, dec) for s in v)} | {spread} |")
    p("")
    p("</details>")
    notes = [r for r in rows if r.get("note")]
    if notes:
        p("")
        p("Notes:")
        p("")
        for r in notes:
            p(f"- {r['metric']} / {label_of(r['path'])} (run {r.get('rep', '?')}): {r['note']}")
    print("\n".join(out))


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd = argv[1]
    if cmd == "iperf":
        cmd_iperf(argv[2])
    elif cmd == "wrk":
        cmd_wrk(argv[2])
    elif cmd == "field":
        cmd_field(argv[2], argv[3])
    elif cmd == "table":
        cmd_table(argv[2], argv[3])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
