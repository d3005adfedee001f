#!/usr/bin/python3
"""Many HBONE requests in one write (python3-h2 + the ssl module), for zring's e2e scenarios.

    zr_h2burst.py --addr 10.77.0.2:15008 --cert C --key K --ca ROOT \\
                  --req AUTHORITY=EXPECT [--req ...] [--echo N]

Opens one mutual-TLS connection (as zr_h2client.py does), then sends the
HEADERS of every --req on its own stream, all in a single write, so that
the server reads them together and answers several from one read.
AUTHORITY "bad" sends a malformed request (:method GET) instead of a
CONNECT. EXPECT is the :status wanted (200, 400, 401, 503). Once a stream
gets 200, N random bytes (--echo, default 4096) go out as DATA and must
come back byte for byte before END_STREAM both ways.

Prints one line per stream (stream=ID authority=... status=... echo=ok|bad|-)
and exits 0 when every stream got what it expected, else 1.
"""

import argparse
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zr_h2client import Result, tls_connect  # noqa: E402

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.settings  # noqa: E402
import select  # noqa: E402


class Stream:
    def __init__(self, authority, expect):
        self.authority, self.expect = authority, expect
        self.status = None
        self.sent = hashlib.sha256()
        self.got = hashlib.sha256()
        self.got_n = 0
        self.ended = False
        self.reset = None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--req", action="append", required=True)
    ap.add_argument("--echo", type=int, default=4096)
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--alpn", default="h2")
    ap.add_argument("--mark", type=int, default=0)
    a = ap.parse_args()
    try:
        sock = tls_connect(a)
    except Result as r:
        print(f"outcome={r.outcome} why={r.why}")
        return 1
    cfg = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False,
                                    normalize_outbound_headers=False, header_encoding="utf-8")
    conn = h2.connection.H2Connection(config=cfg)
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 4 << 20})
    streams = {}
    for i, spec in enumerate(a.req):
        auth, _, expect = spec.rpartition("=")
        sid = 1 + 2 * i
        streams[sid] = Stream(auth, expect)
        if auth == "bad":
            headers = [(":method", "GET"), (":authority", "10.0.0.1:80"),
                       (":scheme", "https"), (":path", "/")]
        else:
            headers = [(":method", "CONNECT"), (":authority", auth)]
        conn.send_headers(sid, headers, end_stream=False)
    sock.sendall(conn.data_to_send())     # one write: every request together

    def done(st):
        if st.reset or (st.status is not None and st.status != "200"):
            return True
        return st.status == "200" and st.ended

    deadline = time.monotonic() + a.timeout
    while not all(done(st) for st in streams.values()):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if not sock.pending():
            select.select([sock], [], [], min(left, 0.5))
        try:
            sock.setblocking(False)
            data = sock.recv(65536)
        except (BlockingIOError, OSError) as e:
            if isinstance(e, BlockingIOError) or "WANT_READ" in str(e):
                continue
            break
        finally:
            sock.setblocking(True)
        if not data:
            break
        for ev in conn.receive_data(data):
            st = streams.get(getattr(ev, "stream_id", 0))
            if isinstance(ev, h2.events.ResponseReceived) and st:
                st.status = dict(ev.headers).get(":status", "?")
                if st.status == "200":
                    buf = os.urandom(a.echo)
                    st.sent.update(buf)
                    conn.send_data(ev.stream_id, buf, end_stream=True)
            elif isinstance(ev, h2.events.DataReceived) and st:
                st.got.update(ev.data)
                st.got_n += len(ev.data)
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and st:
                st.ended = True
            elif isinstance(ev, h2.events.StreamReset) and st:
                st.reset = getattr(ev.error_code, "name", str(ev.error_code))
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
    ok = True
    for sid, st in streams.items():
        echo = "-"
        if st.status == "200":
            echo = "ok" if st.ended and st.got_n == a.echo and \
                st.got.hexdigest() == st.sent.hexdigest() else "bad"
        good = st.status == st.expect and echo in ("-", "ok")
        ok = ok and good
        print(f"stream={sid} authority={st.authority} status={st.status or '-'} "
              f"reset={st.reset or '-'} echo={echo} want={st.expect} {'ok' if good else 'WRONG'}")
    sock.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
