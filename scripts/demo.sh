#!/usr/bin/env bash
# zring quick start: build zring and watch two sidecar zrings carry real HTTP
# requests between two "pods" (network namespaces) through a mutual-TLS HBONE
# tunnel, the way Istio's ztunnel does.
#
#   scripts/demo.sh [--once] [--no-setup]
#
#   netns zring-demo-client (client pod)       netns zring-demo-server (server pod)
#     10.99.0.1  fd00:99::1    <---- veth ---->  10.99.0.2  fd00:99::2
#     spiffe://cluster.local/ns/demo/sa/client   spiffe://cluster.local/ns/demo/sa/server
#     zring-iptables.sh + zring A                zring-iptables.sh + zring B
#     curl (or python)                           python3 -m http.server :8080
#     route to the service VIP 10.96.0.10        (endpoint of web.demo, port 80 -> 8080)
#
# It runs scripts/setup.sh, builds with meson, builds that topology, makes a
# test CA and one workload certificate per pod with scripts/certs.sh (in a
# temporary folder), and starts one zring in each pod with
# `--config examples/demo/workloads.json --certs <that pod's certificates>`.
# Then it sends a few HTTP requests from the client pod to the server pod's
# IPv4 and IPv6 addresses and to the service VIP. zring A captures each one
# (outbound, :15001) and sends it through an mTLS tunnel to zring B's :15008,
# which hands it to the web server. Both logs show on the terminal, prefixed
# [client-pod zring] and [server-pod zring]: one msg=access line per request
# on each side, A's with security=mutual_tls dst_identity=spiffe://...,
# B's with dir=hbone src_identity=spiffe://.../sa/client.
# Then both keep running in the foreground until Ctrl-C, which stops them
# gracefully (SIGTERM, drain, exit 0); the topology and the temporary folder
# are removed on exit, whatever happens.
#
#   --once       exit after the requests (smoke test; also DEMO_ONCE=1): exit
#                0 only if every request succeeded, each side logged its
#                mutual_tls access lines and both zrings exited 0
#   --no-setup   skip scripts/setup.sh (also DEMO_SKIP_SETUP=1)
#   -h, --help   this text
# Environment: DEMO_BUILD_DIR (default build), ZRING_LOG_FORMAT=json, ...
# (every zring option has a ZRING_* variable; see zring --help).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${DEMO_BUILD_DIR:-$root/build}"
once="${DEMO_ONCE:-0}"
skip_setup="${DEMO_SKIP_SETUP:-0}"
config="$root/examples/demo/workloads.json"

readonly NS_C=zring-demo-client NS_S=zring-demo-server
readonly C4=10.99.0.1 S4=10.99.0.2 C6=fd00:99::1 S6=fd00:99::2
readonly VIP=10.96.0.10 VIP_NET=10.96.0.0/16 VIP_PORT=80 SERVER_PORT=8080
readonly MESH_NS=demo TD=cluster.local
readonly ID_C="spiffe://$TD/ns/$MESH_NS/sa/client" ID_S="spiffe://$TD/ns/$MESH_NS/sa/server"
PY=/usr/bin/python3

work=""          # temporary folder: certificates, web root, logs
pids=()          # processes we started
zring_a=""       # zring in the client pod
zring_b=""       # zring in the server pod

# Bold headings and coloured log prefixes on a terminal, plain text in a log.
if [ -t 2 ]; then
  bold=$'\033[1m' plain=$'\033[0m' cyan=$'\033[36m' magenta=$'\033[35m'
else
  bold="" plain="" cyan="" magenta=""
fi
say() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain" >&2; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --once) once=1 ;;
      --no-setup) skip_setup=1 ;;
      -h|--help) usage; exit 0 ;;
      *) printf 'demo: unknown argument %s (try --help)\n' "$1" >&2; exit 2 ;;
    esac
    shift
  done
}

# Network namespaces and iptables need root; come back through sudo if we can.
need_root() {
  [ "$(id -u)" -eq 0 ] && return 0
  command -v sudo >/dev/null || die "needs root (network namespaces, iptables)"
  exec sudo --preserve-env=DEMO_ONCE,DEMO_SKIP_SETUP,DEMO_BUILD_DIR,ZRING_LOG_FORMAT,ZRING_LOG_LEVEL \
    "$0" "$@"
}

