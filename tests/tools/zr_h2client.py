#!/usr/bin/python3
"""An independent HBONE client (python3-h2 + the ssl module) for zring's e2e scenarios.

    zr_h2client.py --addr 10.77.0.2:15008 --cert C --key K --ca ROOT \\
                   [--expect-id spiffe://...] [request options] [--expect WHAT]

Opens one mutual-TLS connection (TLS 1.3 only, ALPN h2, the server verified
against --ca, hostname not checked: identities are SPIFFE URI SANs), checks
the server's identity (first spiffe:// URI SAN) against --expect-id, then
sends one HTTP/2 request, by default a plain CONNECT:

    :method CONNECT, :authority AUTH, forwarded for="..." (if --forwarded)

Request options (to make it malformed on purpose):
  --authority A        :authority (e.g. 10.77.0.2:7000); --no-authority leaves it out
  --method M           :method (default CONNECT)
  --scheme S / --path P / --protocol P   add those pseudo-headers
  --forwarded V        the forwarded header's value (e.g. for="10.77.0.1:5555")
  --header NAME=VALUE  any other header (repeatable)
  --handshake-only     no request at all: just the TLS handshake and identity
  --alpn LIST          ALPN protocols offered (default h2; e.g. http/1.1 to be refused)
  --garbage N          no TLS at all: N junk bytes (0: silence), then wait for the
                       server to close the connection: outcome "closed" or "timeout"

What happens to the request is the outcome:
  200, 400, 401, 503 ...  the response's :status
  rst:CODE               the stream was reset (RST_STREAM, e.g. rst:PROTOCOL_ERROR)
  goaway:CODE            the connection was closed with GOAWAY before an answer
  eof                    the server closed the connection before an answer
  tls-fail               the TLS handshake failed (or the server's identity,
                         or ALPN, was not what it must be)
  timeout                nothing within --timeout

--mark 0x539 marks the socket as zring marks its own, so that it passes
the capture rules of the pod it runs in.

--expect WHAT (default 200) is the outcome wanted; "rst" matches any reset,
"refused" any of rst / goaway / eof / tls-fail. With --echo N and a 200, N
random bytes are sent as DATA, their echo must come back byte for byte
(sha256), then END_STREAM is sent and the server's END_STREAM awaited
(--echo 0: END_STREAM at once). Without --echo the connection is closed as
soon as the answer is in. --hold SECS keeps the stream open (sending
nothing) that long before the echo.

Prints one line: outcome=... peer_id=... serial=... alpn=... echo=... secs=...
and exits 0 when the outcome is the expected one (and the echo intact), else 1.
"""

import argparse
import hashlib
import os
import select
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings

CHUNK = 64 * 1024


def split_hostport(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def peer_identity(cert):
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "URI" and value.startswith("spiffe://"):
            return value
    return "-"


class Result(Exception):
    def __init__(self, outcome, why="-"):
        super().__init__(outcome)
        self.outcome = outcome
        self.why = why


def tls_connect(a):
    host, port = split_hostport(a.addr)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    ctx.set_alpn_protocols(a.alpn.split(","))
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    raw = socket.socket(fam, socket.SOCK_STREAM)
    if a.mark:
        # Past a pod's capture rules, as zring's own sockets (needs CAP_NET_ADMIN).
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, a.mark)
    raw.settimeout(a.timeout)
    raw.connect((host, port))
    try:
        s = ctx.wrap_socket(raw, server_hostname=None)
    except (ssl.SSLError, OSError) as e:
        raw.close()
        raise Result("tls-fail", f"{type(e).__name__}:{e}")
    return s


