#!/usr/bin/python3
"""Checks an echo path end to end: zr_echocheck.py --host H --port P --bytes N [--conns K]

K connections at once (default 1), each sending N random bytes while it reads
their echo, then shutting down its write side (FIN) and reading to the
server's EOF: exactly the N bytes must come back, in order (sha256), and
the connection must then end cleanly (the FIN went through and came back).

Prints one line (result=ok|fail conns= bytes= secs=, then the failures) and
exits 0 when every connection was intact, else 1.
"""

import argparse
import hashlib
import os
import socket
import sys
import threading
import time


def one(host, port, n, timeout):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        sent = hashlib.sha256()
        err = {}

        def sender():
            try:
                left = n
                while left:
                    buf = os.urandom(min(left, 64 << 10))
                    sent.update(buf)
                    s.sendall(buf)
                    left -= len(buf)
                s.shutdown(socket.SHUT_WR)
            except Exception as e:  # reported below
                err["e"] = e

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        got = hashlib.sha256()
        count = 0
        while True:
            buf = s.recv(64 << 10)
            if not buf:
                break
            got.update(buf)
            count += len(buf)
        t.join(timeout)
        if "e" in err:
            raise err["e"]
        if count != n:
            raise ValueError(f"{count} of {n} bytes echoed")
        if got.hexdigest() != sent.hexdigest():
            raise ValueError("echo differs from what was sent")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--bytes", type=int, default=65536)
    ap.add_argument("--conns", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=30)
    a = ap.parse_args()
    start = time.monotonic()
    bad = []

    def run(i):
        try:
            one(a.host, a.port, a.bytes, a.timeout)
        except Exception as e:
            bad.append(f"conn {i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(a.conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"result={'ok' if not bad else 'fail'} conns={a.conns} bytes={a.bytes} "
          f"failed={len(bad)} secs={time.monotonic() - start:.2f}")
    for b in bad[:10]:
        print(f"  {b}")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
