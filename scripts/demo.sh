#!/usr/bin/env bash
# zring quick start: build zring and watch it proxy real connections between
# two "pods" (network namespaces) on this machine.
#
#   scripts/demo.sh [--once] [--no-setup]
#
#   netns zring-demo-client (client pod)       netns zring-demo-server (server pod)
#     10.99.0.1  fd00:99::1    <---- veth ---->  10.99.0.2  fd00:99::2
#     zring-iptables.sh + zring                  python3 -m http.server :8080
#     app: python3 -m http.server :9080
#
# It runs scripts/setup.sh, builds with meson, builds that topology, sends a
# few HTTP requests out of the client pod (outbound, through zring's 15001)
# and one into it (inbound, through 15006), and shows zring's log: one
# msg=access line per connection. Then zring keeps running in the foreground
# until Ctrl-C; the topology is removed on exit, whatever happens.
#
#   --once       exit after the requests (smoke test; also DEMO_ONCE=1)
#   --no-setup   skip scripts/setup.sh (also DEMO_SKIP_SETUP=1)
# Environment: DEMO_BUILD_DIR (default build), ZRING_LOG_FORMAT=json, ...
# (every zring option has a ZRING_* variable; see zring --help).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${DEMO_BUILD_DIR:-$root/build}"
once="${DEMO_ONCE:-0}"
skip_setup="${DEMO_SKIP_SETUP:-0}"

readonly NS_C=zring-demo-client NS_S=zring-demo-server
readonly C4=10.99.0.1 S4=10.99.0.2 C6=fd00:99::1 S6=fd00:99::2
readonly SERVER_PORT=8080 APP_PORT=9080
PY=/usr/bin/python3

work=""          # temporary folder: web roots and logs
pids=()          # processes we started
zring_pid=""

# Bold headings on a terminal, plain text in a log.
if [ -t 2 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
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
  exec sudo --preserve-env=DEMO_ONCE,DEMO_SKIP_SETUP,DEMO_BUILD_DIR "$0" "$@"
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
}

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  set +e
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  sleep 0.3
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  remove_topology
  [ -n "$work" ] && rm -rf "$work"
  [ "$once" = 1 ] || printf 'demo: stopped, topology removed\n' >&2
  exit "$rc"
}

# web_server NS PORT TEXT: python's http.server in NS serving one index page.
web_server() {
  local ns="$1" port="$2" dir="$work/www-$2"
  mkdir -p "$dir"
  printf '%s\n' "$3" >"$dir/index.html"
  # --bind :: listens on IPv4 and IPv6 (Python's dual-stack server).
  ip netns exec "$ns" "$PY" -m http.server "$port" --bind :: --directory "$dir" \
    >"$work/http-$port.log" 2>&1 &
  pids+=($!)
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

start_zring() {
  say "client pod: zring-iptables.sh install, then zring (its log follows)"
  ip netns exec "$NS_C" "$root/deploy/iptables/zring-iptables.sh" install
  # zring's log goes to the terminal and to a file we can wait on.
  # tee ignores Ctrl-C so that zring's last lines (msg=draining) still show.
  ip netns exec "$NS_C" "$build/zring" 2> >(trap '' INT; exec tee "$work/zring.log" >&2) &
  zring_pid=$!
  pids+=("$zring_pid")
  wait_for 10 grep -qs 'msg=ready' "$work/zring.log" || die "zring did not become ready"
}

# ---------------------------------------------------------------- requests

# http_get NS URL: curl if present, else Python; prints the body.
http_get() {
  if command -v curl >/dev/null; then
    ip netns exec "$1" curl -sS -g --max-time 5 "$2"
  else
    ip netns exec "$1" "$PY" -c \
      'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode(), end="")' "$2"
  fi
}

requests() {
  local n=0 failed=0 spec ns url what
  for spec in \
      "$NS_C|http://$S4:$SERVER_PORT/|client pod -> server pod (outbound, IPv4)" \
      "$NS_C|http://$S4:$SERVER_PORT/|client pod -> server pod (outbound, IPv4, again)" \
      "$NS_C|http://[$S6]:$SERVER_PORT/|client pod -> server pod (outbound, IPv6)" \
      "$NS_S|http://$C4:$APP_PORT/|server pod -> client pod's app (inbound, IPv4)"; do
    IFS='|' read -r ns url what <<<"$spec"
    say "$what: GET $url"
    n=$((n + 1))
    http_get "$ns" "$url" || { failed=$((failed + 1)); echo "request failed" >&2; }
    sleep 0.3   # let zring's access line land under its request
  done
  wait_for 5 test "$(grep -c 'msg=access' "$work/zring.log")" -ge "$n" ||
    { echo "demo: zring logged fewer than $n access lines" >&2; failed=$((failed + 1)); }
  return "$failed"
}

# Ctrl-C is how the demo is meant to end: stop zring gracefully, exit 0.
on_interrupt() {
  trap - INT
  echo >&2
  if [ -n "$zring_pid" ]; then
    # Ctrl-C on a terminal reaches zring too (same process group); a second
    # signal would make it skip the drain, so send one only if it got none.
    sleep 0.2
    grep -qs 'msg=draining' "$work/zring.log" || kill -TERM "$zring_pid" 2>/dev/null || true
    wait "$zring_pid" 2>/dev/null || true
  fi
  exit 0
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
  web_server "$NS_S" "$SERVER_PORT" "hello from the server pod"
  web_server "$NS_C" "$APP_PORT" "hello from the client pod's app"
  wait_for 10 listening "$NS_S" "$SERVER_PORT" || die "server pod's web server did not start"
  wait_for 10 listening "$NS_C" "$APP_PORT" || die "client pod's app did not start"
  start_zring

  local rc=0
  requests || rc=$?
  if [ "$once" = 1 ]; then
    say "done (--once): stopping zring"
    kill -TERM "$zring_pid"
    wait "$zring_pid" || { echo "demo: zring exited $?" >&2; rc=1; }
    if [ "$rc" -eq 0 ]; then say "demo OK"; else say "demo FAILED"; fi
    return "$rc"
  fi
  say "zring keeps running; try it yourself in another terminal, e.g.
    sudo ip netns exec $NS_C curl http://$S4:$SERVER_PORT/
  Press Ctrl-C to stop zring and remove the topology."
  wait "$zring_pid" || true
}

main "$@"
