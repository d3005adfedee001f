#!/usr/bin/env bash
# bench.sh — zring against a direct connection and HAProxy 2.6, side by side.
#
# Builds a client and a server network namespace joined by a veth pair, runs
# nginx, iperf3 and an echo server in the server namespace, and zring (with
# deploy/iptables/zring-iptables.sh's capture rules) and HAProxy 2.6
# (transparent original-destination mode; `option splice-auto`, and forced
# splicing too, see --haproxy-splice) in the client namespace.
# Then it measures, path by path and interleaved: iperf3 throughput (1 and 4
# streams) and the proxy's CPU per GB, new connections per second (wrk,
# Connection: close) and the proxy's CPU per connection, p50/p99 latency at a
# fixed rate (scripts/bench/latency.py, all paths in one probe), memory and
# fds per idle proxied connection, and how many idle connections a proxy holds
# under the fd limit. Prints a markdown table and saves it under
# bench-results/ (git-ignored).
#
# It is a benchmark, not a test: it never fails on a number. See
# docs/benchmarks.md for the method and its caveats. Needs root.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
here="$root/scripts/bench"
PROG="${0##*/}"

usage() {
  cat <<EOF
Usage: $PROG [options]

Options:
  --workers N         zring workers and HAProxy threads (default 1)
  --pump MODE         run zring with --pump MODE (splice|copy)
  --pumps A,B         benchmark zring once per pump mode, e.g. splice,copy
  --only LIST         rows to run: throughput,cps,latency,memory,maxconn,mtls
                      (default: all); mtls is the two-hop mTLS table of
                      scripts/bench/mtls.sh (zring pair vs HAProxy TLS pair)
  --paths LIST        columns: direct,haproxy,zring (default: all; zring is
                      dropped with a warning when its binary is missing)
  --quick             short run: 1 repeat, 3 s measurements
  --repeats N         runs of each measurement, median reported (default 3)
  --duration S        seconds per throughput/cps/latency run (default 10)
  --rate R            latency probe: requests per second to each path
                      (default 250; the paths take turns, so the probe
                      sends R x paths per second in all); it runs for twice
                      the --duration
  --conns C           wrk connections for the cps row (default 32)
  --mem-conns N       idle connections for the memory row (default 4000)
  --max-conns N       idle connections tried for the maxconn row (default 9500)
  --nginx-workers N   nginx worker processes (default: one per CPU)
  --pin               proxies (HAProxy, zring, all their threads) on the last
                      CPU, everything else (clients, servers) on the others:
                      separates the proxies' own latency tails from the
                      scheduler's; needs --workers 1 and 2 or more CPUs; the
                      mtls row is not pinned
  --haproxy-splice L  HAProxy columns, one per splice mode (default auto,always):
                      auto = "option splice-auto", always = splice-request +
                      splice-response, off = none. Ratios use the first.
  --keep              keep the scratch directory (logs, configs)
  --setup-only        build the topology, start the servers and HAProxy, print
                      how to reach them, and wait (Ctrl-C cleans up): for
                      reproducing a problem by hand
  -h, --help          this text

Environment: ZRING_BIN (default build/zring), ZRING_EXTRA_ARGS (more zring
flags), ZRING_IPTABLES (capture script, default deploy/iptables/zring-iptables.sh).
EOF
}

say() { printf '[bench] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ------------------------------------------------------------------ options

workers=1
pump=""
pumps=""
only="throughput,cps,latency,memory,maxconn,mtls"
paths_opt="direct,haproxy,zring"
repeats=3
duration=10
rate=250
wrk_conns=32
mem_conns=4000
max_conns=9500
nginx_workers="$(nproc)"
haproxy_splice=auto,always
keep=0
quick=0
setup_only=0
pin=0

while [ $# -gt 0 ]; do
  case "$1" in
    --quick|--keep|--setup-only|--pin|-h|--help) ;;
    --*) [ $# -ge 2 ] || die "option $1 needs a value" ;;
  esac
  case "$1" in
    --workers) workers="$2"; shift 2 ;;
    --pump) pump="$2"; shift 2 ;;
    --pumps) pumps="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --paths) paths_opt="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    --repeats) repeats="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --conns) wrk_conns="$2"; shift 2 ;;
    --mem-conns) mem_conns="$2"; shift 2 ;;
    --max-conns) max_conns="$2"; shift 2 ;;
    --nginx-workers) nginx_workers="$2"; shift 2 ;;
    --haproxy-splice) haproxy_splice="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    --setup-only) setup_only=1; shift ;;
    --pin) pin=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) say "unknown argument '$1'"; usage >&2; exit 2 ;;
  esac
