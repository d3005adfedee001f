#!/usr/bin/python3
"""Allocation-failure sweep driver for tests/e2e/alloc-fail.sh.

zring runs with tests/support/allocfail.c preloaded (ZR_ALLOCFAIL_CTL /
ZR_ALLOCFAIL_STATE). For N = 1, 2, ... this arms the shim to fail the Nth
heap allocation (--fail addr: the Nth getpeername/getsockname) counted from
that moment, makes one connection of the kind
asked, and checks what the client saw; then it disarms (count only) and
checks that zring still serves an allowed connection. It stops once three
attempts in a row made fewer than N allocations (every allocation of the
path has been failed once), or at --max.

    zr_allocsweep.py --ctl F --state F --pid ZPID --kind plain|hbone
                     --expect deny|allow --addr HOST:PORT [--authority H:P]
                     [--cert C --key K --ca R] --live-addr HOST:PORT
                     [--fail alloc|addr]
                     [--live-authority H:P] [--server-log FILE] [--max N]

  --kind plain   a TCP connection to --addr (SO_MARK 0x539: past the client
                 pod's own capture, unless --no-mark: then through it, to
                 the zring there); 64 bytes are sent to an echo server.
  --kind hbone   an in-process HBONE client (zr_h2client.py) to --addr
                 (zring's :15008) with CONNECT --authority, echoing 64 bytes.
  --expect deny  the connection must never be allowed: for plain, no byte
                 may come back; for hbone, no 200 (the answer alone is read). --server-log (the echo
                 server's stderr) must not gain an "open" line.
  --expect allow the connection either works with its bytes intact or fails
                 cleanly (closed, reset, 503, TLS failure); never corrupt.

  --kind reload  a config reload (see Reload below) with --config and
                 --zlog: every allocation of reading, parsing, validating and
                 building the snapshot (and the workers' switch to it) fails
                 in turn; the policy set zring says it runs must be the one
                 enforced on plaintext connections to --addr.

Every attempt must end within --timeout (no hang), and zring (--pid) must
still be running after it. Prints one line per N and a summary; exits 0 if
every N passed, 1 otherwise.
"""

import argparse
import json
import os
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zr_h2client  # noqa: E402

PAYLOAD = b"alloc-fail sweep: 64 bytes of payload that an echo sends back.."[:64]


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Shim:
    def __init__(self, ctl, state):
        self.ctl, self.state = ctl, state
        self.gen = self.read_state().get("gen", 0)

    def read_state(self):
        try:
            with open(self.state) as f:
                return {k: int(v) for k, v in (kv.split("=") for kv in f.read().split())}
        except (OSError, ValueError):
            return {}

    def arm(self, n, kind="alloc"):
        """Fail the nth call of `kind` from now (0: count only); returns
        what the previous generation counted: (count, fired)."""
        self.gen += 1
        tmp = self.ctl + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{self.gen} {n} {kind}\n")
        os.rename(tmp, self.ctl)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            st = self.read_state()
            if st.get("gen") == self.gen:
                return st["prev_count"], st["prev_fired"]
            time.sleep(0.001)
        raise SystemExit(f"allocfail shim did not acknowledge generation {self.gen}")


def split(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def plain(addr, timeout, mark=True):
    """One TCP connection: send PAYLOAD, read until EOF. Returns (outcome,
    bytes back): outcome "echo" (all back), "closed", "reset", "timeout"."""
    host, port = split(addr)
    got = b""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        if mark:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, 0x539)
        s.settimeout(timeout)
        s.connect((host, port))
        try:
            s.sendall(PAYLOAD)
        except OSError:
            pass
        while len(got) < len(PAYLOAD):
            b = s.recv(4096)
            if not b:
                return "closed", got
            got += b
        return ("echo" if got == PAYLOAD else "corrupt"), got
    except socket.timeout:
        return "timeout", got
    except (ConnectionResetError, ConnectionRefusedError, BrokenPipeError):
        return "reset", got
    finally:
        s.close()


def hbone(a, addr, authority, echo=True):
    """One HBONE CONNECT through a fresh TLS connection, echoing PAYLOAD's
    length (echo=False: the outcome is the answer itself, so that a 200
    followed by a reset still reads as 200). Returns the outcome
    (zr_h2client's words: 200, 401, 503, rst:..., eof, tls-fail, timeout,
    corrupt...)."""
    ns = argparse.Namespace(
        addr=addr, cert=a.cert, key=a.key,
        ca=a.ca, expect_id="", timeout=a.timeout, mark=0x539, authority=authority,
        no_authority=False, method="CONNECT", scheme="", path="", protocol="", forwarded="",
        header=[], handshake_only=False, alpn="h2", garbage=-1,
        echo=len(PAYLOAD) if echo else -1, hold=0)
    try:
        res, _ = zr_h2client.run(ns)
        return res.outcome
    except zr_h2client.Result as r:
        return r.outcome
    except socket.timeout:
        return "timeout"
    except (ssl.SSLError, OSError) as e:
        return f"oserror:{type(e).__name__}"


