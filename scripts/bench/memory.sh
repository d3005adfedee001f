#!/usr/bin/env bash
# memory.sh — does zring's memory go back after a burst of bad peers?
# (issue 17, "Memory goes back after a burst").
#
#   client netns                                server netns
#   198.18.0.1  scripts/bench/burst.py  ─ veth ─ 198.18.0.2  zring :15008 (--certs)
#
# For each variant (a zring binary, and an allocator: glibc's own, or
# jemalloc / mimalloc through LD_PRELOAD of Debian's shared libraries), a
# fresh zring serves :15008 and gets --rounds bursts, each: --garbage junk
# connections, --tls mutual TLS handshakes that then send junk instead of
# HTTP/2, and --slowloris sockets dripping a ClientHello (zring closes them
# at its handshake deadline, --connect-timeout), all opened at once.
# Memory is zring's resident set (VmRSS): before the first burst (baseline),
# the highest during any burst (peak), and --after seconds after the end
# of the first and of the last burst; bounded memory that never goes back
# shows as a last "+10 s" as high as the first. Then --streams HBONE streams
# (tests/tools/zr_h2client.py, python3-h2) each echo --stream-mb MiB
# through a fresh zring to an echo server: the receive path's provided-buffer
# rings, TLS and HTTP/2 buffers, sampled the same way. Prints a markdown table and
# saves it under bench-results/memory-<ts>.md (git-ignored).
#
# A benchmark, not a test: it never fails on a number. RSS hardly depends on
# CPU noise, so it is fair on a shared machine. Needs root.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/scripts/bench"
PROG="${0##*/}"

usage() {
  cat <<EOF
Usage: $PROG [options]

  --bins L=PATH[,L=PATH]  zring binaries to compare, each with a label
                          (default: zring=\$ZRING_BIN or build/zring)
  --allocators LIST       glibc,jemalloc,mimalloc (default glibc); the others
                          are LD_PRELOADed (Debian: libjemalloc2, libmimalloc2.0)
  --workers N             zring --workers (default: online CPUs, zring's own default)
  --rounds N              bursts per variant (default 3)
  --garbage N             junk connections per burst (default 2000)
  --tls N                 mutual TLS handshakes + junk per burst (default 0)
  --slowloris N           slow ClientHello sockets per burst (default 100)
  --after S               seconds after a burst to sample (default 10)
  --streams N             HBONE echo streams at once after the bursts (default 4, 0: none)
  --stream-mb M           MiB each stream echoes (default 32)
  --zring-args "ARGS"     more zring flags (e.g. "--connect-timeout 5s")
  --keep                  keep the scratch directory (logs, raw results)
  -h, --help              this text

Environment: ZRING_BIN (default build/zring).
EOF
}

say() { printf '[memory] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

bins="zring=${ZRING_BIN:-$root/build/zring}"
allocators=glibc
workers="$(nproc)"
rounds=3
garbage=2000
tls=0
slowloris=100
after=10
streams=4
stream_mb=32
zring_args=""
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --keep|-h|--help) ;;
    --*) [ $# -ge 2 ] || die "option $1 needs a value" ;;
  esac
  case "$1" in
    --bins) bins="$2"; shift 2 ;;
    --allocators) allocators="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --garbage) garbage="$2"; shift 2 ;;
    --tls) tls="$2"; shift 2 ;;
    --slowloris) slowloris="$2"; shift 2 ;;
    --after) after="$2"; shift 2 ;;
    --streams) streams="$2"; shift 2 ;;
    --stream-mb) stream_mb="$2"; shift 2 ;;
    --zring-args) zring_args="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) say "unknown argument '$1'"; usage >&2; exit 2 ;;
  esac
done
for n in "$workers" "$rounds" "$after"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "bad number '$n'"
done
for n in "$garbage" "$tls" "$slowloris" "$streams" "$stream_mb"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "bad number '$n'"
done

declare -A PRELOAD=()
for a in ${allocators//,/ }; do
  case "$a" in
    glibc) PRELOAD[$a]="" ;;
    jemalloc|mimalloc)
      lib="$(ldconfig -p | awk -v n="lib$a.so" 'index($1, n) == 1 { print $NF; exit }')"
      pkg=libjemalloc2; [ "$a" = jemalloc ] || pkg=libmimalloc2.0
      [ -n "$lib" ] || die "$a: no lib$a.so* found (Debian package $pkg: apt-get install $pkg)"
      PRELOAD[$a]="$lib" ;;
    *) die "unknown allocator '$a'" ;;
  esac
done
declare -A BIN=()
labels=()
for b in ${bins//,/ }; do
  [[ "$b" == *=* ]] || die "--bins: want LABEL=PATH, not '$b'"
  BIN[${b%%=*}]="${b#*=}"
  labels+=("${b%%=*}")
  [ -x "${b#*=}" ] || die "no zring binary at ${b#*=}"
done

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
for tool in ip python3 ss openssl; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs it)"
done
ulimit -n "$(ulimit -Hn)"

