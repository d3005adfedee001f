#!/usr/bin/env python3
"""Echo server for zring's benchmark: holds many idle connections cheaply.

Runs in the server network namespace. Accepts every connection, echoes back
whatever it receives, and closes its side when the peer does. One thread, one
epoll; it is only ever asked to echo a few bytes per connection, so Python is
not a bottleneck. It stops by itself after --max-seconds (a safety bound).
"""
import argparse
import errno
import resource
import select
import socket
import sys
import time


def raise_nofile():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=7000)
    ap.add_argument("--backlog", type=int, default=4096)
    ap.add_argument("--max-seconds", type=float, default=6 * 3600)
    args = ap.parse_args()
    raise_nofile()

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((args.bind, args.port))
    lsock.listen(args.backlog)
    lsock.setblocking(False)

    ep = select.epoll()
    ep.register(lsock.fileno(), select.EPOLLIN)
    conns = {}
    deadline = time.monotonic() + args.max_seconds
    print(f"echo_server: listening on {args.bind}:{args.port}", file=sys.stderr, flush=True)
    while time.monotonic() < deadline:
        for fd, _ in ep.poll(1.0, 1024):
            if fd == lsock.fileno():
                while True:
                    try:
                        c, _ = lsock.accept()
                    except BlockingIOError:
                        break
                    except OSError as e:  # EMFILE and friends: try later
                        if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                            time.sleep(0.01)
                            break
                        raise
                    c.setblocking(False)
                    conns[c.fileno()] = c
                    ep.register(c.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
                continue
            c = conns.get(fd)
            if c is None:
                continue
            try:
                data = c.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data:
                try:
                    c.send(data)  # tiny pings only; a short send is not expected
                except OSError:
                    data = b""
            if not data:
                ep.unregister(fd)
                del conns[fd]
                c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
