#!/usr/bin/python3
"""Hostile HTTP clients for zring's admin / readiness / metrics endpoints.

  zr_http.py raw --host H --port P (--data TEXT | --header-bytes N) [--within S]
      Sends TEXT (Python escapes such as \\r\\n are decoded) or a GET whose one
      header has N bytes, reads until the server closes, and prints the status
      of the first response (status=- if none) and how long until the close.
      Succeeds when the server answered and closed within S seconds.

  zr_http.py slow --host H --port P --data TEXT --within S [--every T]
      Sends TEXT (a request cut short), then nothing; or with --every, one
      byte of it every T seconds (slowloris: bytes keep coming, the request
      never completes). The server must close the connection within S
      seconds. Prints the status it answered (- if none) and when it closed.

  zr_http.py idle --host H --port P --conns N --within S
      Opens N connections at once and sends nothing. Prints how many the
      server closed at once (within 1 s: over its client limit) and succeeds
      once every one is closed within S seconds (its request timeout).

  zr_http.py nonreader --host H --port P --path PATH --within S
      Pipelines GET PATH requests with a tiny receive buffer and never reads
      a byte: the server's responses pile up until its send stalls. Succeeds
      when the server drops the connection (reset or closed) within S seconds.

Each prints one result line on stdout (key=value) and exits 0 on success,
1 on failure.
"""

import argparse
import socket
import sys
import time


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def connect(host, port, timeout, rcvbuf=0):
    s = socket.socket(family(host), socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def read_to_close(sock, deadline):
    """All bytes until EOF or reset; (data, how) with how eof|reset|timeout."""
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, "timeout"
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, "timeout"
        except ConnectionResetError:
            return data, "reset"
        if not chunk:
            return data, "eof"
        data += chunk


def status_of(data):
    parts = data.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return parts[1].decode()
    return "-"


def payload(a):
    if a.header_bytes:
        return b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * a.header_bytes + b"\r\n\r\n"
    return a.data.encode("latin1").decode("unicode_escape").encode("latin1")


def cmd_raw(a):
    start = time.monotonic()
    with connect(a.host, a.port, a.within) as sock:
        try:
            sock.sendall(payload(a))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking it all
        data, how = read_to_close(sock, start + a.within)
    secs = time.monotonic() - start
    status = status_of(data)
    print(f"status={status} close={how} bytes={len(data)} secs={secs:.2f}", flush=True)
    return 0 if status != "-" and how in ("eof", "reset") else 1


def trickle(sock, data, every, deadline):
    """One byte every `every` seconds until the peer closes; (data, how)."""
    for i in range(len(data)):
        try:
            sock.sendall(data[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            return b"", "reset"
        got, how = read_to_close(sock, min(deadline, time.monotonic() + every))
        if how != "timeout" or time.monotonic() >= deadline:
            return got, how
    return read_to_close(sock, deadline)


def cmd_slow(a):
    start = time.monotonic()
    with connect(a.host, a.port, a.within) as sock:
        if a.every:
            data, how = trickle(sock, payload(a), a.every, start + a.within)
        else:
            sock.sendall(payload(a))
            data, how = read_to_close(sock, start + a.within)
    secs = time.monotonic() - start
    print(f"status={status_of(data)} close={how} secs={secs:.2f}", flush=True)
    return 0 if how in ("eof", "reset") else 1


def cmd_idle(a):
    start = time.monotonic()
    socks, failed = [], 0
    for _ in range(a.conns):
        try:
            socks.append(connect(a.host, a.port, 5))
        except OSError:
            failed += 1
    time.sleep(1)
    at_once = 0
    open_ = []
    for s in socks:
        s.setblocking(False)
        try:
            closed = s.recv(1) == b""
        except BlockingIOError:
            closed = False
        except OSError:
            closed = True
        if closed:
            at_once += 1
            s.close()
        else:
            open_.append(s)
    kept = len(open_)
    for s in open_:
        s.setblocking(True)
        _, how = read_to_close(s, start + a.within)
        s.close()
        if how == "timeout":
            break
    else:
        secs = time.monotonic() - start
        print(f"opened={len(socks)} connect_failed={failed} closed_at_once={at_once} "
              f"kept={kept} all_closed_secs={secs:.2f}", flush=True)
        return 0
    print(f"opened={len(socks)} connect_failed={failed} closed_at_once={at_once} kept={kept} "
          f"error=still_open_after_{a.within}s", flush=True)
    return 1


def cmd_nonreader(a):
    start = time.monotonic()
    req = f"GET {a.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * 64
    sent, how = 0, "timeout"
    with connect(a.host, a.port, a.within, rcvbuf=4096) as sock:
        sock.setblocking(False)
        while time.monotonic() - start < a.within:
            try:
                sent += sock.send(req)
            except BlockingIOError:
                time.sleep(0.05)
            except (ConnectionResetError, BrokenPipeError):
                how = "reset"
                break
    secs = time.monotonic() - start
    print(f"close={how} sent={sent} secs={secs:.2f}", flush=True)
    return 0 if how == "reset" else 1


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("raw", "slow", "idle", "nonreader"):
        s = sub.add_parser(name)
        s.add_argument("--host", required=True)
        s.add_argument("--port", type=int, required=True)
        s.add_argument("--within", type=float, default=10)
        if name in ("raw", "slow"):
            s.add_argument("--data", default="")
            s.add_argument("--header-bytes", type=int, default=0)
        if name == "slow":
            s.add_argument("--every", type=float, default=0)
        if name == "idle":
            s.add_argument("--conns", type=int, required=True)
        if name == "nonreader":
            s.add_argument("--path", default="/")
    a = p.parse_args()
    return {"raw": cmd_raw, "slow": cmd_slow, "idle": cmd_idle,
            "nonreader": cmd_nonreader}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
