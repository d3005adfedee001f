#!/usr/bin/env python3
"""A burst of bad peers on an HBONE port, and the proxy's memory around it.

Used by scripts/bench/memory.sh (issue 17, "Memory goes back after a
burst"). Against HOST:PORT (zring's :15008) it opens, all at once:

  --garbage N    plain TCP connections that send junk instead of a TLS
                 ClientHello (an HTTP request line and NUL/0xff bytes) and
                 wait for the proxy to close them
  --tls N        mutual TLS 1.3 handshakes with a valid client certificate
                 (--cert/--key/--ca, ALPN h2) that then send junk instead of
                 the HTTP/2 preface and wait for the proxy to close them:
                 the costliest bad peer (a whole TLS session and HTTP/2
                 session each)
  --slowloris N  sockets that send a TLS record header, then one more byte
                 every --drip seconds, until the proxy closes them (its TLS
                 handshake deadline) or --hold seconds pass

The burst ends when every socket is closed. --pid samples the proxy's
memory (/proc/PID/status VmRSS, every 20 ms) before the burst (baseline),
its peak during the burst (the largest sample, and VmHWM after a reset of
the peak through /proc/PID/clear_refs), and --after seconds after the end.
Prints one JSON object on stdout; everything is bounded in time.
"""
import argparse
import errno
import json
import resource
import selectors
import socket
import ssl
import sys
import time

JUNK = b"GET / HTTP/1.1\r\n" + b"\x00\xff" * 150


def rss_kb(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0])
    return out


class Peer:
    """One socket of the burst and what it still has to do."""

    def __init__(self, kind, sock):
        self.kind = kind
        self.sock = sock
        self.ssl = None
        self.state = "connect"
        self.next_drip = 0.0
        self.sent_junk = False


def start(kind, host, port, sel, mark):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    if mark:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
    s.setblocking(False)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    err = s.connect_ex((host, port))
    if err not in (0, errno.EINPROGRESS):
        s.close()
        return None
    p = Peer(kind, s)
    sel.register(s, selectors.EVENT_WRITE, p)
    return p


def close(p, sel, stats, outcome):
    try:
        sel.unregister(p.sock)
    except (KeyError, ValueError):
        pass
    (p.ssl or p.sock).close()
    p.state = "done"
    stats[outcome] = stats.get(outcome, 0) + 1


def drain(p, sel, stats):
    """Read what the proxy sends; close on its EOF or reset."""
    try:
        data = (p.ssl or p.sock).recv(65536)
    except (ssl.SSLWantReadError, BlockingIOError):
        return
    except (ssl.SSLError, OSError):
        close(p, sel, stats, f"{p.kind}_closed_by_proxy")
        return
    if not data:
        close(p, sel, stats, f"{p.kind}_closed_by_proxy")


def step(p, ctx, host, sel, stats, now, drip):
    if p.state == "connect":
        err = p.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            close(p, sel, stats, f"{p.kind}_connect_failed")
            return
        if p.kind == "tls":
            p.ssl = ctx.wrap_socket(p.sock, server_hostname=None, do_handshake_on_connect=False)
            p.state = "handshake"
        elif p.kind == "garbage":
            p.sock.send(JUNK)
            p.state = "wait"
        else:
            p.sock.send(b"\x16\x03\x01\x02\x00")	# a ClientHello record, 512 bytes to come
            p.state = "drip"
            p.next_drip = now + drip
        sel.modify(p.sock, selectors.EVENT_READ, p)
        if p.state != "handshake":
            return
    if p.state == "handshake":
        try:
            p.ssl.do_handshake()
        except ssl.SSLWantReadError:
            sel.modify(p.sock, selectors.EVENT_READ, p)
            return
        except ssl.SSLWantWriteError:
            sel.modify(p.sock, selectors.EVENT_WRITE, p)
            return
        except (ssl.SSLError, OSError):
            close(p, sel, stats, "tls_handshake_failed")
            return
        stats["tls_handshakes"] = stats.get("tls_handshakes", 0) + 1
        try:
            p.ssl.send(JUNK)
        except (ssl.SSLError, OSError):
            close(p, sel, stats, "tls_closed_by_proxy")
            return
        p.state = "wait"
        sel.modify(p.sock, selectors.EVENT_READ, p)
        return
    drain(p, sel, stats)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=15008)
    ap.add_argument("--garbage", type=int, default=0)
    ap.add_argument("--tls", type=int, default=0)
    ap.add_argument("--slowloris", type=int, default=0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--ca")
    ap.add_argument("--drip", type=float, default=1.0, help="seconds between slowloris bytes")
    ap.add_argument("--hold", type=float, default=30.0, help="longest a socket stays open")
    ap.add_argument("--pid", type=int, help="the proxy, for its memory")
    ap.add_argument("--after", type=float, default=10.0, help="seconds after the burst to sample")
    ap.add_argument("--mark", type=lambda v: int(v, 0), default=0,
                    help="SO_MARK on every socket (0x539 passes zring's capture rules)")
    a = ap.parse_args()

    want = a.garbage + a.tls + a.slowloris
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want + 64), hard))
    ctx = None
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False
        ctx.load_verify_locations(a.ca)
        ctx.load_cert_chain(a.cert, a.key)
        ctx.set_alpn_protocols(["h2"])

    out = {}
    if a.pid:
        with open(f"/proc/{a.pid}/clear_refs", "w") as f:
            f.write("5")	# reset VmHWM to the current RSS
        out["baseline_kb"] = rss_kb(a.pid)["VmRSS"]
    sel = selectors.DefaultSelector()
    stats = {}
    peers = []
    t0 = time.monotonic()
    for kind, n in (("garbage", a.garbage), ("tls", a.tls), ("slowloris", a.slowloris)):
        for _ in range(n):
            p = start(kind, a.host, a.port, sel, a.mark)
            if p is None:
                stats[f"{kind}_connect_failed"] = stats.get(f"{kind}_connect_failed", 0) + 1
            else:
                peers.append(p)
    peak = out.get("baseline_kb", 0)
    next_sample = 0.0
    while True:
        now = time.monotonic()
        live = [p for p in peers if p.state != "done"]
        if not live:
            break
        if now - t0 > a.hold:
            for p in live:
                close(p, sel, stats, f"{p.kind}_held_to_the_end")
            break
        for key, _ in sel.select(timeout=0.02):
            step(key.data, ctx, a.host, sel, stats, now, a.drip)
        now = time.monotonic()
        for p in live:
            if p.state == "drip" and now >= p.next_drip:
                try:
                    p.sock.send(b"\x01")
                except OSError:
                    close(p, sel, stats, "slowloris_closed_by_proxy")
                    continue
                p.next_drip = now + a.drip
        if a.pid and now >= next_sample:
            peak = max(peak, rss_kb(a.pid)["VmRSS"])
            next_sample = now + 0.02
    out["burst_secs"] = round(time.monotonic() - t0, 2)
    out["outcomes"] = stats
    if a.pid:
        m = rss_kb(a.pid)
        out["peak_kb"] = max(peak, m["VmHWM"])
        out["end_kb"] = m["VmRSS"]
        time.sleep(a.after)
        out["after_kb"] = rss_kb(a.pid)["VmRSS"]
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