class Client:
    def __init__(self, sock, timeout):
        self.sock = sock
        self.timeout = timeout
        cfg = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False,
                                        normalize_outbound_headers=False,
                                        header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        # Generous windows so that the echo is not slowed by us.
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 4 << 20})
        self.conn.increment_flow_control_window(16 << 20)
        self.flush()
        self.status = None
        self.ended = False
        self.reset = None
        self.got = hashlib.sha256()
        self.got_n = 0

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self, wait):
        """Read what is there (waiting up to `wait` s) and handle it."""
        if not self.sock.pending():
            r, _, _ = select.select([self.sock], [], [], wait)
            if not r:
                return
        try:
            data = self.sock.recv(65536)
        except ssl.SSLError as e:
            raise Result("tls-fail" if self.status is None else "tls-error", f"{e}")
        except (ConnectionResetError, BrokenPipeError):
            raise Result("eof" if self.status is None else "reset", "connection reset")
        if not data:
            raise Result("eof", "server closed the connection")
        for ev in self.conn.receive_data(data):
            self.handle(ev)
        self.flush()

    def handle(self, ev):
        if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == 1:
            self.status = dict(ev.headers).get(":status", "?")
        elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == 1:
            self.got.update(ev.data)
            self.got_n += len(ev.data)
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == 1:
            self.ended = True
        elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == 1:
            self.reset = getattr(ev.error_code, "name", str(ev.error_code))
            raise Result(f"rst:{self.reset}", "stream reset")
        elif isinstance(ev, h2.events.ConnectionTerminated):
            name = getattr(ev.error_code, "name", str(ev.error_code))
            if self.status is None or not self.ended:
                raise Result(f"goaway:{name}", "connection terminated")

    def until(self, cond, secs, what):
        deadline = time.monotonic() + secs
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                raise Result("timeout", what)
            self.pump(min(left, 0.5))


