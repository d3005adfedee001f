#!/usr/bin/env python3
"""Helpers for scripts/bench/mtls.sh (the two-hop mTLS benchmark).

  tool.py noise [--seconds S]        how late 1 ms sleeps wake up, load average
  tool.py iperf FILE                 receiver-side Gbit/s and bytes of `iperf3 -J`
  tool.py wrk FILE                   requests/s, requests, errors of wrk's output
  tool.py handshake [options]        full TLS 1.3 mutual handshakes per second
  tool.py field JSON KEY             one field of a JSON object ("" if absent)
  tool.py table META RESULTS...      the markdown report (several runs' RESULTS:
                                     their samples pooled)

handshake: --procs client processes (fork) each open a TCP connection, do a
full TLS 1.3 handshake with a client certificate (no resumption: every
connection gets a fresh SSL object and no session), then wait for proof that
the *server* finished its side of the handshake (it verifies the client's
certificate only after the client's Finished):
  --expect h2   send the HTTP/2 preface and SETTINGS, read until the server's
                first frame (its SETTINGS) arrives: zring's 15008 sends it
                once the handshake, client certificate included, is done;
  --expect eof  read until the server closes the connection without an alert
                (an HAProxy frontend with `tcp-request session reject`,
                evaluated after the handshake).
Then it closes the connection (h2: GOAWAY first, and it reads until the server
closes, so that neither side sees a reset).
"""
import argparse
import json
import multiprocessing
import os
import re
import socket
import ssl
import statistics
import sys
import time

# --------------------------------------------------------------- small tools


