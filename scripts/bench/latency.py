#!/usr/bin/env python3
"""Fixed-rate HTTP latency probe for zring's benchmark.

Sends GET requests at a fixed rate to one or more targets, taking turns,
and times each one with time.perf_counter_ns. Interleaving the paths request
by request means the machine's background noise (this is a small shared VM)
falls on all of them alike, so their difference is the paths' own.

The turns go in rounds: each round sends one request to every target, in a
fresh random order (--order shuffle, the default; seeded, so a run can be
repeated). A fixed rotation would tie each path to the path before it, and
what ran just before can matter: which CPU the server last woke on, how
long each CPU has sat idle (an idle vCPU of this VM takes 50-100 us to
wake). Shuffled, every path follows every other path equally often, so no
path inherits a position. --order fixed keeps the plain rotation (request i
goes to target i mod n), for comparison; see docs/benchmarks.md for what
swapping positions did (it did not change the ranking).

Two modes:
  keepalive  one connection per target, reused for every request: the latency
             a path adds to a request/response on an established connection;
  newconn    a new connection per request ("Connection: close"), timed from
             connect() to the last byte of the response: adds the proxy's
             accept, original-destination lookup and upstream connect.

The schedule is fixed (request i is due at start + i/total_rate) and the
client has one request in flight, so below saturation every request leaves on
time. Each latency is timed from the request's actual send: a stall of the
machine shows as one slow request, not as a queue of them (requests sent more
than 1 ms after they were due are counted as "late": many of those mean the
rate was too high or the machine too busy for the figures to mean much).

Prints one JSON object: {"targets": {NAME: {p50_us, p90_us, p99_us, ...}}}.
"""
import argparse
import gc
import json
import random
import socket
import sys
import time


def read_response(s):
    """Read one HTTP/1.1 200 response with Content-Length."""
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
    """Nearest-rank percentile."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, -(-len(sorted_vals) * p // 100) - 1))
    return sorted_vals[int(k)]


class Target:
    def __init__(self, spec, mode, path, timeout):
        name, _, hostport = spec.partition("=")
        host, _, port = hostport.rpartition(":")
        if not name or not host or not port:
            raise SystemExit(f"bad --target '{spec}' (want NAME=HOST:PORT)")
        self.name, self.addr, self.timeout = name, (host, int(port)), timeout
        self.ka = mode == "keepalive"
        self.req = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
            + ("" if self.ka else "Connection: close\r\n")
            + "\r\n"
        ).encode()
        self.sock = None
        self.lat = []
        self.errors = 0
        self.late = 0

    def connect(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(self.timeout)
        s.connect(self.addr)
        return s

    def once(self, pc):
        """One request; returns its latency in ns or None on error."""
        try:
            if self.ka:
                if self.sock is None:
                    self.sock = self.connect()
                t0 = pc()
                self.sock.sendall(self.req)
                read_response(self.sock)
            else:
                t0 = pc()
                s = self.connect()
                try:
                    s.sendall(self.req)
                    read_response(s)
                finally:
                    s.close()
            return pc() - t0
        except (OSError, ValueError, ConnectionError):
            self.errors += 1
            if self.sock is not None:
                try:
                    self.sock.close()
                except OSError:
                    pass
                self.sock = None
            return None

    def summary(self, rate):
        lat = sorted(self.lat)
        us = lambda v: None if v is None else round(v / 1000.0, 1)
        return {
            "rate": rate,
            "requests": len(lat),
            "errors": self.errors,
            "late": self.late,
            "p50_us": us(percentile(lat, 50)),
            "p90_us": us(percentile(lat, 90)),
            "p99_us": us(percentile(lat, 99)),
            "p999_us": us(percentile(lat, 99.9)),
            "max_us": us(lat[-1] if lat else None),
            "mean_us": us(sum(lat) / len(lat) if lat else None),
        }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", action="append", required=True,
                    help="NAME=HOST:PORT, repeatable; requests take turns")
    ap.add_argument("--path", default="/small")
    ap.add_argument("--rate", type=float, default=1000.0, help="requests per second, per target")
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    ap.add_argument("--mode", choices=("keepalive", "newconn"), default="keepalive")
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--order", choices=("shuffle", "fixed"), default="shuffle",
                    help="order of the targets within each round (see above)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the shuffled order")
    args = ap.parse_args()

    targets = [Target(t, args.mode, args.path, args.timeout) for t in args.target]
    n = len(targets)
    interval_ns = int(1e9 / (args.rate * n))
    n_warm = int(args.warmup * args.rate) * n
    n_total = n_warm + int(args.duration * args.rate) * n
    late_ns = 1_000_000

    rng = random.Random(args.seed)
    order = list(range(n))

    gc.collect()
    gc.disable()
    pc = time.perf_counter_ns
    start = pc() + 10_000_000
    for i in range(n_total):
        if i % n == 0 and args.order == "shuffle":
            rng.shuffle(order)
        t = targets[order[i % n]]
        due = start + i * interval_ns
        now = pc()
        if now < due:
            time.sleep((due - now) / 1e9)
        elif i >= n_warm and now - due > late_ns:
            t.late += 1
        v = t.once(pc)
        if v is not None and i >= n_warm:
            t.lat.append(v)
    elapsed = (pc() - start) / 1e9
    gc.enable()
    for t in targets:
        if t.sock is not None:
            t.sock.close()

    out = {"mode": args.mode, "elapsed_s": round(elapsed, 3),
           "targets": {t.name: t.summary(args.rate) for t in targets}}
    print(json.dumps(out))
    return 0 if all(t.lat for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
