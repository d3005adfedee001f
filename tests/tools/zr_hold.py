#!/usr/bin/python3
"""Holds many connections to an echo server (zr_echo.py), driven by commands.

    zr_hold.py --host 10.77.0.2 --port 7000 <commands >answers

Reads one command per line on stdin and answers each with exactly one line
on stdout (key=value pairs, first "cmd=NAME"), so that a shell script can
drive it through a FIFO and wait for each answer. Every byte sent is random
and remembered until its echo comes back, so a dropped, repeated or changed
byte on any connection is caught ("broken", why=corrupt...).

  open N [TIMEOUT]   open N more connections, one after the other; each
                     connect() must succeed within TIMEOUT s (default 5).
  grow N WAIT        open N more connections one at a time, each sending a
                     random payload (1..65536 bytes) right away; wait up
                     to WAIT s for its echo before opening the next, until
                     one does not come back in time (the proxy is full):
                     the rest are opened without waiting.
  ping WAIT [N]      queue a random payload of 1..65536 bytes on every open
                     connection, then send and read echoes until every
                     connection has all its bytes back or WAIT seconds
                     pass; with N, also done once at most N connections
                     are still waiting and none is stalled (see below).
  wait WAIT [N]      like ping without sending anything new.
  close K            close K "proxied" connections, oldest first, cleanly:
                     shut down the write side, read to the server's EOF
                     (everything echoed, nothing more), then close.
  status             the counts below, without doing anything.
  quit               close everything and exit.

Answers carry the counts, over the connections still open:

  open      connections open
  proxied   those that have had at least one echo back (so they reach the server)
  echoed    those with every byte sent so far echoed back
  waiting   never echoed, bytes outstanding (not proxied yet: e.g. still
            in zring's accept backlog)
  stalled   proxied once, but bytes outstanding now
  broken    connections that ended badly since the start (EOF, reset,
            corrupt bytes); they are closed and no longer open. why= tells
            the first reason.

The answer to "close" adds closed= (cleanly closed) and failed=.
"""

import argparse
import os
import random
import selectors
import socket
import sys
import time

import zrproto


class Conn:
    def __init__(self, idx, sock):
        self.idx = idx
        self.sock = sock
        self.unsent = bytearray()   # queued, not sent yet
        self.expect = bytearray()   # sent, echo not back yet
        self.proxied = False
        self.echoed_bytes = 0
        self.closing = False        # write side shut down, reading to EOF
        self.done = None            # None while open; "clean" or a reason

    def outstanding(self):
        return len(self.unsent) + len(self.expect)


