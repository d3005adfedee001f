#!/usr/bin/env python3
"""Fixed-rate HTTP latency probe for zring's benchmark.

Sends GET requests at a fixed rate (open loop: request i is due at
start + i/rate, whatever happened before) and records each one's latency with
time.perf_counter_ns. Two modes:

  keepalive  one connection, reused for every request: the latency the proxy
             adds to a request/response on an established connection;
  newconn    a new connection per request ("Connection: close"), timed from
             connect() to the last byte of the response: adds the proxy's
             accept, original-destination lookup and upstream connect.

The client is sequential (one request in flight), so at a rate well below
saturation every request is sent on time. When a response comes back after the
next request was due, that request's latency is counted from the moment it
was due, not from when it could be sent (no coordinated omission). Timer
oversleep of the client itself is not counted: a request sent late only
because sleep() woke late is timed from its actual send.

Prints one JSON object with percentiles in microseconds.
"""
import argparse
import gc
import json
import socket
import sys
import time


def read_response(s):
    """Read one HTTP/1.1 response with Content-Length. Returns bytes read."""
    data = b""
    header_end = -1
    need = None
    while True:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before full response")
        data += chunk
        if header_end < 0:
            header_end = data.find(b"\r\n\r\n")
            if header_end < 0:
                continue
            head = data[:header_end].lower()
            i = head.find(b"content-length:")
            if i < 0:
                raise ValueError("response without content-length")
            j = head.find(b"\r\n", i)
            need = header_end + 4 + int(head[i + 15 : j if j > 0 else None])
        if len(data) >= need:
            if not data.startswith(b"HTTP/1.1 200"):
                raise ValueError("status " + data[:20].decode(errors="replace"))
            return len(data)


def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--path", default="/small")
    ap.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    ap.add_argument("--mode", choices=("keepalive", "newconn"), default="keepalive")
    ap.add_argument("--timeout", type=float, default=2.0)
    args = ap.parse_args()

    ka = args.mode == "keepalive"
    req = (
        f"GET {args.path} HTTP/1.1\r\nHost: {args.host}\r\n"
        + ("" if ka else "Connection: close\r\n")
        + "\r\n"
    ).encode()
    addr = (args.host, args.port)

    def connect():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(args.timeout)
        s.connect(addr)
        return s

    interval_ns = int(1e9 / args.rate)
    n_warm = int(args.warmup * args.rate)
    n_total = n_warm + int(args.duration * args.rate)
    lat = []
    errors = 0
    late = 0
    sock = connect() if ka else None
    gc.collect()
    gc.disable()
    pc = time.perf_counter_ns
    start = pc() + 10_000_000
    prev_done = 0
    for i in range(n_total):
        due = start + i * interval_ns
        now = pc()
        if now < due:
            time.sleep((due - now) / 1e9)
        try:
            if ka:
                t0 = pc()
                sock.sendall(req)
                read_response(sock)
            else:
                t0 = pc()
                s = connect()
                s.sendall(req)
                read_response(s)
                s.close()
            t1 = pc()
        except (OSError, ValueError, ConnectionError):
            errors += 1
            if ka:
                try:
                    sock.close()
                except OSError:
                    pass
                try:
                    sock = connect()
                except OSError:
                    time.sleep(0.01)
            prev_done = pc()
            continue
        # Waiting on the previous response past this request's due time is
        # queueing the server caused: count it.
        begin = due if prev_done > due else t0
        if prev_done > due:
            late += 1
        prev_done = t1
        if i >= n_warm:
            lat.append(t1 - begin)
    elapsed = (pc() - start) / 1e9
    gc.enable()
    if sock is not None:
        sock.close()

    lat.sort()
    us = lambda v: None if v is None else round(v / 1000.0, 1)
    out = {
        "mode": args.mode,
        "rate": args.rate,
        "requests": len(lat),
        "errors": errors,
        "late": late,
        "achieved_rate": round(n_total / elapsed, 1) if elapsed > 0 else None,
        "p50_us": us(percentile(lat, 50)),
        "p90_us": us(percentile(lat, 90)),
        "p99_us": us(percentile(lat, 99)),
        "p999_us": us(percentile(lat, 99.9)),
        "max_us": us(lat[-1] if lat else None),
        "mean_us": us(sum(lat) / len(lat) if lat else None),
    }
    print(json.dumps(out))
    return 0 if lat else 1


if __name__ == "__main__":
    sys.exit(main())