done
if [ "$quick" = 1 ]; then
  repeats=1 duration=3
fi
for n in "$workers" "$repeats" "$duration" "$wrk_conns" "$mem_conns" "$max_conns" "$nginx_workers"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "bad number '$n'"
done
[[ "$rate" =~ ^[1-9][0-9]*$ ]] || die "bad --rate '$rate'"
if [ "$pin" = 1 ]; then
  [ "$(nproc)" -ge 2 ] || die "--pin needs 2 or more CPUs"
  [ "$workers" = 1 ] || die "--pin gives the proxies one CPU: use --workers 1"
  proxy_cpu=$(( $(nproc) - 1 ))
  other_cpus="0-$(( proxy_cpu - 1 ))"
  # Every child of this script (servers, clients) inherits the other CPUs;
  # pin_proxy moves a proxy, all its threads, to the last one.
  taskset -p -c "$other_cpus" $$ >/dev/null || die "taskset failed"
fi
pin_proxy() {  # PID
  [ "$pin" = 1 ] || return 0
  taskset -a -p -c "$proxy_cpu" "$1" >/dev/null || die "taskset -p $1 failed"
}
for m in ${haproxy_splice//,/ }; do
  case "$m" in auto|always|off) ;; *) die "--haproxy-splice: want auto, always or off, not '$m'" ;; esac
done
[ -z "$pump" ] || [ -z "$pumps" ] || die "--pump and --pumps exclude each other"
[ -n "$pumps" ] || pumps="$pump"
for m in ${pumps//,/ }; do
  case "$m" in splice|copy) ;; *) die "unknown pump mode '$m'" ;; esac
done
for r in ${only//,/ }; do
  case "$r" in throughput|cps|latency|memory|maxconn|mtls) ;; *) die "unknown row '$r' in --only" ;; esac
done
wants() { [[ ",$only," == *",$1,"* ]]; }
if [ "$only" = mtls ]; then
  exec "$here/mtls.sh" --workers "$workers" --repeats "$repeats" --duration "$duration"
fi

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, iptables)"
for tool in ip iptables iperf3 wrk nginx haproxy python3 ss; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs it)"
done

ZRING_BIN="${ZRING_BIN:-$root/build/zring}"
zring_src="$ZRING_BIN"
ZRING_IPTABLES="${ZRING_IPTABLES:-$root/deploy/iptables/zring-iptables.sh}"

# Columns. zring becomes one column per pump mode.
paths=()
for p in ${paths_opt//,/ }; do
  case "$p" in
    direct) paths+=("$p") ;;
    haproxy) for m in ${haproxy_splice//,/ }; do paths+=("haproxy-$m"); done ;;
    zring)
      if [ ! -x "$ZRING_BIN" ]; then
        say "warning: no zring binary at $ZRING_BIN (set ZRING_BIN); benchmarking without zring"
        continue
      fi
      if [ -z "$pumps" ]; then paths+=("zring-default")
      else for m in ${pumps//,/ }; do paths+=("zring-$m"); done
      fi ;;
    *) die "unknown path '$p' in --paths" ;;
  esac
done
[ "${#paths[@]}" -gt 0 ] || die "nothing to benchmark"

# Use every fd the hard limit allows; the children inherit it.
ulimit -n "$(ulimit -Hn)"
nofile="$(ulimit -n)"

# ------------------------------------------------------------------ topology
#
#   client netns (CLI)                         server netns (SRV)
#   198.18.0.1  (client, proxies)  ── veth ──  198.18.0.2  zring's target
#   198.18.0.11 (HAProxy upstream source)      198.18.0.3  direct target
#                                              198.18.0.4-6 HAProxy's targets
# Each path has its own server address so that all coexist with the capture
# rules installed (chain ZRB_BENCH, ahead of zring's ZRING_OUTPUT):
#   -d .3 ACCEPT (direct: no redirect) ; -s .11 ACCEPT (HAProxy's upstream)
#   -d .4/.5/.6 REDIRECT :15201/2/3 (into HAProxy splice auto/always/off);
#   everything else -> zring's rules.
# 198.18.0.0/15 is the range RFC 2544 sets aside for benchmarks.

tag="$$"
CLI="zrb-$tag-cli"
SRV="zrb-$tag-srv"
VC="zrb${tag}c"
VS="zrb${tag}s"
IP_CLI=198.18.0.1
IP_HASRC=198.18.0.11
IP_ZRING=198.18.0.2
IP_DIRECT=198.18.0.3
declare -A HAP_IP=([auto]=198.18.0.4 [always]=198.18.0.5 [off]=198.18.0.6)
declare -A HAP_PORT=([auto]=15201 [always]=15202 [off]=15203)
declare -A HAP_SPLICE=([auto]="option splice-auto"
                       [always]="option splice-request\n    option splice-response"
                       [off]="# no splicing (--haproxy-splice off)")
