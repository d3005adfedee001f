#!/usr/bin/python3
"""Polls an HTTP endpoint and records how long each answer took.

  zr_probe.py --host H --port P [--path /healthz/ready] [--every S]
              [--timeout S] --stop FILE --out SAMPLES

Sends GET PATH (one connection per probe, as a kubelet does) every S
seconds (default 0.05) until FILE exists, and writes one line per probe to
SAMPLES: "START_EPOCH_S LATENCY_MS STATUS" (STATUS - when nothing answered
within --timeout, default 5 s). Prints "READY" once the first probe is
done, and a summary line at the end (probes=, max_ms=, failed=).
"""

import argparse
import os
import socket
import sys
import time


def probe(host, port, path, timeout):
    """(latency_ms, status) of one GET; status "-" on no answer."""
    t0 = time.monotonic()
    status = "-"
    try:
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect((host, port))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            parts = data.split(b" ", 2)
            if len(parts) >= 2 and parts[0].startswith(b"HTTP/"):
                status = parts[1].decode()
    except OSError:
        pass
    return (time.monotonic() - t0) * 1000, status


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/healthz/ready")
    ap.add_argument("--every", type=float, default=0.05)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--stop", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    n = failed = 0
    worst = 0.0
    with open(a.out, "w") as out:
        while not os.path.exists(a.stop):
            start = time.time()
            ms, status = probe(a.host, a.port, a.path, a.timeout)
            out.write(f"{start:.3f} {ms:.1f} {status}\n")
            out.flush()
            n += 1
            failed += status == "-"
            worst = max(worst, ms)
            if n == 1:
                print("READY", flush=True)
            time.sleep(a.every)
    print(f"probes={n} max_ms={worst:.1f} failed={failed}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
