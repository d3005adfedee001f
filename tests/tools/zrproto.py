"""The tiny test protocol spoken by zr_server.py and zr_client.py.

A client opens a TCP connection and sends one header line:

    ZR1 <up> <down> <down_rate>\\n

  up         bytes the client will send after the header, or "eof": the client
             sends until it shuts down its write side (half-close), and the
             server reads to EOF *before* it answers.
  down       bytes of random data the server sends back.
  down_rate  server send rate in bytes/s, 0 = as fast as possible.

Then the data flows (both ways at once unless up is "eof"), and the server
ends with a trailer line after its <down> bytes:

    <sha256 of the up bytes received> <sha256 of the down bytes sent> <up count>\\n

so the client can check both directions end to end. The payload is random so
that a proxy that drops, repeats or reorders any chunk changes a hash.
"""

import hashlib
import os
import socket
import time

MAGIC = "ZR1"
CHUNK = 256 * 1024


def header(up, down, down_rate=0):
    """The header line for a transfer; up is an int or the string "eof"."""
    return f"{MAGIC} {up} {down} {down_rate}\n".encode()


def parse_header(line):
    """(up, down, down_rate) from a header line; up is None for "eof"."""
    parts = line.decode("ascii", "replace").split()
    if len(parts) != 4 or parts[0] != MAGIC:
        raise ValueError(f"bad header {line!r}")
    up = None if parts[1] == "eof" else int(parts[1])
    return up, int(parts[2]), int(parts[3])


class Pacer:
    """Sleeps so that a sender keeps to `rate` bytes per second (0 = no limit)."""

    def __init__(self, rate):
        self.rate = rate
        self.start = time.monotonic()
        self.sent = 0

    def account(self, n):
        self.sent += n
        if self.rate <= 0:
            return
        due = self.start + self.sent / self.rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def chunk_size(rate):
    """Small chunks when pacing, so that the rate is smooth; big ones otherwise."""
    if rate > 0:
        return max(1024, min(CHUNK, rate // 20))
    return CHUNK


def send_random(sock, n, rate=0):
    """Send n random bytes at `rate`; return their sha256 hex digest."""
    h = hashlib.sha256()
    pacer = Pacer(rate)
    size = chunk_size(rate)
    left = n
    while left > 0:
        buf = os.urandom(min(size, left))
        h.update(buf)
        sock.sendall(buf)
        left -= len(buf)
        pacer.account(len(buf))
    return h.hexdigest()


def recv_hash(sock, n=None):
    """Read n bytes (or to EOF when n is None); return (sha256 hex, count).

    Raises ConnectionError when the peer closes before n bytes."""
    h = hashlib.sha256()
    count = 0
    while n is None or count < n:
        want = CHUNK if n is None else min(CHUNK, n - count)
        buf = sock.recv(want)
        if not buf:
            if n is None:
                break
            raise ConnectionError(f"EOF after {count} of {n} bytes")
        h.update(buf)
        count += len(buf)
    return h.hexdigest(), count


def recv_line(sock, limit=512):
    """Read one \\n-terminated line byte by byte (headers and trailers are tiny)."""
    out = bytearray()
    while len(out) < limit:
        b = sock.recv(1)
        if not b:
            raise ConnectionError(f"EOF inside a line after {bytes(out)!r}")
        out += b
        if b == b"\n":
            return bytes(out)
    raise ValueError("line too long")


def addr_family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def fmt_addr(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