declare -A hap_pid=()
ECHO_PORT=7000
ts="$(date -u +%Y%m%dT%H%M%SZ)"
dir="$(mktemp -d /tmp/zring-bench.XXXXXX)"
chmod 755 "$dir"  # nginx's workers (not root) read www/ under it
results="$dir/results.jsonl"
: >"$results"

pids=()          # every process we started, by id
zring_pid=""
zring_mode=""

in_cli() { ip netns exec "$CLI" "$@"; }
in_srv() { ip netns exec "$SRV" "$@"; }

stop_pid() {  # PID: TERM, wait up to 3 s, then KILL
  local pid="$1" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 30); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  ip netns del "$CLI" 2>/dev/null || true
  ip netns del "$SRV" 2>/dev/null || true
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

setup_netns() {
  ip netns add "$CLI"
  ip netns add "$SRV"
  ip link add "$VC" netns "$CLI" type veth peer name "$VS" netns "$SRV"
  in_cli ip link set lo up
  in_srv ip link set lo up
  in_cli ip addr add "$IP_CLI/24" dev "$VC"
  in_cli ip addr add "$IP_HASRC/24" dev "$VC"
  for a in "$IP_ZRING" "$IP_DIRECT" "${HAP_IP[@]}"; do
    in_srv ip addr add "$a/24" dev "$VS"
  done
  in_cli ip link set "$VC" up
  in_srv ip link set "$VS" up
  # Many short connections: wide port range, reuse of TIME_WAIT ports.
  local ns
  for ns in "$CLI" "$SRV"; do
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="10240 65535" \
      net.ipv4.tcp_tw_reuse=1 net.core.somaxconn=8192 net.ipv4.tcp_max_syn_backlog=8192
  done
}

# zring's capture rules (the project's script), then our chain in front.
install_rules() {
  if [ -f "$ZRING_IPTABLES" ]; then
    in_cli bash "$ZRING_IPTABLES" install >"$dir/iptables.log" 2>&1 ||
      { cat "$dir/iptables.log" >&2; die "$ZRING_IPTABLES install failed"; }
  else
    say "warning: $ZRING_IPTABLES missing; installing two equivalent rules inline"
    in_cli iptables -w -t nat -A OUTPUT -p tcp -m mark --mark 0x539 -j RETURN
    in_cli iptables -w -t nat -A OUTPUT -p tcp ! -o lo -j REDIRECT --to-ports 15001
  fi
  in_cli iptables -w -t nat -N ZRB_BENCH
  in_cli iptables -w -t nat -A ZRB_BENCH -d "$IP_DIRECT" -j ACCEPT
  in_cli iptables -w -t nat -A ZRB_BENCH -s "$IP_HASRC" -j ACCEPT
  local m
  for m in "${!HAP_IP[@]}"; do
    in_cli iptables -w -t nat -A ZRB_BENCH -d "${HAP_IP[$m]}" -p tcp -j REDIRECT --to-ports "${HAP_PORT[$m]}"
  done
  in_cli iptables -w -t nat -I OUTPUT 1 -j ZRB_BENCH
  # The nat rules turn conntrack on in this namespace; keep its table from
  # filling up with TIME_WAIT entries during the connections-per-second runs.
  in_cli sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_time_wait=2 \
    net.netfilter.nf_conntrack_tcp_timeout_fin_wait=10 \
    net.netfilter.nf_conntrack_tcp_timeout_close_wait=10 \
    net.netfilter.nf_conntrack_tcp_timeout_last_ack=10 2>/dev/null ||
    say "warning: could not shorten conntrack timeouts"
}

wait_listen() {  # NETNS PORT PID WHAT
  local ns="$1" port="$2" pid="$3" what="$4" i
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || die "$what exited at start (logs in $dir)"
    if [ -n "$(ip netns exec "$ns" ss -Hltn "sport = :$port")" ]; then return 0; fi
    sleep 0.1
  done
  die "$what does not listen on :$port after 10 s (logs in $dir)"
}

