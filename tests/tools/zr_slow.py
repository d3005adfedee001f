#!/usr/bin/python3
"""Slow and silent ZR1 clients for zring's idle-timeout scenario (see zrproto.py).

  zr_slow.py trickle --host H --port P --secs S --interval I [--down M]
      One connection in half-close mode that sends one random byte every I
      seconds for S seconds (nothing else moves), then shuts down its write
      side; the server answers with M bytes and the trailer. Succeeds when the
      connection stayed open all along and every byte arrived intact.

  zr_slow.py idle --host H --port P --idle S [--up N] [--down M]
      Connects and stays silent for S seconds, watching for the connection to
      end, then runs one ZR1 exchange on it (zr_client.py's). Succeeds when
      the connection survived the silence and the bytes arrived intact.

Each prints one result line on stdout (key=value) and exits 0 on success,
1 on failure.
"""

import argparse
import errno
import hashlib
import os
import select
import socket
import sys
import time

import zrproto
from zr_client import Mismatch, connect, describe, transfer


def watch_closed(sock, secs):
    """Wait up to secs for the peer to end the connection (the ZR1 server
    never speaks first). None if it stayed open, else how it ended."""
    r, _, _ = select.select([sock], [], [], secs)
    if not r:
        return None
    try:
        data = sock.recv(1, socket.MSG_PEEK)
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno)).lower()
    return "unexpected_data" if data else "eof"


def cmd_trickle(a):
    start = time.monotonic()
    sent = 0
    try:
        sock = connect(a.host, a.port, a.timeout)
        with sock:
            sock.sendall(zrproto.header("eof", a.down))
            h = hashlib.sha256()
            while time.monotonic() - start < a.secs:
                b = os.urandom(1)
                h.update(b)
                sock.sendall(b)
                sent += 1
                ended = watch_closed(sock, a.interval)
                if ended:
                    raise ConnectionError(f"connection ended ({ended}) after {sent} bytes")
            sock.shutdown(socket.SHUT_WR)
            down_sha, _ = zrproto.recv_hash(sock, a.down)
            trailer = zrproto.recv_line(sock).decode().split()
        if trailer != [h.hexdigest(), down_sha, str(sent)]:
            print(f"result=corrupt sent={sent} trailer={'_'.join(trailer)}")
            return 1
        ok, why = True, "-"
    except Exception as e:
        ok, why = False, describe(e)
    print(f"result={'ok' if ok else 'cut'} secs={time.monotonic() - start:.2f} sent={sent} "
          f"down={a.down} reason={why.replace(' ', '_')}", flush=True)
    return 0 if ok else 1


def cmd_idle(a):
    start = time.monotonic()
    try:
        sock = connect(a.host, a.port, a.timeout)
        with sock:
            ended = watch_closed(sock, a.idle)
            if ended:
                raise ConnectionError(f"connection ended ({ended}) while idle")
            transfer(sock, a.up, a.down)
        ok, why = True, "-"
    except Mismatch as e:
        print(f"result=corrupt reason={e!s:.200}")
        return 1
    except Exception as e:
        ok, why = False, describe(e)
    print(f"result={'ok' if ok else 'cut'} secs={time.monotonic() - start:.2f} idle={a.idle} "
          f"up={a.up} down={a.down} reason={why.replace(' ', '_')}", flush=True)
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--host", required=True)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--timeout", type=float, default=60)

    t = sub.add_parser("trickle")
    common(t)
    t.add_argument("--secs", type=float, required=True)
    t.add_argument("--interval", type=float, required=True)
    t.add_argument("--down", type=int, default=0)

    i = sub.add_parser("idle")
    common(i)
    i.add_argument("--idle", type=float, required=True)
    i.add_argument("--up", type=int, default=0)
    i.add_argument("--down", type=int, default=0)

    a = ap.parse_args()
    return {"trickle": cmd_trickle, "idle": cmd_idle}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
