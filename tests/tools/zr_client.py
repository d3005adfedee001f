#!/usr/bin/python3
"""Test client for zring's e2e scenarios (speaks ZR1, see zrproto.py).

  zr_client.py xfer  --host H --port P --up N --down M [--half-close]
                     [--up-rate R] [--down-rate R] [--expect ok|fail]
                     [--stall SECS] [--rcvbuf BYTES]
      One connection: sends N random bytes, receives M, checks both hashes
      against the server's trailer. --half-close sends up as "eof": after its
      bytes the client shuts down its write side and the server answers only
      once it has read to EOF. --expect fail succeeds when the transfer is cut
      (reset or early EOF); a hash mismatch is always a failure. --stall
      waits SECS before reading anything and --rcvbuf shrinks the receive
      buffer (SO_RCVBUF, set before connecting): together they make a slow
      reader, so that the proxy finds the client's socket full.

  zr_client.py many  --host H --port P --conns 100 [--max-up B] [--max-down B]
                     [--seed S]
      --conns connections opened at once (all connected before any transfers),
      each with random sizes, each checked.

  zr_client.py probe --host H --port P --within SECS [--send N]
      Connects, optionally sends N bytes, and waits for the connection to end.
      Succeeds when it was refused, reset or closed (EOF) within SECS seconds
      without the peer sending any data.

  zr_client.py who   --host H --port P --conns N [--parallel K]
      N connections to a zr_who.py server (K at a time), each reading the
      "WHO ADDR:PORT" line that says which address it reached. Prints the
      tally as dist=ADDR:PORT=COUNT,... (most first); fails if any failed.

  zr_client.py loop  --host H --port P --until FILE [--workers K]
                     [--max-up B] [--max-down B] [--seed S] [--max-secs T]
      K threads, each making one short checked ZR1 transfer after another
      (random sizes) until FILE exists (or T seconds pass). Fails if any
      connection failed, or if none was made.

  zr_client.py pingpong --host H --port P --rounds N [--size B] [--seed S]
      Against zr_echo.py: one connection, N rounds of "send B random bytes,
      read the B echoed bytes back, compare". Fails on any difference or
      error; prints the rounds done and the round trips' p50 and max.

Each prints one result line on stdout (key=value) and exits 0 on success,
1 on failure.
"""

import argparse
import errno
import os
import random
import socket
import sys
import threading
import time

import zrproto


class Mismatch(Exception):
    """Bytes arrived but differ from what was sent: corruption, never a cut."""


def connect(host, port, timeout, rcvbuf=0):
    s = socket.socket(zrproto.addr_family(host), socket.SOCK_STREAM)
    s.settimeout(timeout)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect((host, port))
    return s


def transfer(sock, up, down, half_close=False, up_rate=0, down_rate=0, stall=0):
    """Run one ZR1 exchange on a connected socket; raise on any problem."""
    sock.sendall(zrproto.header("eof" if half_close else up, down, down_rate))
    sent = {}

    def sender():
        try:
            sent["sha"] = zrproto.send_random(sock, up, up_rate)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except Exception as e:  # reported through sent["err"]
            sent["err"] = e

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    try:
        time.sleep(stall)
        down_sha, got = zrproto.recv_hash(sock, down)
        trailer = zrproto.recv_line(sock).decode().split()
    except Exception:
        # Unblock the sender so that a cut connection ends this call promptly.
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        t.join(5)
        raise
    t.join()
    if "err" in sent:
        raise sent["err"]
    if len(trailer) != 3:
        raise Mismatch(f"bad trailer {trailer!r}")
    srv_up_sha, srv_down_sha, srv_up = trailer
    if int(srv_up) != up:
        raise Mismatch(f"server received {srv_up} bytes, client sent {up}")
    if srv_up_sha != sent["sha"]:
        raise Mismatch("up hash differs (client->server bytes corrupted)")
    if srv_down_sha != down_sha:
        raise Mismatch("down hash differs (server->client bytes corrupted)")
    return got


def describe(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, ConnectionResetError) or isinstance(e, BrokenPipeError):
        return "reset"
    return f"{type(e).__name__}: {e}"