fill() {  # TEMPLATE OUT [HAPROXY-MODE]: replace @VARS@
  local m="${3:-auto}"
  sed -e "s|@DIR@|$dir|g" -e "s|@WORKERS@|$workers|g" -e "s|@NOFILE@|$nofile|g" \
      -e "s|@NGINX_WORKERS@|$nginx_workers|g" -e "s|@HAPROXY_PORT@|${HAP_PORT[$m]}|g" \
      -e "s|@HAPROXY_SRC@|$IP_HASRC|g" -e "s|@MAXCONN@|$haproxy_maxconn|g" \
      -e "s|@MAXPIPES@|$haproxy_maxpipes|g" -e "s|@SPLICE@|${HAP_SPLICE[$m]}|g" \
      -e "s|@NAME@|haproxy-$m|g" "$1" >"$2"
}

start_servers() {
  mkdir -p "$dir/www" "$dir/nginx-tmp"
  # A small file: 128 bytes of body.
  head -c 128 /dev/zero | tr '\0' 'x' >"$dir/www/small"
  fill "$here/nginx.conf.in" "$dir/nginx.conf"
  in_srv nginx -t -q -e "$dir/nginx-error.log" -c "$dir/nginx.conf" ||
    die "nginx rejects $dir/nginx.conf"
  # Started as simple commands (not through in_srv) so that $! is the
  # server's own pid: ip netns exec execs it in place.
  ip netns exec "$SRV" nginx -e "$dir/nginx-error.log" -c "$dir/nginx.conf" >"$dir/nginx.out" 2>&1 &
  pids+=("$!")
  wait_listen "$SRV" 80 "$!" nginx
  ip netns exec "$SRV" iperf3 -s -p 5201 >"$dir/iperf3-server.log" 2>&1 &
  pids+=("$!")
  wait_listen "$SRV" 5201 "$!" "iperf3 -s"
  ip netns exec "$SRV" python3 "$here/echo_server.py" --port "$ECHO_PORT" >"$dir/echo.log" 2>&1 &
  pids+=("$!")
  wait_listen "$SRV" "$ECHO_PORT" "$!" echo_server
}

# HAProxy's maxconn: as many as the fd limit allows at two fds per
# connection, after its pipe pool (two fds per pipe) and some slack.
haproxy_maxpipes=100
haproxy_maxconn=$(( (nofile - 2 * haproxy_maxpipes - 200) / 2 ))

start_haproxy() {  # MODE
  local m="$1" cfg="$dir/haproxy-$1.cfg"
  stop_haproxy "$m"
  fill "$here/haproxy.cfg.in" "$cfg" "$m"
  in_cli haproxy -c -q -f "$cfg" >"$dir/haproxy-$m-check.log" 2>&1 ||
    { cat "$dir/haproxy-$m-check.log" >&2; die "haproxy rejects $cfg"; }
  ip netns exec "$CLI" haproxy -db -f "$cfg" >>"$dir/haproxy-$m.log" 2>&1 &
  hap_pid[$m]=$!
  pids+=("$!")
  wait_listen "$CLI" "${HAP_PORT[$m]}" "$!" "haproxy ($m)"
  pin_proxy "${hap_pid[$m]}"
}

# One "show info" field from HAProxy's stats socket ("" if unavailable).
haproxy_info() {  # MODE FIELD
  local sock="$dir/haproxy-$1.sock"
  [ -n "${hap_pid[$1]:-}" ] && [ -S "$sock" ] || return 0
  python3 - "$sock" "$2" <<'PY' 2>/dev/null || true
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(b"show info\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
for line in data.decode().splitlines():
    k, _, v = line.partition(": ")
    if k == sys.argv[2]:
        print(v)
PY
}

stop_haproxy() {  # MODE
  [ -z "${hap_pid[$1]:-}" ] || stop_pid "${hap_pid[$1]}"
  hap_pid[$1]=""
}

start_zring() {  # MODE ("default" = zring's own choice)
  local mode="$1" args=(--workers "$workers" --log-level warn)
  [ "$mode" = default ] || args+=(--pump "$mode")
  # shellcheck disable=SC2206
  args+=(${ZRING_EXTRA_ARGS:-})
  stop_zring
  echo "== $(date -u +%T) zring ${args[*]}" >>"$dir/zring.log"
  ip netns exec "$CLI" "$ZRING_BIN" "${args[@]}" >>"$dir/zring.log" 2>&1 &
  zring_pid=$!
  zring_mode="$mode"
  pids+=("$zring_pid")
  wait_listen "$CLI" 15001 "$zring_pid" zring
  pin_proxy "$zring_pid"
}

stop_zring() {
  if [ -n "$zring_pid" ]; then
    stop_pid "$zring_pid"
    wait "$zring_pid" 2>/dev/null || true
  fi
  zring_pid="" zring_mode=""
}

# Make PATH's proxy run (FRESH=1: restart it first). Sets target and pid.
target="" proxy_pid="" current="start"
use_path() {
  local path="$1" fresh="${2:-0}"
  case "$path" in
    direct) target="$IP_DIRECT" proxy_pid="" ;;
    haproxy-*)
      local m="${path#haproxy-}"
      if [ "$fresh" = 1 ] || [ -z "${hap_pid[$m]:-}" ] || ! kill -0 "${hap_pid[$m]}" 2>/dev/null; then
        start_haproxy "$m"
      fi
      target="${HAP_IP[$m]}" proxy_pid="${hap_pid[$m]}" ;;
    zring-*)
      local mode="${path#zring-}"
      if [ "$fresh" = 1 ] || [ "$zring_mode" != "$mode" ] || ! kill -0 "$zring_pid" 2>/dev/null; then
        [ -z "$zring_pid" ] || kill -0 "$zring_pid" 2>/dev/null ||
          note_zring_died
        start_zring "$mode"
      fi
      target="$IP_ZRING" proxy_pid="$zring_pid" ;;
  esac
}

