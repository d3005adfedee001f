#!/usr/bin/env python3
"""Open many idle TCP connections through a path and hold them.

Used by scripts/bench.sh for two rows: user-space memory per idle proxied
connection, and how many concurrent connections a proxy holds.

It opens --count connections to HOST:PORT in batches (non-blocking connect,
one epoll), sends one byte on each and waits for the echo (so the proxy has
really opened its upstream side and moved data), lets them sit idle for
--settle seconds, samples the proxy's memory (--pid), holds them --hold
seconds more, pings every one again and counts those that still answer.
It prints one JSON object on stdout. Everything is bounded in time.
"""
import argparse
import errno
import json
import os
import resource
import select
import socket
import sys
import time


def proc_mem(pid):
    """Memory figures of a process in KiB, and its open fd count."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "RssAnon:", "RssFile:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(("Rss:", "Pss:")):
                    k, v = line.split(":", 1)
                    out["smaps_" + k] = int(v.split()[0])
    except OSError:
        pass
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def ping_all(socks, payload, timeout):
    """Send PAYLOAD on every socket, wait for each echo. Returns the live ones."""
    ep = select.epoll()
    waiting = {}
    for s in socks:
        try:
            s.send(payload)
        except OSError:
            s.close()
            continue
        waiting[s.fileno()] = [s, 0]
        ep.register(s.fileno(), select.EPOLLIN)
    alive = []
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for fd, _ in ep.poll(max(0.0, deadline - time.monotonic()), 4096):
            ent = waiting.get(fd)
            if ent is None:
                continue
            s = ent[0]
            try:
                data = s.recv(64)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                ep.unregister(fd)
                del waiting[fd]
                s.close()
                continue
            ent[1] += len(data)
            if ent[1] >= len(payload):
                ep.unregister(fd)
                del waiting[fd]
                alive.append(s)
    for s, _ in waiting.values():  # no echo in time: count as dead
        s.close()
    ep.close()
    return alive


def open_batch(host, port, n, timeout):
    """Connect N non-blocking sockets; returns (connected, errors by name)."""
    ep = select.epoll()
    pending = {}
    errors = {}
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            errors[errno.errorcode.get(err, str(err))] = errors.get(errno.errorcode.get(err, str(err)), 0) + 1
            s.close()
            continue
        pending[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLOUT)
    done = []
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for fd, _ in ep.poll(max(0.0, deadline - time.monotonic()), 4096):
            s = pending.pop(fd, None)
            if s is None:
                continue
            ep.unregister(fd)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                name = errno.errorcode.get(err, str(err))
                errors[name] = errors.get(name, 0) + 1
                s.close()
            else:
                done.append(s)
    for s in pending.values():
        errors["connect-timeout"] = errors.get("connect-timeout", 0) + 1
        s.close()
    ep.close()
    return done, errors


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--pid", type=int, help="proxy process whose memory to sample")
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--hold", type=float, default=3.0)
    ap.add_argument("--timeout", type=float, default=5.0, help="per batch connect/echo wait")
    args = ap.parse_args()

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    res = {"count": args.count, "nofile": hard}
    if args.pid:
        # Warm the proxy's code paths and allocator once, then take the baseline.
        warm, _ = open_batch(args.host, args.port, 20, args.timeout)
        for s in ping_all(warm, b"w", args.timeout):
            s.close()
        time.sleep(0.5)
        res["before"] = proc_mem(args.pid)

    socks = []
    errors = {}
    t0 = time.monotonic()
    failed_batches = 0
    while len(socks) < args.count and failed_batches < 3:
        n = min(args.batch, args.count - len(socks))
        batch, errs = open_batch(args.host, args.port, n, args.timeout)
        for k, v in errs.items():
            errors[k] = errors.get(k, 0) + v
        live = ping_all(batch, b"p", args.timeout)
        if len(live) < len(batch):
            errors["no-echo"] = errors.get("no-echo", 0) + len(batch) - len(live)
        socks.extend(live)
        # Stop trying once the path refuses more (a full proxy), bounded.
        failed_batches = failed_batches + 1 if len(live) < n // 2 else 0
    res["open_seconds"] = round(time.monotonic() - t0, 3)
    res["opened"] = len(socks)
    res["errors"] = errors

    time.sleep(args.settle)
    if args.pid:
        res["after"] = proc_mem(args.pid)
        b, a = res["before"], res["after"]
        if socks:
            res["rss_kib_per_conn"] = round((a["VmRSS"] - b["VmRSS"]) / len(socks), 3)
            if "smaps_Pss" in a and "smaps_Pss" in b:
                res["pss_kib_per_conn"] = round((a["smaps_Pss"] - b["smaps_Pss"]) / len(socks), 3)
            res["fds_per_conn"] = round((a["fds"] - b["fds"]) / len(socks), 3)

    time.sleep(args.hold)
    alive = ping_all(socks, b"q", max(args.timeout, 10.0))
    res["alive_after_hold"] = len(alive)
    for s in alive:
        s.close()
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
