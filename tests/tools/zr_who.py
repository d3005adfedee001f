#!/usr/bin/python3
""""Who am I" server for zring's e2e scenarios: tells each client which address it reached.

    zr_who.py --listen 10.77.0.11 --listen 10.77.0.12 --port 8080 --port 9090

Binds every --listen address on every --port. On each connection it sends
one line, the local address and port the connection arrived at:

    WHO 10.77.0.12:8080

then reads until the client closes (or 10 s pass) and closes. So a client
connecting through zring to a service VIP learns which endpoint, and which
target port, zring chose. Prints "READY" on stdout once every listener is
bound, and one line per connection on stderr:

    conn local=10.77.0.12:8080 peer=10.77.0.1:43210

Runs until killed. Answered by `zr_client.py who`.
"""

import argparse
import socket
import sys
import threading

import zrproto

_log_lock = threading.Lock()


def log(msg):
    with _log_lock:
        print(msg, file=sys.stderr, flush=True)


def serve_conn(sock, peer):
    try:
        local = sock.getsockname()
        me = zrproto.fmt_addr(local[0], local[1])
        sock.sendall(f"WHO {me}\n".encode())
        sock.settimeout(10)
        while sock.recv(4096):
            pass
        log(f"conn local={me} peer={zrproto.fmt_addr(*peer[:2])}")
    except Exception as e:
        log(f"conn peer={zrproto.fmt_addr(*peer[:2])} error={type(e).__name__}")
    finally:
        sock.close()


def listen(host, port):
    fam = zrproto.addr_family(host)
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, port))
    s.listen(1024)
    return s


def accept_loop(lsock):
    while True:
        conn, peer = lsock.accept()
        threading.Thread(target=serve_conn, args=(conn, peer), daemon=True).start()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", action="append", required=True, help="address to bind (repeatable)")
    ap.add_argument("--port", action="append", type=int, required=True, help="port (repeatable)")
    args = ap.parse_args()
    socks = [listen(h, p) for h in args.listen for p in args.port]
    for s in socks[1:]:
        threading.Thread(target=accept_loop, args=(s,), daemon=True).start()
    print("READY", flush=True)
    accept_loop(socks[0])


if __name__ == "__main__":
    main()