def cmd_noise(args):
    pc = time.perf_counter_ns
    late = []
    end = pc() + int(args.seconds * 1e9)
    while pc() < end:
        t0 = pc()
        time.sleep(0.001)
        late.append(pc() - t0 - 1_000_000)
    late.sort()
    n = len(late)
    us = lambda v: round(max(v, 0) / 1000.0)
    print(json.dumps({
        "wakeup_late_p50_us": us(late[n // 2]),
        "wakeup_late_p99_us": us(late[min(n - 1, n * 99 // 100)]),
        "wakeup_late_max_us": us(late[-1]),
        "loadavg": list(os.getloadavg()),
    }))


def cmd_iperf(args):
    with open(args.file) as f:
        d = json.load(f)
    if "error" in d:
        raise SystemExit("iperf3: " + d["error"])
    end = d["end"]
    recv = end["sum_received"]
    print(json.dumps({"gbps": round(recv["bits_per_second"] / 1e9, 3),
                      "bytes": recv["bytes"], "seconds": recv["seconds"],
                      "retransmits": end.get("sum_sent", {}).get("retransmits")}))


def cmd_wrk(args):
    text = open(args.file).read()
    m = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    if not m:
        raise SystemExit("wrk: no Requests/sec in output:\n" + text)
    out = {"rps": float(m.group(1))}
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(map(int, m.groups())) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    errs = out["socket_errors"] + out["non2xx"]
    if errs:
        out["note"] = f"{errs} wrk errors in {out.get('requests', '?')} requests"
        # A rate of failures is no rate of connections: more than 1% voids it.
        if out["non2xx"] or errs > 0.01 * (out.get("requests") or 0):
            out["note"] += "; value dropped"
            out["rps"] = None
    print(json.dumps(out))


def cmd_field(args):
    src = args.src
    if not src.lstrip().startswith("{"):
        with open(src) as f:
            src = f.read().strip().splitlines()[-1]
    v = json.loads(src)
    for k in args.key.split("."):
        if not isinstance(v, dict) or k not in v:
            print("")
            return
        v = v[k]
    print("" if v is None else v)

# --------------------------------------------------------------- handshakes


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_SETTINGS_EMPTY = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
H2_GOAWAY = b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + b"\x00" * 8


def make_ctx(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False          # SPIFFE identities are URI SANs
    ctx.verify_mode = ssl.CERT_REQUIRED  # ... but the chain is verified
    ctx.load_verify_locations(args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["h2"])
    return ctx


def one_handshake(ctx, args):
    """One full handshake; returns (ok, error kind, details)."""
    raw = socket.create_connection((args.host, args.port), timeout=5)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s = None
    try:
        s = ctx.wrap_socket(raw, do_handshake_on_connect=True)
        info = (s.version(), s.cipher()[0] if s.cipher() else None, s.selected_alpn_protocol())
        if args.expect == "h2":
            s.sendall(H2_PREFACE + H2_SETTINGS_EMPTY)
            got = b""
            while len(got) < 9:
                chunk = s.recv(4096)
                if not chunk:
                    return False, "eof before server SETTINGS", info
                got += chunk
            if got[3] != 4:
                return False, f"first frame type {got[3]} not SETTINGS", info
            # GOAWAY: zring then closes the idle tunnel itself; reading to
            # its EOF avoids a reset (which it would log as an error).
            s.sendall(H2_GOAWAY)
            try:
                while s.recv(4096):
                    pass
            except (ssl.SSLError, OSError):
                pass
            return True, None, info
        # eof: the server ends the connection after its handshake.
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
        except ssl.SSLEOFError:
            pass
        except ConnectionResetError:
            pass
        except ssl.SSLError as e:       # an alert: the server refused us
            return False, "alert: " + (e.reason or str(e)), info
        return True, None, info
    except ssl.SSLError as e:
        return False, "tls: " + (e.reason or str(e)), None
    except OSError as e:
        return False, "os: " + (e.strerror or str(e)), None
    finally:
        (s or raw).close()


def hs_worker(args, start_at, q):
    ctx = make_ctx(args)
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = time.monotonic() + args.seconds
    ok = 0
    errors = {}
    info = None
    t0 = time.monotonic()
    while time.monotonic() < deadline:
        good, kind, i = one_handshake(ctx, args)
        if i:
            info = i
        if good:
            ok += 1
        else:
            errors[kind] = errors.get(kind, 0) + 1
    q.put({"ok": ok, "errors": errors, "elapsed": time.monotonic() - t0, "info": info})


def cmd_handshake(args):
    # One handshake up front: fail fast with a clear message.
    ok, kind, info = one_handshake(make_ctx(args), args)
    if not ok:
        print(json.dumps({"error": kind}))
        sys.exit(1)
    q = multiprocessing.Queue()
    start_at = time.time() + 0.3
    procs = [multiprocessing.Process(target=hs_worker, args=(args, start_at, q))
             for _ in range(args.procs)]
    for p in procs:
        p.start()
    res = [q.get() for _ in procs]
    for p in procs:
        p.join()
    total = sum(r["ok"] for r in res)
    errors = {}
    for r in res:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    elapsed = max(r["elapsed"] for r in res)
    print(json.dumps({"handshakes": total, "seconds": round(elapsed, 3),
                      "rate": round(total / elapsed, 1), "errors": errors,
                      "procs": args.procs, "version": info[0], "cipher": info[1],
                      "alpn": info[2]}))

# --------------------------------------------------------------- the report

# key, label, unit, which way is better, decimals
METRICS = [
    ("tput_p1", "Throughput, 1 stream (iperf3, receiver)", "Gbit/s", "higher", 2),
    ("tput_p4", "Throughput, 4 streams (iperf3 -P 4, receiver)", "Gbit/s", "higher", 2),
    ("cpu_gb_p1", "Proxy pair CPU per GB carried, 1 stream", "CPU ms/GB", "lower", 0),
    ("cpu_gb_p4", "Proxy pair CPU per GB carried, 4 streams", "CPU ms/GB", "lower", 0),
    ("cps", "New connections/s (wrk -c {conns}, `Connection: close`)", "conn/s", "higher", 0),
    ("cpu_conn", "Proxy pair CPU per new connection", "CPU µs", "lower", 1),
    ("hs", "Tunnel handshakes/s achieved (full TLS 1.3 + client cert; client-bound: {hs_procs} Python procs share the cores)", "hs/s", "higher", 0),
    ("cpu_hs", "Server-side CPU per full handshake (zring B / HAProxy B)", "CPU µs", "lower", 1),
    ("hs_core", "Server handshake capacity per core (1 s / CPU per handshake)", "hs/s", "higher", 0),
    ("streams", "Sequential connections/s (wrk -c 1; zring: streams over one pooled tunnel)", "conn/s", "higher", 0),
    ("cpu_stream", "Proxy pair CPU per sequential connection", "CPU µs", "lower", 1),
]
LABEL = {"direct": "direct", "haproxy": "HAProxy pair", "zring": "zring pair"}


def fmt(v, dec):
    if v is None:
        return "—"
    if dec == 0:
        return f"{v:,.0f}"
    return f"{v:.{dec}f}"


def cmd_table(args):
    meta = json.load(open(args.meta))
    rows = [json.loads(l) for f in args.results for l in open(f) if l.strip()]
    paths = ["direct", "haproxy", "zring"]
    samples = {}
    for r in rows:
        if r.get("value") is not None:
            samples.setdefault((r["metric"], r["path"]), []).append(r["value"])

    def med(metric, path):
        v = samples.get((metric, path))
        return statistics.median(v) if v else None

    out = []
    p = out.append
    p(f"# zring two-hop mTLS benchmark — {meta['timestamp']}")
    p("")
    p("| | |")
    p("|---|---|")
    for k, v in meta["header"]:
        p(f"| {k} | {v} |")
    p("")
    p("| metric | unit | better | direct | HAProxy pair | zring pair | zring / HAProxy | zring / direct |")
    p("|---|---|---|---:|---:|---:|---:|---:|")
    params = meta.get("params", {})
    for key, label, unit, better, dec in METRICS:
        if not any((key, x) in samples for x in paths):
            continue
        cells = [label.format(**params), unit, better] + [fmt(med(key, x), dec) for x in paths]
        z = med(key, "zring")
        for ref in ("haproxy", "direct"):
            r = med(key, ref)
            cells.append(f"{z / r:.2f}" if z is not None and r else "—")
        p("| " + " | ".join(cells) + " |")
    p("")
    runs = f"{params.get('repeats', '?')} run(s)" if len(args.results) == 1 else \
        f"all samples of {len(args.results)} benchmark runs pooled"
    p(f"Medians of {runs} per cell, the order of the paths "
      "rotated each round. CPU rows: utime+stime (/proc/PID/stat) of *both* proxies of the "
      "pair (A in the client pod + B in the server pod) over what the run carried; the "
      "handshake row's CPU is the server side's only.")
    p("")
    p("<details><summary>All samples (spread = (max-min)/median)</summary>")
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
            p(f"| {key} | {LABEL[x]} | {', '.join(fmt(s, dec) for s in v)} | {spread} |")
    p("")
    p("</details>")
    notes = [r for r in rows if r.get("note")]
    if notes:
        p("")
        p("Notes:")
        p("")
        for r in notes:
            p(f"- {r['metric']} / {LABEL.get(r['path'], r['path'])} (run {r.get('rep', '?')}): {r['note']}")
    print("\n".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("noise")
    s.add_argument("--seconds", type=float, default=2.0)
    s.set_defaults(fn=cmd_noise)
    s = sub.add_parser("iperf")
    s.add_argument("file")
    s.set_defaults(fn=cmd_iperf)
    s = sub.add_parser("wrk")
    s.add_argument("file")
    s.set_defaults(fn=cmd_wrk)
    s = sub.add_parser("field")
    s.add_argument("src")
    s.add_argument("key")
    s.set_defaults(fn=cmd_field)
    s = sub.add_parser("handshake")
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--ca", required=True)
    s.add_argument("--procs", type=int, default=3)
    s.add_argument("--seconds", type=float, default=5.0)
    s.add_argument("--expect", choices=["h2", "eof"], required=True)
    s.set_defaults(fn=cmd_handshake)
    s = sub.add_parser("table")
    s.add_argument("meta")
    s.add_argument("results", nargs="+", help="one or more runs' JSON lines, pooled")
    s.set_defaults(fn=cmd_table)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