note_zring_died() {
  local rc=0 how
  wait "$zring_pid" 2>/dev/null || rc=$?
  how="exit status $rc"
  [ "$rc" -le 128 ] || how="killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))"
  echo "== $(date -u +%T) zring pid $zring_pid died: $how" >>"$dir/zring.log"
  say "warning: zring (pid $zring_pid, pump $zring_mode) died ($how) during $current; see $dir/zring.log"
  record zring-died "zring-$zring_mode" 0 null "zring died ($how) during $current; last log lines: $(grep -v '^==' "$dir/zring.log" | tail -n 3 | tr '\n' ' ')"
}

jget() { python3 "$here/report.py" field "$1" "$2"; }  # JSON-or-FILE KEY

# CPU time (user + system, all threads, io_uring's io-wq workers included)
# that process PID has used so far, in clock ticks; 0 without a PID.
clk_tck="$(getconf CLK_TCK)"
proc_cpu() {
  if [ -z "${1:-}" ] || [ ! -r "/proc/$1/stat" ]; then echo 0; return; fi
  # Fields after the ")" that ends the command name: utime is 12th, stime 13th.
  sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}

# record METRIC PATH REP VALUE [NOTE] [RAW-JSON] [PAIR]
# PAIR names a measurement several paths shared (one latency probe run): the
# report then takes ratios within each pair before the median.
record() {
  local metric="$1" path="$2" rep="$3" value="$4" note="${5:-}" raw="${6:-null}" pair="${7:-}"
  python3 - "$metric" "$path" "$rep" "$value" "$note" "$raw" "$pair" >>"$results" <<'PY'
import json, sys
m, p, rep, v, note, raw, pair = sys.argv[1:]
print(json.dumps({"metric": m, "path": p, "rep": int(rep),
                  "value": None if v in ("", "null") else float(v),
                  "note": note or None, "raw": json.loads(raw), "pair": pair or None}))
PY
}

# ------------------------------------------------------------------ measurements
# Each takes PATH REP, runs once, records, and never aborts the run.

m_throughput() {  # PATH REP STREAMS
  local path="$1" rep="$2" streams="$3" out="$dir/iperf-$1-$2-$3.json" res c0 c1
  use_path "$path"
  c0="$(proc_cpu "$proxy_pid")"
  if ! in_cli timeout $((duration + 30)) iperf3 -c "$target" -p 5201 -t "$duration" -O 1 \
        -P "$streams" -J >"$out" 2>"$out.err"; then
    record "tput_p$streams" "$path" "$rep" null "iperf3 failed: $(head -c 300 "$out.err" "$out" | tr '\n' ' ')"
    return 0
  fi
  c1="$(proc_cpu "$proxy_pid")"
  res="$(python3 "$here/report.py" iperf "$out")"
  record "tput_p$streams" "$path" "$rep" "$(jget "$res" gbps)" "" "$res"
  if [ -n "$proxy_pid" ]; then
    # Proxy CPU per GB carried: the whole run's CPU over the bytes of the
    # whole run (iperf3's omitted first second included, at the same rate).
    record "cpu_gb_p$streams" "$path" "$rep" "$(python3 -c 'import sys
cpu, tck, gbps, secs = map(float, sys.argv[1:])
print(round((cpu / tck) * 1000 / (gbps / 8 * secs), 1))' "$((c1 - c0))" "$clk_tck" "$(jget "$res" gbps)" "$((duration + 1))")"
  fi
  say "  $path tput -P$streams: $res"
}