def raw_peer(a):
    """--garbage N: no TLS at all; N bytes of junk (0: silence), then read
    until the server closes. Outcome "closed" (what it sent back, e.g. an
    alert, is counted) or "timeout"."""
    host, port = split_hostport(a.addr)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        if a.mark:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, a.mark)
        s.settimeout(a.timeout)
        s.connect((host, port))
        if a.garbage:
            s.sendall(b"GET / HTTP/1.1\r\n" + b"\x00\xff" * (a.garbage // 2))
        got = 0
        try:
            while True:
                buf = s.recv(4096)
                if not buf:
                    break
                got += len(buf)
        except (ConnectionResetError, BrokenPipeError):
            pass
        return Result("closed", f"{got}_bytes_back"), {}


def run(a):
    if a.garbage >= 0:
        return raw_peer(a)
    sock = tls_connect(a)
    info = {"alpn": sock.selected_alpn_protocol() or "-"}
    cert = sock.getpeercert() or {}
    info["peer_id"] = peer_identity(cert)
    info["serial"] = cert.get("serialNumber", "-")
    if info["alpn"] != "h2":
        sock.close()
        return Result("tls-fail", f"ALPN {info['alpn']}"), info
    if a.expect_id and info["peer_id"] != a.expect_id:
        sock.close()
        return Result("tls-fail", f"server identity {info['peer_id']} != {a.expect_id}"), info
    if a.handshake_only:
        # Let a refusal of our certificate arrive (TLS 1.3 sends it after
        # the handshake from the client's point of view).
        sock.settimeout(0.5)
        try:
            data = sock.recv(1)
            if not data:
                return Result("eof", "closed after handshake"), info
        except socket.timeout:
            pass
        except (ssl.SSLError, OSError) as e:
            return Result("tls-fail", f"{type(e).__name__}:{e}"), info
        sock.close()
        return Result("handshake", "-"), info

    c = Client(sock, a.timeout)
    headers = [(":method", a.method)]
    if not a.no_authority:
        headers.append((":authority", a.authority))
    if a.scheme:
        headers.append((":scheme", a.scheme))
    if a.path:
        headers.append((":path", a.path))
    if a.protocol:
        headers.append((":protocol", a.protocol))
    if a.forwarded:
        headers.append(("forwarded", a.forwarded))
    for h in a.header:
        k, _, v = h.partition("=")
        headers.append((k.lower(), v))
    c.conn.send_headers(1, headers, end_stream=False)
    c.flush()
    c.until(lambda: c.status is not None, a.timeout, "no response")
    if c.status != "200" or (a.echo < 0 and not a.hold):
        sock.close()
        return Result(c.status), info

    if a.hold:
        t_end = time.monotonic() + a.hold
        while time.monotonic() < t_end:
            c.pump(min(0.2, max(0.0, t_end - time.monotonic())))
    sent = hashlib.sha256()
    left = max(0, a.echo)
    while left > 0:
        window = min(c.conn.local_flow_control_window(1), c.conn.max_outbound_frame_size)
        if window <= 0:
            c.pump(0.5)
            continue
        buf = os.urandom(min(window, left, CHUNK))
        sent.update(buf)
        c.conn.send_data(1, buf)
        c.flush()
        left -= len(buf)
        c.pump(0)
    c.until(lambda: c.got_n >= max(0, a.echo), a.timeout, f"echo: {c.got_n} of {a.echo} bytes back")
    c.conn.end_stream(1)
    c.flush()
    c.until(lambda: c.ended, a.timeout, "no END_STREAM from the server after ours")
    info["echo"] = c.got_n
    if c.got_n != max(0, a.echo) or c.got.hexdigest() != sent.hexdigest():
        sock.close()
        return Result("corrupt", f"echo differs ({c.got_n} of {a.echo} bytes)"), info
    try:
        c.conn.close_connection()
        c.flush()
    except OSError:
        pass
    sock.close()
    return Result("200"), info


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__)
    ap.add_argument("--addr", required=True, help="HOST:PORT of the HBONE server")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--expect-id", default="")
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--mark", type=lambda v: int(v, 0), default=0,
                    help="SO_MARK for the socket, e.g. 0x539 to bypass the capture rules")
    ap.add_argument("--authority", default="")
    ap.add_argument("--no-authority", action="store_true")
    ap.add_argument("--method", default="CONNECT")
    ap.add_argument("--scheme", default="")
    ap.add_argument("--path", default="")
    ap.add_argument("--protocol", default="")
    ap.add_argument("--forwarded", default="")
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--handshake-only", action="store_true")
    ap.add_argument("--alpn", default="h2", help="ALPN protocols to offer, comma-separated")
    ap.add_argument("--garbage", type=int, default=-1,
                    help="no TLS: send N junk bytes (0: nothing), wait for the server to close")
    ap.add_argument("--echo", type=int, default=-1)
    ap.add_argument("--hold", type=float, default=0)
    ap.add_argument("--expect", default="200")
    a = ap.parse_args()

    start = time.monotonic()
    info = {}
    try:
        res, info = run(a)
    except Result as r:
        res = r
    except socket.timeout:
        res = Result("timeout", "socket timeout")
    except ConnectionRefusedError:
        res = Result("refused-tcp", "TCP connection refused")
    except (ConnectionResetError, BrokenPipeError) as e:
        res = Result("eof", f"{type(e).__name__}")
    except ssl.SSLError as e:
        # E.g. our certificate refused: TLS 1.3 tells the client after its
        # side of the handshake is done, so it shows on the first write or read.
        res = Result("tls-fail", f"{type(e).__name__}:{e}")
    except OSError as e:
        res = Result("eof", f"{type(e).__name__}:{e}")
    outcome = res.outcome
    if a.expect == "rst":
        ok = outcome.startswith("rst:")
    elif a.expect == "refused":
        ok = outcome.split(":")[0] in ("rst", "goaway", "eof", "tls-fail", "refused-tcp")
    else:
        ok = outcome == a.expect
    fields = [f"outcome={outcome}"]
    for k in ("peer_id", "serial", "alpn", "echo"):
        if k in info:
            fields.append(f"{k}={info[k]}")
    fields.append(f"why={str(res.why).replace(' ', '_')[:200]}")
    fields.append(f"secs={time.monotonic() - start:.2f}")
    print(" ".join(fields), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
