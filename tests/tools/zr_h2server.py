#!/usr/bin/python3
"""An independent HBONE server (python3-h2 + the ssl module) for zring's e2e scenarios.

    zr_h2server.py --listen 10.77.0.2 --port 15008 --cert C --key K --ca ROOT [--status 200]

Stands in for a peer's zring (or ztunnel) on port 15008: TLS 1.3 only, ALPN
h2, presents C/K and requires a client certificate that verifies against
ROOT. Every plain CONNECT gets --status (200 by default), anything else
400; on 200 the stream echoes:
every DATA byte goes back on the same stream, and when the client ends its
side (END_STREAM) the server ends its own once everything is echoed.

Prints "READY" on stdout once listening, and on stderr one line per TLS
connection and per stream, e.g.

    tls peer=10.77.0.1:40000 peer_id=spiffe://cluster.local/ns/default/sa/client alpn=h2
    tls-fail peer=10.77.0.1:40002 reason=...
    stream peer_id=spiffe://... method=CONNECT authority=10.77.0.2:9000 forwarded=for="10.77.0.1:51234" status=200 bytes=4096 result=ended

(bytes = echoed; result = ended | reset:CODE | closed). Runs until killed.

--statuses 503,200,401 answers the requests of a connection with those
statuses in turn, by order of arrival (instead of --status for all).
--batch N holds the answers until N requests have arrived on the
connection, then sends them all in one write, so that the client reads
several answers (and refusals) together.
"""

import argparse
import select
import socket
import ssl
import sys
import threading

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

_lock = threading.Lock()


def log(msg):
    with _lock:
        print(msg, file=sys.stderr, flush=True)


def fmt_addr(peer):
    host, port = peer[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def peer_identity(cert):
    for kind, value in (cert or {}).get("subjectAltName", ()):
        if kind == "URI" and value.startswith("spiffe://"):
            return value
    return "-"


def plain_connect(headers):
    """A plain CONNECT (RFC 9113 8.5): :method CONNECT and :authority, once
    each, and no other pseudo-header."""
    names = [k for k, _ in headers if k.startswith(":")]
    return (sorted(names) == [":authority", ":method"] and
            dict(headers).get(":method") == "CONNECT")


class Stream:
    def __init__(self, headers):
        self.headers = headers
        self.pending = bytearray()
        self.client_ended = False
        self.server_ended = False
        self.echoed = 0
        self.status = "-"


def serve(raw, peer, ctx, statuses, batch):
    name = fmt_addr(peer)
    try:
        raw.settimeout(10)
        sock = ctx.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError) as e:
        log(f"tls-fail peer={name} reason={type(e).__name__}:{str(e).replace(' ', '_')[:160]}")
        raw.close()
        return
    pid = peer_identity(sock.getpeercert())
    alpn = sock.selected_alpn_protocol() or "-"
    log(f"tls peer={name} peer_id={pid} alpn={alpn}")
    if alpn != "h2":
        sock.close()
        return
    # python-h2 4.1 insists on :path and :scheme in every request (RFC 7540
    # 8.1.2.3 without the CONNECT exception of 8.3), so it cannot check a
    # plain CONNECT itself: we do (plain_connect below).
    cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8",
                                    validate_inbound_headers=False)
    conn = h2.connection.H2Connection(config=cfg)
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 4 << 20})
    conn.increment_flow_control_window(16 << 20)
    streams = {}
    held = []      # requests waiting for --batch
    nreq = [0]

    def end_log(sid, result):
        st = streams.pop(sid, None)
        if st is None:
            return
        h = st.headers
        log(f"stream peer_id={pid} method={h.get(':method', '-')} "
            f"authority={h.get(':authority', '-')} forwarded={h.get('forwarded', '-')} "
            f"status={st.status} bytes={st.echoed} result={result}")

    def pump_out():
        for sid, st in list(streams.items()):
            while st.pending:
                try:
                    window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                except h2.exceptions.StreamClosedError:
                    break
                if window <= 0:
                    break
                chunk = bytes(st.pending[:window])
                del st.pending[:window]
                conn.send_data(sid, chunk)
                st.echoed += len(chunk)
            if st.client_ended and not st.pending and not st.server_ended:
                conn.end_stream(sid)
                st.server_ended = True
                end_log(sid, "ended")

    def answer(sid):
        st = streams[sid]
        conn.send_headers(sid, [(":status", st.status)], end_stream=st.status != "200")
        if st.status != "200":
            st.server_ended = True
            end_log(sid, "answered")

    try:
        sock.settimeout(None)
        sock.sendall(conn.data_to_send())
        while True:
            if not sock.pending():
                select.select([sock], [], [], 1.0)
            try:
                sock.setblocking(False)
                data = sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            finally:
                sock.setblocking(True)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    h = dict(ev.headers)
                    st = streams[ev.stream_id] = Stream(h)
                    code = statuses[nreq[0] % len(statuses)] if plain_connect(ev.headers) else 400
                    nreq[0] += 1
                    st.status = str(code)
                    held.append(ev.stream_id)
                    if len(held) >= batch:
                        for sid in held:
                            answer(sid)
                        held.clear()
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    st = streams.get(ev.stream_id)
                    if st and ev.stream_id not in held:
                        st.pending += ev.data
                elif isinstance(ev, h2.events.StreamEnded):
                    st = streams.get(ev.stream_id)
                    if st:
                        st.client_ended = True
                elif isinstance(ev, h2.events.StreamReset):
                    code = getattr(ev.error_code, "name", str(ev.error_code))
                    end_log(ev.stream_id, f"reset:{code}")
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    raise EOFError
            pump_out()
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
    except EOFError:
        pass
    except Exception as e:  # the peer went away, or garbage
        log(f"conn-error peer={name} reason={type(e).__name__}:{str(e).replace(' ', '_')[:160]}")
    finally:
        for sid in list(streams):
            end_log(sid, "closed")
        try:
            sock.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", required=True)
    ap.add_argument("--port", type=int, default=15008)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--status", type=int, default=200)
    ap.add_argument("--statuses", default="")
    ap.add_argument("--batch", type=int, default=1)
    a = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    ctx.set_alpn_protocols(["h2"])

    fam = socket.AF_INET6 if ":" in a.listen else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.listen, a.port))
    ls.listen(128)
    print("READY", flush=True)
    while True:
        raw, peer = ls.accept()
        statuses = [int(x) for x in a.statuses.split(",")] if a.statuses else [a.status]
        threading.Thread(target=serve, args=(raw, peer, ctx, statuses, a.batch),
                         daemon=True).start()


if __name__ == "__main__":
    main()