build_zring() {
  if [ "$skip_setup" != 1 ]; then
    say "scripts/setup.sh: packages and the AES-NI wolfSSL (slow only the first time)"
    "$root/scripts/setup.sh"
  fi
  say "building zring in $build"
  [ -f "$build/build.ninja" ] || meson setup "$build" "$root" >/dev/null
  meson compile -C "$build" >/dev/null
  [ -x "$build/zring" ] || die "no zring binary in $build"
  command -v openssl >/dev/null || die "needs the openssl command (scripts/setup.sh installs it)"
  "$build/zring" check -q "$config" || die "$config is not a valid config"
}

# ---------------------------------------------------------------- topology

# Remove the demo namespaces and everything running in them (also left-overs
# of an earlier run that was killed too hard to clean up).
remove_topology() {
  local ns pid
  for ns in "$NS_C" "$NS_S"; do
    ip netns list | grep -qw "^$ns" || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
}

make_topology() {
  remove_topology
  ip netns add "$NS_C"
  ip netns add "$NS_S"
  ip -n "$NS_C" link set lo up
  ip -n "$NS_S" link set lo up
  ip link add eth0 netns "$NS_C" type veth peer name eth0 netns "$NS_S"
  ip -n "$NS_C" addr add "$C4/24" dev eth0
  ip -n "$NS_S" addr add "$S4/24" dev eth0
  ip -n "$NS_C" addr add "$C6/64" dev eth0 nodad
  ip -n "$NS_S" addr add "$S6/64" dev eth0 nodad
  ip -n "$NS_C" link set eth0 up
  ip -n "$NS_S" link set eth0 up
  # Service VIPs are nobody's address; like kube-proxy-less pods, the client
  # pod only needs a route so that connect() reaches OUTPUT, where the
  # capture rule hands it to zring.
  ip -n "$NS_C" route add "$VIP_NET" via "$S4"
}

# alive PID: running (not gone, not a zombie waiting to be reaped).
alive() {
  local st
  st="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ "$st" != Z* ]]
}

# reap PID TIMEOUT_S: wait for an already signalled PID to go, SIGKILL it
# after TIMEOUT_S.
reap() {
  local deadline=$((SECONDS + $2))
  while alive "$1"; do
    if [ "$SECONDS" -ge "$deadline" ]; then kill -KILL "$1" 2>/dev/null; break; fi
    sleep 0.1
  done
}

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  set +e
  for pid in "${pids[@]}"; do alive "$pid" && kill -TERM "$pid" 2>/dev/null; done
  # One SIGTERM only: a second one would make zring skip its drain.
  for pid in "${pids[@]}"; do reap "$pid" 8; done
  remove_topology
  [ -n "$work" ] && rm -rf "$work"
  [ "$once" = 1 ] || printf 'demo: stopped, topology removed\n' >&2
  exit "$rc"
}

