#!/usr/bin/env bash
# repro-window-leak.sh — reproduce the HBONE connection-window leak found
# by scripts/bench/mtls.sh (needs root; cleans up after itself).
#
# Two pods (netns) with zring A (client pod) and zring B (server pod), as in
# the benchmark. In the server pod a "sink" accepts a connection, reads
# 1 KiB, waits 0.2 s and closes it with the rest unread (a reset), like a
# server refusing an upload; the server pod's TCP send buffers are small
# (tcp_wmem max 64 KiB), so meanwhile the upload waits in zring B's queue
# of DATA for that socket. The client pod uploads 4 MB to the sink through
# the mTLS tunnel, then GETs a small page from a web server in the same pod
# through the same pooled tunnel, and repeats.
#
# Expected: every GET works. Seen with zring builds before 14:22 UTC on
# 2026-11-21 (src/pump_hbone.c, src/tunnel.c changed then): after about
# four uploads every GET through the tunnel hangs, for good. On the reset,
# conn_close() -> tunnel_detach() dropped the stream and hbone_release()
# freed the queued DATA without nghttp2_session_consume(), so up to a
# stream window (4 MiB) per upload never went back to the tunnel's 16 MiB
# HTTP/2 connection window; once it was gone zring A could send nothing
# more on the tunnel (its stream windows still open), while PINGs kept the
# tunnel alive and new streams kept being put on it. The current source
# consumes pump_hbone_queued(c) in tunnel_detach() and cb_stream_close().
#
#   usage: repro-window-leak.sh [MAX_UPLOADS] (default 50)
#   exit 0: no leak (every GET worked); 1: the tunnel got stuck; ZRING_BIN
#   picks the binary (default build/zring).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
max="${1:-50}"
ZRING_BIN="${ZRING_BIN:-$root/build/zring}"
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
tag="$$" CLI="zwl-$$-cli" SRV="zwl-$$-srv"
dir="$(mktemp -d /tmp/zring-wleak.XXXXXX)"
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  ip netns del "$CLI" 2>/dev/null; ip netns del "$SRV" 2>/dev/null
  echo "logs kept in $dir" >&2
}
trap cleanup EXIT
cp "$ZRING_BIN" "$dir/zring"

ip netns add "$CLI"; ip netns add "$SRV"
ip link add "zwl${tag}c" netns "$CLI" type veth peer name "zwl${tag}s" netns "$SRV"
ip -n "$CLI" link set lo up; ip -n "$SRV" link set lo up
ip -n "$CLI" addr add 198.18.0.1/24 dev "zwl${tag}c"; ip -n "$SRV" addr add 198.18.0.2/24 dev "zwl${tag}s"
ip -n "$CLI" link set "zwl${tag}c" up; ip -n "$SRV" link set "zwl${tag}s" up
for ns in "$CLI" "$SRV"; do ip netns exec "$ns" bash "$root/deploy/iptables/zring-iptables.sh" install >/dev/null 2>&1; done

c="$dir/certs"
"$root/scripts/certs.sh" ca "$c/ca" >/dev/null 2>&1
"$root/scripts/certs.sh" workload "$c/a" --ca "$c/ca" --ns bench --sa client >/dev/null 2>&1
"$root/scripts/certs.sh" workload "$c/b" --ca "$c/ca" --ns bench --sa server >/dev/null 2>&1
cp "$c/ca/root-cert.pem" "$c/a/"; cp "$c/ca/root-cert.pem" "$c/b/"
cat >"$dir/w.json" <<'EOF'
{"workloads": [
  {"uid": "c", "name": "client", "namespace": "bench", "serviceAccount": "client", "workloadIps": ["198.18.0.1"], "protocol": "HBONE"},
  {"uid": "s", "name": "server", "namespace": "bench", "serviceAccount": "server", "workloadIps": ["198.18.0.2"], "protocol": "HBONE"}
]}
EOF

cat >"$dir/sink.py" <<'EOF'
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind(("0.0.0.0", 7001)); s.listen(64)
while True:
    c, _ = s.accept()
    try:
        c.recv(1024)
    except OSError:
        pass
    time.sleep(0.2)   # meanwhile the upload piles up in zring B's queue
    c.close()         # unread data: the kernel resets the connection
EOF
mkdir -p "$dir/www"; echo hello >"$dir/www/index.html"
ip netns exec "$SRV" sysctl -qw net.ipv4.tcp_wmem="4096 16384 65536"
ip netns exec "$SRV" python3 "$dir/sink.py" >"$dir/sink.log" 2>&1 & pids+=($!)
ip netns exec "$SRV" python3 -m http.server 8080 --bind 0.0.0.0 --directory "$dir/www" >"$dir/http.log" 2>&1 & pids+=($!)
ip netns exec "$SRV" "$dir/zring" --config "$dir/w.json" --certs "$c/b" --workers 1 --log-level info >"$dir/zring-b.log" 2>&1 & pids+=($!)
ip netns exec "$CLI" "$dir/zring" --config "$dir/w.json" --certs "$c/a" --workers 1 --log-level info >"$dir/zring-a.log" 2>&1 & pids+=($!)
sleep 1.5

rc=0
ip netns exec "$CLI" python3 - "$max" <<'EOF' || rc=$?
import socket, sys, time, urllib.request
data = b"x" * 4_000_000
for i in range(int(sys.argv[1])):
    s = socket.create_connection(("198.18.0.2", 7001), timeout=5)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
    except OSError:
        pass
    s.close()
    try:
        urllib.request.urlopen("http://198.18.0.2:8080/", timeout=3).read()
    except Exception as e:
        print(f"after {i + 1} uploads of 4 MB: GET through the tunnel FAILED ({e})")
        print("BUG REPRODUCED: the pooled tunnel is stuck (its HTTP/2 connection window leaked away)")
        sys.exit(1)
print(f"OK: {sys.argv[1]} uploads, every GET through the pooled tunnel worked")
sys.exit(0)
EOF
echo "tunnel sockets (client pod):"; ip netns exec "$CLI" ss -tn '( dport = :15008 )' | tail -n +2
exit "$rc"