def cmd_xfer(a):
    start = time.monotonic()
    try:
        sock = connect(a.host, a.port, a.timeout, a.rcvbuf)
        with sock:
            transfer(sock, a.up, a.down, a.half_close, a.up_rate, a.down_rate, a.stall)
        ok, why = True, "-"
    except Mismatch as e:
        print(f"result=corrupt reason={e!s:.200}")
        return 1
    except Exception as e:
        ok, why = False, describe(e)
    secs = time.monotonic() - start
    print(f"result={'ok' if ok else 'cut'} secs={secs:.2f} up={a.up} down={a.down} "
          f"reason={why.replace(' ', '_')}", flush=True)
    return 0 if ok == (a.expect == "ok") else 1


def cmd_many(a):
    rng = random.Random(a.seed)

    def size(limit):
        # Mix the edges (empty, tiny, one chunk) with random sizes.
        pick = rng.random()
        if pick < 0.1:
            return 0
        if pick < 0.2:
            return rng.randint(1, 100)
        if pick < 0.25:
            return zrproto.CHUNK
        return rng.randint(1, limit)

    plan = [(size(a.max_up), size(a.max_down)) for _ in range(a.conns)]
    barrier = threading.Barrier(a.conns + 1)
    results = [None] * a.conns

    def one(i):
        up, down = plan[i]
        sock = None
        try:
            sock = connect(a.host, a.port, a.timeout)
            barrier.wait(a.timeout)  # every connection is open before any transfer
            transfer(sock, up, down)
            results[i] = "ok"
        except threading.BrokenBarrierError:
            results[i] = "~ aborted: another connection failed first"
        except Exception as e:
            results[i] = f"conn {i} up={up} down={down}: {describe(e)}"
            barrier.abort()
        finally:
            if sock:
                sock.close()

    start = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(a.conns)]
    for t in threads:
        t.start()
    try:
        barrier.wait(a.timeout)
        concurrent = a.conns
    except threading.BrokenBarrierError:
        concurrent = 0
    for t in threads:
        t.join(a.timeout)
    # Real failures first; "~ aborted" ones only follow from them.
    bad = sorted(r if r else "thread did not finish" for r in results if r != "ok")
    total = sum(u + d for u, d in plan)
    print(f"result={'ok' if not bad else 'fail'} conns={a.conns} concurrent={concurrent} "
          f"failed={len(bad)} bytes={total} seed={a.seed} secs={time.monotonic() - start:.2f}")
    for b in bad[:20]:
        print(f"  {b}")
    return 0 if not bad else 1


def cmd_probe(a):
    start = time.monotonic()
    outcome = "timeout"
    try:
        sock = connect(a.host, a.port, a.within)
        with sock:
            if a.send:
                sock.sendall(b"x" * a.send)
            sock.settimeout(max(0.1, a.within - (time.monotonic() - start)))
            data = sock.recv(65536)
            outcome = "data" if data else "eof"
    except ConnectionRefusedError:
        outcome = "refused"
    except (ConnectionResetError, BrokenPipeError):
        outcome = "reset"
    except socket.timeout:
        outcome = "timeout"
    except OSError as e:
        outcome = errno.errorcode.get(e.errno, str(e.errno)).lower()
    secs = time.monotonic() - start
    print(f"outcome={outcome} secs={secs:.2f}", flush=True)
    return 0 if outcome in ("refused", "reset", "eof") and secs <= a.within else 1