class Reload:
    """--kind reload: each attempt rewrites --config (by rename), adding or
    removing a Deny of --addr's port ("deny-reload"), and waits for zring
    to log that it loaded it or rejected it. Loaded: the new policy set is
    in force; rejected: the old one still is, and the same bytes load on
    the next attempt (nothing is silently skipped)."""

    def __init__(self, a):
        self.a = a
        with open(a.config) as f:
            self.base = json.load(f)
        self.port = split(a.addr)[1]
        self.deny = False       # what zring enforces now
        self.target = True      # what the next write asks for

    def count(self, *msgs):
        with open(self.a.zlog) as f:
            return sum(1 for line in f if any(f'msg="{m}' in line for m in msgs))

    def rejected(self):
        return self.count("config reload rejected", "cannot build a snapshot")

    def write(self, deny):
        cfg = json.loads(json.dumps(self.base))
        if deny:
            cfg["policies"].append({
                "name": "deny-reload", "namespace": "default", "scope": "Namespace",
                "action": "Deny", "rules": [[[{"destinationPorts": [self.port]}]]]})
        tmp = self.a.config + ".tmp"
        with open(tmp, "w") as f:
            json.dump(cfg, f)
        os.rename(tmp, self.a.config)

    def attempt(self):
        """Returns (outcome, problem or None). The outcome names what
        zring logged; the connection check runs after the shim is
        disarmed (check())."""
        loaded, rejected = self.count("config loaded"), self.rejected()
        self.write(self.target)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if self.count("config loaded") > loaded:
                self.deny = self.target
                self.target = not self.target
                return "loaded", None
            if self.rejected() > rejected:
                return "rejected", None
            time.sleep(0.01)
        return "silent", "zring neither loaded nor rejected the new file"

    def check(self):
        """The policy set zring logged is the one enforced (allowing for the
        workers' switch at their next loop)."""
        want = "deny" if self.deny else "echo"
        deadline = time.monotonic() + 2
        while True:
            outcome, got = plain(self.a.addr, self.a.timeout, not self.a.no_mark)
            seen = "echo" if outcome == "echo" else ("deny" if not got else "corrupt")
            if seen == want or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if seen == want:
            return None
        return (f"config with{'' if self.deny else 'out'} deny-reload in force, "
                f"but the connection got: {outcome}")


def opens(log):
    try:
        with open(log) as f:
            return sum(1 for line in f if line.startswith("open "))
    except OSError:
        return 0


def attempt(a):
    if a.kind == "plain":
        outcome, got = plain(a.addr, a.timeout, not a.no_mark)
        allowed = len(got) > 0
    else:
        outcome = hbone(a, a.addr, a.authority, echo=a.expect == "allow")
        allowed = outcome == "200" or outcome == "corrupt"
    return outcome, allowed


def live(a):
    """zring still answers: an allowed connection works, bytes intact."""
    if a.kind == "plain":
        return plain(a.live_addr, a.timeout, not a.no_mark)[0] == "echo"
    return hbone(a, a.live_addr, a.live_authority) == "200"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ctl", required=True)
    ap.add_argument("--state", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--kind", choices=["plain", "hbone", "reload"], required=True)
    ap.add_argument("--expect", choices=["deny", "allow"], default="allow")
    ap.add_argument("--addr", required=True)
    ap.add_argument("--authority", default="")
    ap.add_argument("--live-addr", required=True)
    ap.add_argument("--live-authority", default="")
    ap.add_argument("--cert", default="")
    ap.add_argument("--key", default="")
    ap.add_argument("--ca", default="")
    ap.add_argument("--server-log", default="")
    ap.add_argument("--config", default="", help="--kind reload: the config file zring watches")
    ap.add_argument("--zlog", default="", help="--kind reload: zring's log")
    ap.add_argument("--fail", choices=["alloc", "addr"], default="alloc")
    ap.add_argument("--no-mark", action="store_true")
    ap.add_argument("--timeout", type=float, default=5)
    ap.add_argument("--max", type=int, default=2000)
    ap.add_argument("--name", default="sweep")
    a = ap.parse_args()

    shim = Shim(a.ctl, a.state)
    shim.arm(0)
    reload = Reload(a) if a.kind == "reload" else None
    bad, outcomes, misses, n, t0 = [], {}, 0, 0, time.monotonic()
    opened = opens(a.server_log) if a.server_log else 0
    while n < a.max and misses < 3:
        n += 1
        shim.arm(n, a.fail)
        problems = []
        if reload:
            outcome, problem = reload.attempt()
            allowed = False
            problems += [problem] if problem else []
        else:
            outcome, allowed = attempt(a)
        time.sleep(0.02)	# let zring finish with the connection
        count, fired = shim.arm(0)
        misses = 0 if fired else misses + 1
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if reload and alive(a.pid):
            problem = reload.check()
            problems += [problem] if problem else []
        if not alive(a.pid):
            problems.append("zring died")
        if outcome in ("timeout", "corrupt"):
            problems.append(f"outcome {outcome}")
        if a.expect == "deny" and allowed:
            problems.append(f"ALLOWED where a deny was due (outcome {outcome})")
        if a.expect == "deny" and a.server_log and opens(a.server_log) != opened:
            problems.append("the denied server saw a connection")
            opened = opens(a.server_log)
        if not problems and not reload and not live(a):
            problems.append("zring no longer serves an allowed connection")
        print(f"{a.name} n={n} fired={fired} count={count} outcome={outcome}"
              + (" PROBLEM: " + "; ".join(problems) if problems else ""), flush=True)
        if problems:
            bad.append((n, problems))
            if "zring died" in problems:
                break
    shim.arm(0)
    secs = time.monotonic() - t0
    dist = ",".join(f"{k}={v}" for k, v in sorted(outcomes.items()))
    print(f"{a.name} summary swept={n} covered={'yes' if misses >= 3 else 'no'} bad={len(bad)} "
          f"outcomes={dist} secs={secs:.1f}", flush=True)
    return 1 if bad or misses < 3 else 0


if __name__ == "__main__":
    sys.exit(main())