class Holder:
    def __init__(self, host, port, seed):
        self.host = host
        self.port = port
        self.rng = random.Random(seed)
        self.conns = []             # open ones, in opening order
        self.broken = 0
        self.why = "-"
        self.next_idx = 0
        self.sel = selectors.DefaultSelector()

    # ---------------------------------------------------------- events

    def _events(self, c):
        ev = 0 if c.done else selectors.EVENT_READ
        if c.unsent and not c.closing and not c.done:
            ev |= selectors.EVENT_WRITE
        return ev

    def _update(self, c):
        ev = self._events(c)
        try:
            key = self.sel.get_key(c.sock)
        except KeyError:
            key = None
        if key is None and ev:
            self.sel.register(c.sock, ev, c)
        elif key is not None and not ev:
            self.sel.unregister(c.sock)
        elif key is not None and key.events != ev:
            self.sel.modify(c.sock, ev, c)

    def _end(self, c, reason):
        if c.done:
            return
        c.done = reason
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        if reason != "clean":
            self.broken += 1
            if self.why == "-":
                self.why = f"conn{c.idx}:{reason}"
            try:
                c.sock.close()
            except OSError:
                pass
        if c in self.conns:
            self.conns.remove(c)

    def _on_write(self, c):
        try:
            n = c.sock.send(c.unsent[:65536])
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._end(c, f"send:{type(e).__name__}")
            return
        c.expect += c.unsent[:n]
        del c.unsent[:n]

    def _on_read(self, c):
        try:
            buf = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._end(c, f"recv:{type(e).__name__}")
            return
        if not buf:
            if c.closing and not c.outstanding():
                self._end(c, "clean")
            else:
                self._end(c, f"eof_with_{c.outstanding()}_bytes_outstanding")
            return
        n = len(buf)
        if n > len(c.expect) or c.expect[:n] != buf:
            self._end(c, f"corrupt_after_{c.echoed_bytes}_bytes")
            return
        del c.expect[:n]
        c.echoed_bytes += n
        c.proxied = True

    def pump(self, deadline, until):
        """Service sockets until until() is true or the deadline passes."""
        for c in list(self.conns):
            self._update(c)
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if not self.sel.get_map():
                time.sleep(min(left, 0.05))
                continue
            for key, ev in self.sel.select(min(left, 0.2)):
                c = key.data
                if c.done:
                    continue
                if ev & selectors.EVENT_WRITE:
                    self._on_write(c)
                if not c.done and ev & selectors.EVENT_READ:
                    self._on_read(c)
                if not c.done:
                    self._update(c)

    # ---------------------------------------------------------- commands

    def counts(self):
        cs = self.conns
        proxied = sum(1 for c in cs if c.proxied)
        echoed = sum(1 for c in cs if not c.outstanding())
        waiting = sum(1 for c in cs if not c.proxied and c.outstanding())
        stalled = sum(1 for c in cs if c.proxied and c.outstanding())
        return (f"open={len(cs)} proxied={proxied} echoed={echoed} waiting={waiting} "
                f"stalled={stalled} broken={self.broken} why={self.why}")

    def cmd_open(self, n, timeout=5.0):
        fam = zrproto.addr_family(self.host)
        opened = 0
        for _ in range(int(n)):
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(float(timeout))
            try:
                s.connect((self.host, self.port))
            except OSError as e:
                s.close()
                self.broken += 1
                if self.why == "-":
                    self.why = f"connect:{type(e).__name__}"
                continue
            s.setblocking(False)
            self.conns.append(Conn(self.next_idx, s))
            self.next_idx += 1
            opened += 1
        return f"opened={opened}"

    def cmd_grow(self, n, wait):
        full = False
        for _ in range(int(n)):
            before = len(self.conns)
            self.cmd_open(1)
            if len(self.conns) == before:
                continue
            c = self.conns[-1]
            c.unsent += os.urandom(self.rng.randint(1, 65536))
            if not full:
                self.pump(time.monotonic() + float(wait), lambda: not c.outstanding() or c.done)
                full = c.outstanding() > 0
        return f"full={'yes' if full else 'no'}"

    def cmd_ping(self, wait, waiting=None):
        for c in self.conns:
            c.unsent += os.urandom(self.rng.randint(1, 65536))
        return self.cmd_wait(wait, waiting)

    def cmd_wait(self, wait, waiting=None):
        start = time.monotonic()

        def done():
            if all(not c.outstanding() for c in self.conns):
                return True
            if waiting is None:
                return False
            stalled = any(c.proxied and c.outstanding() for c in self.conns)
            left = sum(1 for c in self.conns if not c.proxied and c.outstanding())
            return not stalled and left <= int(waiting)

        self.pump(start + float(wait), done)
        return f"secs={time.monotonic() - start:.2f}"

    def cmd_close(self, k):
        victims = [c for c in self.conns if c.proxied and not c.outstanding()][:int(k)]
        for c in victims:
            c.closing = True
            try:
                c.sock.shutdown(socket.SHUT_WR)
            except OSError as e:
                self._end(c, f"shutdown:{type(e).__name__}")
        before = self.broken
        self.pump(time.monotonic() + 5, lambda: all(c.done for c in victims))
        closed = 0
        for c in victims:
            if c.done == "clean":
                closed += 1
            elif not c.done:
                self._end(c, "no_eof_within_5s_after_shutdown")
            c.sock.close()
        return f"closed={closed} failed={self.broken - before}"

    def cmd_status(self):
        return ""

    def cmd_quit(self):
        for c in self.conns:
            c.sock.close()
        return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__)
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()
    h = Holder(a.host, a.port, a.seed)
    cmds = {"open": h.cmd_open, "grow": h.cmd_grow, "ping": h.cmd_ping, "wait": h.cmd_wait,
            "close": h.cmd_close, "status": h.cmd_status, "quit": h.cmd_quit}
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        name, args = words[0], words[1:]
        try:
            extra = cmds[name](*args)
            answer = f"cmd={name} {extra} {h.counts()}".replace("  ", " ")
        except Exception as e:  # a bad command must not hang the driver
            answer = f"cmd={name} error={type(e).__name__}:{str(e).replace(' ', '_')}"
        print(answer, flush=True)
        if name == "quit":
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