def cmd_who(a):
    start = time.monotonic()
    lock = threading.Lock()
    tally, bad = {}, []
    todo = list(range(a.conns))

    def one():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            try:
                with connect(a.host, a.port, a.timeout) as sock:
                    line = zrproto.recv_line(sock).decode().split()
                if len(line) != 2 or line[0] != "WHO":
                    raise ValueError(f"bad answer {line!r}")
                with lock:
                    tally[line[1]] = tally.get(line[1], 0) + 1
            except Exception as e:
                with lock:
                    bad.append(f"conn {i}: {describe(e)}")

    threads = [threading.Thread(target=one, daemon=True) for _ in range(max(1, a.parallel))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dist = ",".join(f"{k}={v}" for k, v in sorted(tally.items(), key=lambda kv: (-kv[1], kv[0])))
    print(f"result={'ok' if not bad else 'fail'} conns={a.conns} failed={len(bad)} "
          f"dist={dist or '-'} secs={time.monotonic() - start:.2f}")
    for b in sorted(bad)[:20]:
        print(f"  {b}")
    return 0 if not bad else 1


def cmd_pingpong(a):
    rng = random.Random(a.seed)
    rtts, why = [], "-"
    try:
        with connect(a.host, a.port, a.timeout) as sock:
            for _ in range(a.rounds):
                msg = rng.randbytes(a.size)
                t0 = time.perf_counter_ns()
                sock.sendall(msg)
                got = b""
                while len(got) < a.size:
                    chunk = sock.recv(a.size - len(got))
                    if not chunk:
                        raise ConnectionError("EOF before the echo")
                    got += chunk
                rtts.append(time.perf_counter_ns() - t0)
                if got != msg:
                    why = f"round {len(rtts)}: echo differs"
                    break
    except Exception as e:
        why = describe(e)
    ok = why == "-" and len(rtts) == a.rounds
    rtts.sort()
    p50 = rtts[len(rtts) // 2] // 1000 if rtts else 0
    mx = rtts[-1] // 1000 if rtts else 0
    print(f"result={'ok' if ok else 'fail'} rounds={len(rtts)} size={a.size} "
          f"p50_us={p50} max_us={mx} reason={why.replace(' ', '_')}", flush=True)
    return 0 if ok else 1


def cmd_loop(a):
    import os
    start = time.monotonic()
    lock = threading.Lock()
    stats = {"ok": 0, "bytes": 0}
    bad = []

    def stop():
        return os.path.exists(a.until) or (a.max_secs and time.monotonic() - start > a.max_secs)

    def worker(k):
        rng = random.Random(a.seed * 1000 + k)
        while not stop():
            up, down = rng.randint(0, a.max_up), rng.randint(0, a.max_down)
            try:
                with connect(a.host, a.port, a.timeout) as sock:
                    transfer(sock, up, down)
                with lock:
                    stats["ok"] += 1
                    stats["bytes"] += up + down
            except Exception as e:
                with lock:
                    bad.append(f"worker {k} up={up} down={down} "
                               f"t={time.monotonic() - start:.2f}s: {describe(e)}")

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(a.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = not bad and stats["ok"] > 0
    print(f"result={'ok' if ok else 'fail'} conns={stats['ok'] + len(bad)} failed={len(bad)} "
          f"bytes={stats['bytes']} seed={a.seed} secs={time.monotonic() - start:.2f}")
    for b in bad[:20]:
        print(f"  {b}")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description="ZR1 test client",
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--host", required=True)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--timeout", type=float, default=60)

    x = sub.add_parser("xfer")
    common(x)
    x.add_argument("--up", type=int, default=0)
    x.add_argument("--down", type=int, default=0)
    x.add_argument("--half-close", action="store_true")
    x.add_argument("--up-rate", type=int, default=0)
    x.add_argument("--down-rate", type=int, default=0)
    x.add_argument("--expect", choices=("ok", "fail"), default="ok")
    x.add_argument("--stall", type=float, default=0)
    x.add_argument("--rcvbuf", type=int, default=0)

    m = sub.add_parser("many")
    common(m)
    m.add_argument("--conns", type=int, default=100)
    m.add_argument("--max-up", type=int, default=2 << 20)
    m.add_argument("--max-down", type=int, default=2 << 20)
    m.add_argument("--seed", type=int, default=int(time.time()))

    p = sub.add_parser("probe")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--within", type=float, required=True)
    p.add_argument("--send", type=int, default=0)

    w = sub.add_parser("who")
    common(w)
    w.add_argument("--conns", type=int, default=1)
    w.add_argument("--parallel", type=int, default=10)

    pp = sub.add_parser("pingpong")
    common(pp)
    pp.add_argument("--rounds", type=int, required=True)
    pp.add_argument("--size", type=int, default=100)
    pp.add_argument("--seed", type=int, default=int(time.time()))

    lp = sub.add_parser("loop")
    common(lp)
    lp.add_argument("--until", required=True, help="stop once this file exists")
    lp.add_argument("--workers", type=int, default=4)
    lp.add_argument("--max-up", type=int, default=64 << 10)
    lp.add_argument("--max-down", type=int, default=64 << 10)
    lp.add_argument("--seed", type=int, default=int(time.time()))
    lp.add_argument("--max-secs", type=float, default=0)

    a = ap.parse_args()
    return {"xfer": cmd_xfer, "many": cmd_many, "probe": cmd_probe,
            "who": cmd_who, "loop": cmd_loop, "pingpong": cmd_pingpong}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