m_cps() {
  local path="$1" rep="$2" out="$dir/wrk-$1-$2.txt" res note="" c0 c1
  use_path "$path"
  c0="$(proc_cpu "$proxy_pid")"
  if ! in_cli timeout $((duration + 30)) wrk -t1 -c "$wrk_conns" -d "${duration}s" --timeout 2s \
        -H 'Connection: close' "http://$target/small" >"$out" 2>&1; then
    record cps "$path" "$rep" null "wrk failed: $(head -c 300 "$out" | tr '\n' ' ')"
    return 0
  fi
  c1="$(proc_cpu "$proxy_pid")"
  res="$(python3 "$here/report.py" wrk "$out")"
  record cps "$path" "$rep" "$(jget "$res" rps)" "$(jget "$res" note)" "$res"
  if [ -n "$proxy_pid" ] && [ -n "$(jget "$res" requests)" ]; then
    # Proxy CPU per proxied connection, in microseconds.
    record cpu_conn "$path" "$rep" "$(python3 -c 'import sys
cpu, tck, n = map(float, sys.argv[1:])
print(round(cpu / tck * 1e6 / n, 1) if n else "")' "$((c1 - c0))" "$clk_tck" "$(jget "$res" requests)")"
  fi
  say "  $path cps: $res"
}

# Latency: the paths are measured together, in one probe that takes turns
# request by request (see latency.py), so the machine's noise hits them alike;
# the order within each round is shuffled, with a new seed per repeat.
# With several zring pump modes, each gets its own probe run alongside direct
# and HAProxy (which so get one sample per mode and run).
m_latency() {  # GROUP REP  (GROUP: paths joined by '+')
  local group="$1" rep="$2" mode key out p targets=()
  for p in ${group//+/ }; do
    use_path "$p"
    targets+=(--target "$p=$target:80")
  done
  for mode in keepalive newconn; do
    key=ka; [ "$mode" = newconn ] && key=nc
    out="$dir/lat-${group//+/_}-$rep-$mode.json"
    if ! in_cli timeout $((duration * 4 + 60)) python3 "$here/latency.py" "${targets[@]}" \
          --rate "$rate" --duration $((duration * 2)) --mode "$mode" --seed "$rep" \
          >"$out" 2>"$out.err"; then
      for p in ${group//+/ }; do
        record "lat_${key}_p50" "$p" "$rep" "$(jget "$out" "targets.$p.p50_us")" \
          "latency.py failed: $(tail -c 300 "$out.err" | tr '\n' ' ')"
      done
      continue
    fi
    for p in ${group//+/ }; do
      local errs late note=""
      errs="$(jget "$out" "targets.$p.errors")"
      late="$(jget "$out" "targets.$p.late")"
      [ "$errs" = 0 ] || note="$errs failed requests"
      record "lat_${key}_p50" "$p" "$rep" "$(jget "$out" "targets.$p.p50_us")" "$note" \
        "$(python3 -c 'import json,sys; print(json.dumps(json.loads(open(sys.argv[1]).read())["targets"][sys.argv[2]]))' "$out" "$p")" \
        "$group-$rep"
      record "lat_${key}_p99" "$p" "$rep" "$(jget "$out" "targets.$p.p99_us")" "" null "$group-$rep"
      say "  $p latency $mode: p50 $(jget "$out" "targets.$p.p50_us") µs, p99 $(jget "$out" "targets.$p.p99_us") µs, late $late, errors $errs"
    done
  done
}

m_memory() {  # on a freshly started proxy; direct has no proxy to measure
  local path="$1" rep="$2" out="$dir/mem-$1-$2.json" res
  [ "$path" != direct ] || return 0
  use_path "$path" 1
  if ! in_cli timeout 300 python3 "$here/hold.py" --host "$target" --port "$ECHO_PORT" \
        --count "$mem_conns" --pid "$proxy_pid" --hold 1 >"$out" 2>"$out.err"; then
    record mem_rss "$path" "$rep" null "hold.py failed: $(tail -c 300 "$out.err" | tr '\n' ' ')"
    return 0
  fi
  res="$(tail -n1 "$out")"
  local opened; opened="$(jget "$out" opened)"
  local note=""; [ "$opened" = "$mem_conns" ] || note="only $opened of $mem_conns connections opened"
  record mem_rss "$path" "$rep" "$(jget "$out" rss_kib_per_conn)" "$note" "$res"
  record mem_fds "$path" "$rep" "$(jget "$out" fds_per_conn)"
  say "  $path memory: $res"
}

m_maxconn() {
  local path="$1" rep="$2" out="$dir/max-$1-$2.json" res alive
  if [ "$path" = direct ]; then use_path direct; else use_path "$path" 1; fi
  if ! in_cli timeout 600 python3 "$here/hold.py" --host "$target" --port "$ECHO_PORT" \
        --count "$max_conns" ${proxy_pid:+--pid "$proxy_pid"} --hold 5 >"$out" 2>"$out.err"; then
    record maxconn "$path" "$rep" null "hold.py failed: $(tail -c 300 "$out.err" | tr '\n' ' ')"
    return 0
  fi
  res="$(tail -n1 "$out")"
  alive="$(jget "$out" alive_after_hold)"
  local note=""
  case "$path" in zring-*) [ "$alive" -ge 9000 ] || note="zring held $alive < 9000 idle connections" ;; esac
  record maxconn "$path" "$rep" "$alive" "$note" "$res"
  say "  $path maxconn: $res"
  # A proxy left at its fd limit is restarted before the next row.
  case "$path" in haproxy-*) stop_haproxy "${path#haproxy-}" ;; zring-*) stop_zring ;; esac
}

