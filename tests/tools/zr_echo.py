#!/usr/bin/python3
"""Echo server for zring's e2e scenarios: holds each connection until the client closes.

    zr_echo.py --listen 10.77.0.2 --port 7000

Every byte a client sends comes straight back. The connection stays open as
long as the client keeps it open; on the client's EOF the server closes too
(FIN), on a reset it closes at once. Prints "READY" on stdout once every
listener is bound, and on stderr one line when a connection opens and one
when it ends, e.g.

    open peer=10.77.0.1:43210
    conn peer=10.77.0.1:43210 bytes=4096 result=ok

Runs until killed.
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
    name = zrproto.fmt_addr(*peer[:2])
    log(f"open peer={name}")
    total = 0
    result = "ok"
    try:
        while True:
            buf = sock.recv(65536)
            if not buf:
                break
            sock.sendall(buf)
            total += len(buf)
        sock.shutdown(socket.SHUT_WR)
    except Exception as e:
        result = f"error:{type(e).__name__}:{e}".replace(" ", "_")
    finally:
        sock.close()
        log(f"conn peer={name} bytes={total} result={result}")


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
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    socks = [listen(h, args.port) for h in args.listen]
    for s in socks[1:]:
        threading.Thread(target=accept_loop, args=(s,), daemon=True).start()
    print("READY", flush=True)
    accept_loop(socks[0])


if __name__ == "__main__":
    main()