tag="$$"
CLI="zmem-$tag-cli"
SRV="zmem-$tag-srv"
VC="zmem${tag}c"
VS="zmem${tag}s"
IP_CLI=198.18.0.1
IP_SERVER=198.18.0.2
TD=cluster.local MESH_NS=bench
ts="$(date -u +%Y%m%dT%H%M%SZ)"
dir="$(mktemp -d /tmp/zring-memory.XXXXXX)"
results="$dir/results.jsonl"
: >"$results"
zring_pid=""

stop_zring() {  # TERM, up to 10 s (zring drains), then KILL
  local i
  [ -n "$zring_pid" ] || return 0
  kill -TERM "$zring_pid" 2>/dev/null || true
  for i in $(seq 100); do
    kill -0 "$zring_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$zring_pid" 2>/dev/null || true
  wait "$zring_pid" 2>/dev/null || true
  zring_pid=""
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  stop_zring
  [ -z "${echo_pid:-}" ] || kill "$echo_pid" 2>/dev/null
  ip netns del "$CLI" 2>/dev/null
  ip netns del "$SRV" 2>/dev/null
  if [ "$keep" = 1 ] || [ "$rc" -ne 0 ]; then
    say "scratch directory kept: $dir"
  else
    rm -rf "$dir"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_cli() { ip netns exec "$CLI" "$@"; }
in_srv() { ip netns exec "$SRV" "$@"; }

setup_netns() {
  ip netns add "$CLI"
  ip netns add "$SRV"
  ip link add "$VC" netns "$CLI" type veth peer name "$VS" netns "$SRV"
  in_cli ip link set lo up
  in_srv ip link set lo up
  in_cli ip addr add "$IP_CLI/24" dev "$VC"
  in_srv ip addr add "$IP_SERVER/24" dev "$VS"
  in_cli ip link set "$VC" up
  in_srv ip link set "$VS" up
  local ns
  for ns in "$CLI" "$SRV"; do
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="10240 65535" \
      net.ipv4.tcp_tw_reuse=1 net.core.somaxconn=8192 net.ipv4.tcp_max_syn_backlog=8192
  done
}

make_certs() {
  local c="$dir/certs"
  "$root/scripts/certs.sh" ca "$c" >/dev/null 2>>"$dir/certs.log" || die "certs.sh ca failed (see $dir/certs.log)"
  for sa in client server; do
    "$root/scripts/certs.sh" workload "$c" --ns "$MESH_NS" --sa "$sa" >/dev/null 2>>"$dir/certs.log" ||
      die "certs.sh workload ($sa) failed (see $dir/certs.log)"
  done
  CLIENT_DIR="$c/$TD/ns/$MESH_NS/sa/client"
  cat >"$dir/workloads.json" <<EOF
{"workloads": [
  {"uid": "bench/client", "name": "client", "namespace": "$MESH_NS", "serviceAccount": "client",
   "workloadIps": ["$IP_CLI"], "protocol": "HBONE"},
  {"uid": "bench/server", "name": "server", "namespace": "$MESH_NS", "serviceAccount": "server",
   "workloadIps": ["$IP_SERVER"], "protocol": "HBONE"}
]}
EOF
}

start_zring() {  # LABEL ALLOCATOR
  local log="$dir/zring-$1-$2.log" i
  : >"$log"
  # shellcheck disable=SC2086  # --zring-args is a list of flags
  ip netns exec "$SRV" env ${PRELOAD[$2]:+LD_PRELOAD=${PRELOAD[$2]}} \
    "${BIN[$1]}" --certs "$dir/certs" --config "$dir/workloads.json" \
    --workers "$workers" --hbone "$IP_SERVER:15008" $zring_args >"$log" 2>&1 &
  zring_pid=$!
  for i in $(seq 100); do
    kill -0 "$zring_pid" 2>/dev/null || die "zring ($1, $2) exited at start (see $log)"
    grep -q 'msg=ready' "$log" && break
    sleep 0.1
  done
  grep -q 'msg=ready' "$log" || die "zring ($1, $2) not ready after 10 s (see $log)"
  if [ -n "${PRELOAD[$2]}" ]; then
    grep -q "${PRELOAD[$2]##*/}" "/proc/$zring_pid/maps" || die "$2 is not loaded into zring"
  fi
  sleep 2   # let the first ticks and the config settle: a steady baseline
}

burst() {  # -> one JSON line
  in_cli python3 "$here/burst.py" --host "$IP_SERVER" --port 15008 --pid "$zring_pid" \
    --garbage "$garbage" --tls "$tls" --slowloris "$slowloris" --after "$after" \
    --cert "$CLIENT_DIR/cert-chain.pem" --key "$CLIENT_DIR/key.pem" --ca "$dir/certs/root-cert.pem" \
    --hold 60
}

# The HBONE streams: zr_h2client.py needs Debian's python3 (python3-h2).
PY=/usr/bin/python3
ECHO_PORT=7000
start_echo() {
  ip netns exec "$SRV" "$PY" "$root/tests/tools/zr_echo.py" --listen "$IP_SERVER" \
    --port "$ECHO_PORT" >"$dir/echo.out" 2>"$dir/echo.log" &
  echo_pid=$!
  for i in $(seq 50); do grep -qs READY "$dir/echo.out" && return 0; sleep 0.1; done
  die "echo server did not start"
}
stream_burst() {  # -> one JSON line: baseline, peak, after
  local base peak sp=() i rc=0
  base="$(awk '/^VmRSS:/ { print $2 }' "/proc/$zring_pid/status")"
  echo 5 >"/proc/$zring_pid/clear_refs"
  for i in $(seq "$streams"); do
    ip netns exec "$CLI" "$PY" "$root/tests/tools/zr_h2client.py" --addr "$IP_SERVER:15008" \
      --cert "$CLIENT_DIR/cert-chain.pem" --key "$CLIENT_DIR/key.pem" --ca "$dir/certs/root-cert.pem" \
      --authority "$IP_SERVER:$ECHO_PORT" --echo $((stream_mb << 20)) --timeout 120 \
      >>"$dir/streams.log" 2>&1 &
    sp+=("$!")
  done
  for i in "${sp[@]}"; do wait "$i" || rc=1; done
  [ "$rc" = 0 ] || say "warning: a stream failed (see $dir/streams.log)"
  peak="$(awk '/^VmHWM:/ { print $2 }' "/proc/$zring_pid/status")"
  sleep "$after"
  printf '{"baseline_kb": %s, "peak_kb": %s, "after_kb": %s, "ok": %s}\n' "$base" "$peak" \
    "$(awk '/^VmRSS:/ { print $2 }' "/proc/$zring_pid/status")" "$([ "$rc" = 0 ] && echo true || echo false)"
}

setup_netns
make_certs
[ "$streams" = 0 ] || start_echo
for label in "${labels[@]}"; do
  for a in ${allocators//,/ }; do
    start_zring "$label" "$a"
    for r in $(seq "$rounds"); do
      line="$(burst)" || die "burst.py failed"
      say "$label/$a round $r: $line"
      python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(bin=sys.argv[2], alloc=sys.argv[3], round=int(sys.argv[4])); print(json.dumps(d))' \
        "$line" "$label" "$a" "$r" >>"$results"
    done
    if [ "$streams" != 0 ]; then
      stop_zring
      start_zring "$label" "$a"   # a fresh one: its own baseline
      line="$(stream_burst)"
      say "$label/$a streams: $line"
      python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(bin=sys.argv[2], alloc=sys.argv[3], round="streams"); print(json.dumps(d))' \
        "$line" "$label" "$a" >>"$results"
    fi
    stop_zring
  done
done

mkdir -p "$root/bench-results"
out="$root/bench-results/memory-$ts.md"
python3 - "$results" "$garbage" "$tls" "$slowloris" "$after" "$workers" "$rounds" "$streams" "$stream_mb" >"$out" <<'PY'
import collections, json, sys
path, garbage, tls, slow, after, workers, rounds, streams, stream_mb = sys.argv[1:]
runs = collections.OrderedDict()
sruns = collections.OrderedDict()
for line in open(path):
    d = json.loads(line)
    if d["round"] == "streams":
        sruns[(d["bin"], d["alloc"])] = d
    else:
        runs.setdefault((d["bin"], d["alloc"]), []).append(d)
mib = lambda kb: f"{kb / 1024:.1f}"
print(f"Burst on :15008: {garbage} junk connections, {tls} mutual TLS handshakes + junk, "
      f"{slow} slowloris sockets, all at once; {rounds} bursts; zring --workers {workers}.")
print("RSS in MiB (VmRSS); +%ss is %s s after the end of the burst (the slowloris sockets last "
      "until zring's handshake deadline)." % (after, after))
print()
print(f"| zring | allocator | baseline | peak | +{after}s (1st burst) | +{after}s (last burst) | held after the last |")
print("|---|---|---|---|---|---|---|")
for (b, a), rs in runs.items():
    base = rs[0]["baseline_kb"]
    peak = max(r["peak_kb"] for r in rs)
    print(f"| {b} | {a} | {mib(base)} | {mib(peak)} | {mib(rs[0]['after_kb'])} | "
          f"{mib(rs[-1]['after_kb'])} | +{mib(rs[-1]['after_kb'] - base)} |")
if sruns:
    print()
    print(f"A fresh zring, then {streams} HBONE streams at once, each echoing {stream_mb} MiB "
          f"through it.")
    print()
    print(f"| zring | allocator | before | peak | +{after}s | held |")
    print("|---|---|---|---|---|---|")
    for (b, a), d in sruns.items():
        note = "" if d.get("ok", True) else " (a stream failed)"
        print(f"| {b} | {a} | {mib(d['baseline_kb'])} | {mib(d['peak_kb'])} | "
              f"{mib(d['after_kb'])} | +{mib(d['after_kb'] - d['baseline_kb'])}{note} |")
print()
print("Outcomes of the last burst:", "; ".join(
    f"{b}/{a}: " + ", ".join(f"{k}={v}" for k, v in sorted(rs[-1]["outcomes"].items()))
    for (b, a), rs in runs.items()))
PY
cp "$results" "$root/bench-results/memory-$ts.jsonl"
cat "$out"
say "saved $out"
