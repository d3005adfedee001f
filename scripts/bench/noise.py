#!/usr/bin/env python3
"""How noisy is this machine right now? A tiny scheduler probe.

Sleeps 1 ms in a loop for --seconds and reports how late each wake-up was
(p50/p99/max, microseconds), with the 1-minute load average. bench.sh runs it
before and after the measurements and prints it in the report's header: a
p99 of several milliseconds means other work was competing for the CPUs and
the latency rows in particular are to be read with care.
"""
import argparse
import json
import os
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
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
        "loadavg_1m": os.getloadavg()[0],
    }))


if __name__ == "__main__":
    main()