wait_for() {  # wait_for TIMEOUT_S CMD...
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

listening() { ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q .; }

# count_lines LOG KEY=VALUE...: lines of a zring log that have every field,
# in text (logfmt) or JSON format.
count_lines() {
  local log="$1"
  shift
  awk -v want="$*" '
    BEGIN { n = split(want, w, " ") }
    {
      ok = 1
      for (i = 1; i <= n; i++) {
        eq = index(w[i], "=")
        k = substr(w[i], 1, eq - 1); v = substr(w[i], eq + 1)
        if (index(" " $0 " ", " " w[i] " ") == 0 && index($0, "\"" k "\":\"" v "\"") == 0) { ok = 0; break }
      }
      c += ok
    }
    END { print c + 0 }' "$log"
}
has_line() { [ "$(count_lines "$@")" -gt 0 ]; }

# ---------------------------------------------------------------- pods

# A test CA, then one directory per pod holding the trust bundle and that
# pod's own workload certificate only, as a sidecar would get it.
make_certs() {
  local pod sa
  say "certificates: a test CA and one workload certificate per pod (scripts/certs.sh, in $work/certs)"
  "$root/scripts/certs.sh" ca "$work/certs/ca" 2>>"$work/certs.log" ||
    die "certs.sh ca failed: $(tail -n3 "$work/certs.log")"
  for pod in client server; do
    sa="$pod"
    "$root/scripts/certs.sh" workload "$work/certs/$pod-pod" --ca "$work/certs/ca" \
      --ns "$MESH_NS" --sa "$sa" >/dev/null 2>>"$work/certs.log" ||
      die "certs.sh workload failed: $(tail -n3 "$work/certs.log")"
    cp "$work/certs/ca/root-cert.pem" "$work/certs/$pod-pod/root-cert.pem"
    printf '  %s pod: %s\n' "$pod" "spiffe://$TD/ns/$MESH_NS/sa/$sa" >&2
  done
}

# The server pod's application: python's http.server with one index page.
web_server() {
  local dir="$work/www"
  mkdir -p "$dir"
  printf 'hello from the server pod\n' >"$dir/index.html"
  # --bind :: listens on IPv4 and IPv6 (Python's dual-stack server).
  ip netns exec "$NS_S" "$PY" -m http.server "$SERVER_PORT" --bind :: --directory "$dir" \
    >"$work/http.log" 2>&1 &
  pids+=($!)
  wait_for 10 listening "$NS_S" "$SERVER_PORT" || die "the server pod's web server did not start"
}

# start_zring NS LABEL COLOUR CERTS LOG: zring in pod NS; sets started_pid.
# Its log goes to LOG and, each line prefixed with [LABEL zring], to the
# terminal. zring runs in a session of its own (setsid) so that Ctrl-C
# reaches only this script, which then stops each zring with exactly one
# SIGTERM; the log pipeline ignores Ctrl-C so that zring's last lines
# (msg=draining, msg=exit) still show.
ready_or_gone() { has_line "$1" msg=ready || ! alive "$2"; }

start_zring() {
  local ns="$1" label="$2" colour="$3" certs="$4" log="$5"
  : >"$log"
  ip netns exec "$ns" setsid "$build/zring" --config "$config" --certs "$certs" \
    2> >(trap '' INT; tee -a "$log" | sed -u "s/^/${colour}[$label zring]$plain /" >&2) &
  started_pid=$!
  pids+=("$started_pid")
  wait_for 10 ready_or_gone "$log" "$started_pid" || true
  if ! alive "$started_pid" || ! has_line "$log" msg=ready; then
    die "zring in $ns did not become ready"
  fi
}

start_pods() {
  say "server pod: zring-iptables.sh install, then zring B (--config examples/demo/workloads.json --certs server-pod)"
  ip netns exec "$NS_S" "$root/deploy/iptables/zring-iptables.sh" install
  start_zring "$NS_S" server-pod "$magenta" "$work/certs/server-pod" "$work/zring-b.log"
  zring_b=$started_pid
  wait_for 10 listening "$NS_S" 15008 || die "zring B is not listening on :15008"

  say "client pod: zring-iptables.sh install, then zring A (--config examples/demo/workloads.json --certs client-pod)"
  ip netns exec "$NS_C" "$root/deploy/iptables/zring-iptables.sh" install
  start_zring "$NS_C" client-pod "$cyan" "$work/certs/client-pod" "$work/zring-a.log"
  zring_a=$started_pid
}

# ---------------------------------------------------------------- requests

# http_get URL: from the client pod, curl if present, else Python; prints the body.
http_get() {
  if command -v curl >/dev/null; then
    ip netns exec "$NS_C" curl -sS -g --max-time 5 "$1"
  else
    ip netns exec "$NS_C" "$PY" -c \
      'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode(), end="")' "$1"
  fi
}

# The access lines each side must log for a request that went through the
# tunnel: A (outbound) knows whom it reached, B (inbound HBONE) who came.
a_ok() { count_lines "$work/zring-a.log" msg=access dir=outbound security=mutual_tls "dst_identity=$ID_S" error=-; }
b_ok() { count_lines "$work/zring-b.log" msg=access dir=hbone security=mutual_tls "src_identity=$ID_C" error=-; }
at_least() { [ "$("$2")" -ge "$1" ]; }

requests() {
  local n=0 failed=0 spec url what
  for spec in \
      "http://$S4:$SERVER_PORT/|server pod IP (IPv4)" \
      "http://$S4:$SERVER_PORT/|server pod IP again (the pooled tunnel is reused)" \
      "http://[$S6]:$SERVER_PORT/|server pod IP (IPv6)" \
      "http://$VIP:$VIP_PORT/|service web.demo VIP (port $VIP_PORT -> $SERVER_PORT on the server pod)"; do
    IFS='|' read -r url what <<<"$spec"
    say "client pod -> $what: GET $url"
    n=$((n + 1))
    http_get "$url" || { failed=$((failed + 1)); echo "demo: request failed" >&2; }
    # Let both access lines land under their request.
    wait_for 2 at_least "$n" a_ok || true
    wait_for 2 at_least "$n" b_ok || true
    sleep 0.1   # ... and get through the prefixing pipelines
  done
  if ! at_least "$n" a_ok; then
    echo "demo: zring A logged $(a_ok) of $n access lines with security=mutual_tls dst_identity=$ID_S error=-" >&2
    failed=$((failed + 1))
  fi
  if ! at_least "$n" b_ok; then
    echo "demo: zring B logged $(b_ok) of $n access lines with dir=hbone src_identity=$ID_C error=-" >&2
    failed=$((failed + 1))
  fi
  return "$failed"
}

# show_telemetry: what the client pod's zring reports on its own endpoints:
# readiness (15021) and the Istio TCP metrics (15020). Nonzero if either is
# missing.
show_telemetry() {
  local m ready
  say "client pod zring: GET :15021/healthz/ready and :15020/metrics (istio_tcp_connections_opened_total)"
  ready="$(ip netns exec "$NS_C" curl -s --max-time 3 http://127.0.0.1:15021/healthz/ready || true)"
  printf '%s\n' "${ready:-no answer}" >&2
  m="$(ip netns exec "$NS_C" curl -s --max-time 3 http://127.0.0.1:15020/metrics |
    grep '^istio_tcp_connections_opened_total' || true)"
  printf '%s\n' "${m:-no istio_tcp_connections_opened_total series}" >&2
  [ "$ready" = ready ] && [ -n "$m" ]
}