# Runs measurement FN for every path, REPEATS times, rotating the order of
# paths each round so that slow drifts of the machine spread evenly.
run_row() {  # FN [ARGS...]
  local fn="$1" rep i n="${#paths[@]}" p
  shift
  for rep in $(seq "$repeats"); do
    for i in $(seq 0 $((n - 1))); do
      p="${paths[$(( (i + rep - 1) % n ))]}"
      current="$fn $* ($p, run $rep)"
      "$fn" "$p" "$rep" "$@"
      # A zring that died under this measurement is recorded, then restarted.
      if [ -n "$zring_pid" ] && ! kill -0 "$zring_pid" 2>/dev/null; then
        note_zring_died
        zring_pid="" zring_mode=""
      fi
    done
  done
}

# ------------------------------------------------------------------ header

version_of() { timeout 5 "$@" 2>&1 | head -n1 | tr -d '\r' || true; }
zring_version="(not run)"
for p in "${paths[@]}"; do
  case "$p" in zring-*) zring_version="$(version_of "$zring_src" --version)"; break ;; esac
done
write_meta() {
  local cpu mem
  cpu="$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
  mem="$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  python3 - "$dir/meta.json" "$ts" "${paths[*]}" <<PY
import json, sys
out, ts, paths = sys.argv[1], sys.argv[2], sys.argv[3].split()
def noise(path):
    try:
        d = json.load(open(path))
    except (OSError, ValueError):
        return "n/a"
    return "%d/%d/%d µs, %.2f" % (d["wakeup_late_p50_us"], d["wakeup_late_p99_us"],
                                  d["wakeup_late_max_us"], d["loadavg_1m"])
header = [
  ("host", "$(uname -r) $(uname -m), $(nproc) CPUs ($cpu), $mem"),
  ("zring", """$zring_version""" + " ($zring_src" + (", pumps: ${pumps:-default}" if any(p.startswith("zring") for p in paths) else "") + ")"),
  ("HAProxy", "$(haproxy -v | head -n1 | awk '{print $3}') (nbthread $workers, transparent original-destination, maxconn $haproxy_maxconn, maxpipes $haproxy_maxpipes; spliced during the throughput rows: $haproxy_spliced)"),
  ("nginx", "$(nginx -v 2>&1 | awk -F/ '{print $2}') ($nginx_workers worker(s), 128-byte file)"),
  ("tools", "$(iperf3 -v | head -n1 | awk '{print "iperf3 "$2}'), wrk $(wrk -v 2>&1 | head -n1 | awk '{print $2}'), Python $(python3 -c 'import platform; print(platform.python_version())')"),
  ("parameters", "workers $workers, $repeats repeat(s), ${duration} s runs, wrk -t1 -c $wrk_conns, latency $rate req/s per path, memory over $mem_conns idle conns, maxconn tries $max_conns, ulimit -n $nofile$( [ "$pin" = 1 ] && echo ", pinned: proxies on CPU $proxy_cpu, clients and servers on CPUs $other_cpus")"),
  ("machine noise", "1 ms sleep wake-up lateness p50/p99/max, load average: before " + noise("$dir/noise-start.json") + "; after " + noise("$dir/noise-end.json")),
  ("topology", "client netns ⇄ veth ⇄ server netns; proxies in the client netns behind iptables REDIRECT; all on one shared $(nproc)-core machine"),
]
json.dump({"timestamp": ts, "paths": paths, "header": header,
           "ratio_ref": next((p for p in paths if p.startswith("haproxy")), None),
           "params": {"rate": $rate, "mem_conns": $mem_conns, "max_conns": $max_conns,
                      "repeats": $repeats}}, open(out, "w"))
PY
}

