#!/usr/bin/python3
"""Test server for zring's e2e scenarios: speaks the ZR1 protocol (zrproto.py).

    zr_server.py --listen 10.77.0.2 --listen fd00:77::2 --port 8080

Serves each connection in its own thread: reads the header, then receives and
hashes the client's bytes while it sends random bytes back, and ends with a
trailer carrying both hashes. Prints "READY" on stdout once every listener is
bound, and one line per finished connection on stderr, e.g.

    conn peer=10.77.0.1:43210 up=100 down=200 result=ok local=10.77.0.2:8080

(local= is the address the connection arrived at: which of several
addresses, e.g. a service's endpoints, zring chose).

Runs until killed.
"""

import argparse
import socket
import sys
import threading

import zrproto


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def serve_conn(sock, peer):
    result = "ok"
    up = down = 0
    local = "-"
    try:
        local = zrproto.fmt_addr(*sock.getsockname()[:2])
        sock.settimeout(120)
        up_want, down, rate = zrproto.parse_header(zrproto.recv_line(sock))
        if up_want is None:
            # Half-close mode: the answer must wait for the client's EOF.
            up_sha, up = zrproto.recv_hash(sock, None)
            down_sha = zrproto.send_random(sock, down, rate)
        else:
            got = {}

            def reader():
                try:
                    got["up"] = zrproto.recv_hash(sock, up_want)
                except Exception as e:  # reported through got["err"]
                    got["err"] = e

            t = threading.Thread(target=reader, daemon=True)
            t.start()
            down_sha = zrproto.send_random(sock, down, rate)
            t.join()
            if "err" in got:
                raise got["err"]
            up_sha, up = got["up"]
        sock.sendall(f"{up_sha} {down_sha} {up}\n".encode())
        # FIN, then wait for the client's FIN so that close() cannot turn
        # unread bytes into a reset that destroys the trailer in flight.
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(10)
        while sock.recv(65536):
            pass
    except Exception as e:
        result = f"error:{type(e).__name__}:{e}".replace(" ", "_")
    finally:
        sock.close()
        log(f"conn peer={zrproto.fmt_addr(*peer[:2])} up={up} down={down} result={result}"
            f" local={local}")


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