# stop_zrings: one SIGTERM each (they drain and exit); returns nonzero if
# either did not exit 0.
stop_zrings() {
  local rc=0 pid name st n=0
  for pid in "$zring_a" "$zring_b"; do [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true; done
  for name in A B; do
    if [ "$name" = A ]; then pid="$zring_a"; else pid="$zring_b"; fi
    [ -n "$pid" ] || continue
    n=$((n + 1))
    # The drain lasts at most --drain-timeout (5 s by default).
    reap "$pid" 20
    st=0
    wait "$pid" 2>/dev/null || st=$?
    if [ "$st" -ne 0 ]; then echo "demo: zring $name exited $st" >&2; rc=1; fi
  done
  zring_a="" zring_b=""
  sleep 0.2   # the log pipelines print the last lines
  if [ "$rc" -eq 0 ] && [ "$n" -gt 0 ]; then
    if [ "$n" -eq 2 ]; then echo "demo: both zrings exited 0" >&2; else echo "demo: zring exited 0" >&2; fi
  fi
  return "$rc"
}

# Ctrl-C is how the demo is meant to end: stop both zrings gracefully.
on_interrupt() {
  trap '' INT   # the drain is short; a second Ctrl-C would only leave debris
  echo >&2
  if [ -n "$zring_a" ] && [ -n "$zring_b" ]; then
    say "Ctrl-C: SIGTERM to both zrings (they drain and exit)"
  elif [ -n "$zring_a$zring_b" ]; then
    say "Ctrl-C: SIGTERM to zring (it drains and exits)"
  fi
  if stop_zrings; then exit 0; else exit 1; fi
}

main() {
  parse_args "$@"
  need_root "$@"
  build_zring
  work="$(mktemp -d /tmp/zring-demo.XXXXXX)"
  trap cleanup EXIT
  trap 'exit 130' TERM
  trap on_interrupt INT

  say "topology: $NS_C ($C4, $C6) <-veth-> $NS_S ($S4, $S6)"
  make_topology
  make_certs
  web_server
  start_pods

  local rc=0
  requests || rc=$?
  show_telemetry || rc=1
  if [ "$once" = 1 ]; then
    say "done (--once): SIGTERM to both zrings"
    stop_zrings || rc=1
    if [ "$rc" -eq 0 ]; then
      say "demo OK: $(a_ok) requests through the mTLS tunnel ($ID_C -> $ID_S)"
    else
      say "demo FAILED"
    fi
    [ "$rc" -eq 0 ] || return 1
    return 0
  fi
  [ "$rc" -eq 0 ] || say "some requests failed (see above); zring keeps running anyway"
  say "both zrings keep running; try it yourself in another terminal, e.g.
    ip netns exec $NS_C curl http://$S4:$SERVER_PORT/
    ip netns exec $NS_C curl http://$VIP/
    ip netns exec $NS_C curl http://127.0.0.1:15020/metrics
    ip netns exec $NS_C curl http://127.0.0.1:15000/config_dump
  Press Ctrl-C to stop them and remove the topology."
  local st=0
  wait -n "$zring_a" "$zring_b" || st=$?
  die "a zring exited on its own (status $st)"
}

main "$@"