# ------------------------------------------------------------------ main

say "scratch: $dir; netns $CLI / $SRV; paths: ${paths[*]}; ulimit -n $nofile"
# Run a private copy: the build tree may be rebuilt while we measure.
for p in "${paths[@]}"; do
  case "$p" in zring-*)
    cp "$zring_src" "$dir/zring"
    ZRING_BIN="$dir/zring"
    break ;;
  esac
done
setup_netns
install_rules
start_servers
python3 "$here/noise.py" >"$dir/noise-start.json" || true
say "machine noise before: $(cat "$dir/noise-start.json")"
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["loadavg_1m"] > 0.7 or d["wakeup_late_p99_us"] > 2000 else 1)' "$dir/noise-start.json" 2>/dev/null; then
  say "warning: the machine is busy (see above): expect noisy figures, latency above all"
fi

if [ "$setup_only" = 1 ]; then
  hap_where=""
  for m in ${haproxy_splice//,/ }; do
    start_haproxy "$m"
    hap_where+=" ${HAP_IP[$m]} via HAProxy splice $m (:${HAP_PORT[$m]}, pid ${hap_pid[$m]});"
  done
  cat >&2 <<EOF
[bench] topology is up for 2 hours (Ctrl-C cleans up sooner):
  client netns $CLI: ip netns exec $CLI bash
     zring's capture rules are installed; start zring yourself, e.g.
     ip netns exec $CLI $ZRING_BIN --workers $workers --log-level warn
  server netns $SRV: nginx :80 (/small, 128 B), iperf3 -s :5201, echo :$ECHO_PORT
  targets from the client netns: $IP_ZRING via zring (:15001), $IP_DIRECT direct,
    $hap_where
  e.g. ip netns exec $CLI iperf3 -c $IP_ZRING -t 5
  scratch: $dir
EOF
  keep=1
  for _ in $(seq 7200); do sleep 1; done  # gives up after 2 hours
fi

haproxy_spliced="not measured"
if wants throughput; then
  say "throughput (iperf3, ${duration} s, 1 stream)"
  run_row m_throughput 1
  say "throughput (iperf3, ${duration} s, 4 streams)"
  run_row m_throughput 4
  # Did HAProxy really splice? (splice-auto decides by itself.)
  haproxy_spliced=""
  for m in ${haproxy_splice//,/ }; do
    b="$(haproxy_info "$m" TotalSplicdedBytesOut)"
    haproxy_spliced+="${haproxy_spliced:+, }$m ${b:+$(( b / 1000000 )) MB}"
  done
fi
if wants cps; then
  say "new connections per second (wrk -c $wrk_conns, Connection: close)"
  run_row m_cps
fi
if wants latency; then
  say "latency at $rate req/s per path (keep-alive and new connection, paths interleaved)"
  base=() zpaths=()
  for p in "${paths[@]}"; do
    case "$p" in zring-*) zpaths+=("$p") ;; *) base+=("$p") ;; esac
  done
  groups=()
  if [ "${#zpaths[@]}" -eq 0 ]; then
    groups=("$(IFS=+; echo "${base[*]}")")
  else
    for z in "${zpaths[@]}"; do groups+=("$(IFS=+; echo "${base[*]} $z" | tr ' ' '+')"); done
  fi
  saved_paths=("${paths[@]}")
  paths=("${groups[@]}")
  run_row m_latency
  paths=("${saved_paths[@]}")
fi
if wants memory; then
  say "memory per idle connection ($mem_conns connections)"
  run_row m_memory
fi
if wants maxconn; then
  say "idle connections held ($max_conns tried)"
  # One round is enough: it is a count, not a timing.
  repeats_saved="$repeats"; repeats=1
  run_row m_maxconn
  repeats="$repeats_saved"
fi

python3 "$here/noise.py" >"$dir/noise-end.json" || true
write_meta
mkdir -p "$root/bench-results"
python3 "$here/report.py" table "$dir/meta.json" "$results" >"$root/bench-results/$ts.md"
cp "$results" "$root/bench-results/$ts.jsonl"
cp "$dir/meta.json" "$root/bench-results/$ts.meta.json"
cat "$root/bench-results/$ts.md"
if wants mtls; then
  say "two-hop mTLS (scripts/bench/mtls.sh)"
  mtls_args=(--workers "$workers" --repeats "$repeats" --duration "$duration")
  "$here/mtls.sh" "${mtls_args[@]}" || say "mtls.sh failed"
fi
say "saved bench-results/$ts.md (raw: $ts.jsonl; re-render: scripts/bench/report.py table bench-results/$ts.meta.json bench-results/$ts.jsonl)"
