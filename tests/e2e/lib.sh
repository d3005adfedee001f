# shellcheck shell=bash
# tests/e2e/lib.sh — what every e2e scenario shares. Source it, then:
#
#   e2e_begin NAME        checks privileges, sets the trap that always cleans up
#   e2e_topology          client and server "pods": two netns joined by a veth
#   install_capture ...   zring-iptables.sh install in the client netns
#   start_server NS PORT ADDR...   the ZR1 test server (tests/tools/zr_server.py)
#   start_zring ARGS...   zring in the client netns, waits for msg=ready
#   client NS ARGS...     tests/tools/zr_client.py in netns NS
#   pass MSG / fail MSG / skip MSG
#
# Topology (per scenario, names unique per process so runs never collide):
#
#   netns zr-NAME-PID-c  (client pod)         netns zr-NAME-PID-s  (server pod)
#     zc0 10.77.0.1/24 fd00:77::1/64  <-veth->  zs0 10.77.0.2/24 fd00:77::2/64
#     iptables capture + zring                  test servers
#
# Exit codes follow meson: 0 pass, 1 fail, 77 skip. Missing privileges skip,
# except under CI=true where they fail: CI must never go green by skipping.
#
# Environment: ZRING_BIN (default build/zring), ZRING_SRCDIR, ZRING_PYTHON
# (default /usr/bin/python3), ZRING_E2E_KEEP=1 keeps the logs folder,
# ZRING_E2E_PUMPS ("splice copy") and ZRING_E2E_SEED narrow or replay runs.
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRCDIR="${ZRING_SRCDIR:-$(cd "$E2E_DIR/../.." && pwd)}"
ZRING_BIN="${ZRING_BIN:-$SRCDIR/build/zring}"
# Debian's interpreter: the tools need nothing beyond the standard library.
PY="${ZRING_PYTHON:-/usr/bin/python3}"
TOOLS="$SRCDIR/tests/tools"
IPTABLES_SCRIPT="$SRCDIR/deploy/iptables/zring-iptables.sh"

readonly C4=10.77.0.1 S4=10.77.0.2 C6=fd00:77::1 S6=fd00:77::2

# Hermetic runs: zring and zring-iptables.sh read their options from ZRING_*
# variables, and a stray ZRING_LOG_FORMAT=json or ZRING_MARK in the caller's
# environment would change what the scenarios check. Each scenario passes the
# options it means explicitly.
while IFS= read -r var; do
  case "$var" in
    ZRING_BIN|ZRING_SRCDIR|ZRING_PYTHON|ZRING_E2E_*) ;;
    ZRING_*) unset "$var" ;;
  esac
done < <(compgen -e)

E2E_NAME=""
E2E_TMP=""
NS_C="" NS_S=""
E2E_NETNS=()   # namespaces we created, deleted on exit
E2E_PIDS=()    # processes we started, killed on exit
ZPID=""        # the running zring
ZLOG=""        # its log (stderr)
E2E_ZRING_RUNS=0

log() { printf '[e2e %s] %s\n' "$E2E_NAME" "$*" >&2; }

# A scenario passes only if zring, asked to stop at the end, exits 0 and no
# sanitizer (ASan/UBSan/LSan builds) reported anything in any of its logs.
pass() {
  if [ -n "$ZPID" ] && proc_alive "$ZPID"; then
    stop_zring
  fi
  local f
  for f in "$E2E_TMP"/zring-*.log; do
    [ -e "$f" ] || continue
    if grep -qE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$f"; then
      fail "sanitizer report in ${f##*/}"
    fi
  done
  log "PASS: $*"
  exit 0
}

fail() {
  log "FAIL: $*"
  e2e_dump_logs
  exit 1
}

# Missing privileges or kernel features: skip locally, fail under CI.
skip() {
  if [ "${CI:-}" = true ]; then
    fail "cannot run here ($*), and CI=true forbids skipping"
  fi
  log "SKIP: $*"
  exit 77
}

e2e_dump_logs() {
  local f
  [ -n "$E2E_TMP" ] && [ -d "$E2E_TMP" ] || return 0
  for f in "$E2E_TMP"/*.log; do
    [ -e "$f" ] || continue
    echo "----- ${f##*/} (last 40 lines) -----" >&2
    tail -n 40 "$f" >&2
  done
}

# ---------------------------------------------------------------- lifecycle

e2e_begin() {
  E2E_NAME="$1"
  [ "$(id -u)" -eq 0 ] || skip "not root"
  local tool
  for tool in ip iptables ip6tables "$PY"; do
    command -v "$tool" >/dev/null || skip "$tool not found"
  done
  E2E_TMP="$(mktemp -d "/tmp/zr-e2e-$E2E_NAME.XXXXXX")"
  NS_C="zr-$E2E_NAME-$$-c"
  NS_S="zr-$E2E_NAME-$$-s"
  trap e2e_cleanup EXIT
  # Turn signals into a normal exit so that the EXIT trap cleans up.
  trap 'exit 130' INT TERM HUP
  log "client netns $NS_C, server netns $NS_S, logs in $E2E_TMP"
}

# Kill what we started, delete the namespaces (which takes their veth and
# iptables rules with them), remove the temporary folder.
e2e_cleanup() {
  local rc=$? pid ns
  trap - EXIT
  set +e
  for pid in "${E2E_PIDS[@]}"; do
    proc_alive "$pid" && kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${E2E_PIDS[@]}"; do
    wait_gone "$pid" 20 || kill -KILL "$pid" 2>/dev/null
  done
  for ns in "${E2E_NETNS[@]}"; do
    # Anything still running inside (children of our processes) goes too.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill -KILL "$pid" 2>/dev/null
    done
    ip netns del "$ns" 2>/dev/null
  done
  if [ "${ZRING_E2E_KEEP:-0}" = 1 ]; then
    log "kept $E2E_TMP"
  elif [ -n "$E2E_TMP" ]; then
    rm -rf "$E2E_TMP"
  fi
  exit "$rc"
}

# Track a background process so that cleanup kills it.
track() { E2E_PIDS+=("$1"); }

# True while PID runs (a zombie counts as gone: it has exited).
proc_alive() {
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# wait_gone PID TENTHS: wait up to TENTHS/10 s for PID to exit.
wait_gone() {
  local pid="$1" n="$2"
  while proc_alive "$pid"; do
    (( n-- > 0 )) || return 1
    sleep 0.1
  done
}

# wait_until TIMEOUT_S CMD...: poll CMD every 0.1 s until it succeeds.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# Seconds since the epoch with milliseconds, for measuring promptness.
now() { date +%s.%N; }
elapsed_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# float_le A B: A <= B
float_le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

# ---------------------------------------------------------------- topology

ns_c() { ip netns exec "$NS_C" "$@"; }
ns_s() { ip netns exec "$NS_S" "$@"; }

new_netns() {
  ip netns add "$1" 2>/dev/null || skip "cannot create network namespaces (ip netns add $1)"
  E2E_NETNS+=("$1")
  ip -n "$1" link set lo up
}

e2e_topology() {
  new_netns "$NS_C"
  new_netns "$NS_S"
  # Created straight inside the namespaces: no name can clash in the host's.
  ip link add zc0 netns "$NS_C" type veth peer name zs0 netns "$NS_S" ||
    skip "cannot create a veth pair"
  ip -n "$NS_C" addr add "$C4/24" dev zc0
  ip -n "$NS_S" addr add "$S4/24" dev zs0
  # nodad: usable at once, no duplicate address detection delay.
  ip -n "$NS_C" addr add "$C6/64" dev zc0 nodad
  ip -n "$NS_S" addr add "$S6/64" dev zs0 nodad
  ip -n "$NS_C" link set zc0 up
  ip -n "$NS_S" link set zs0 up
  ns_c iptables -w 10 -t nat -S >/dev/null 2>&1 || skip "iptables nat table unusable in a netns"
  ns_c ip6tables -w 10 -t nat -S >/dev/null 2>&1 || skip "ip6tables nat table unusable in a netns"
  # veth carrier comes up asynchronously; traffic before that is lost.
  wait_until 5 link_up "$NS_C" zc0 || fail "veth zc0 did not come up"
  wait_until 5 link_up "$NS_S" zs0 || fail "veth zs0 did not come up"
}

link_up() { ip -n "$1" -o link show "$2" | grep -q 'state UP'; }

# Install the capture rules in the client pod. Arguments go to the script.
install_capture() {
  ns_c bash "$IPTABLES_SCRIPT" install "$@" 2>"$E2E_TMP/iptables-install.out" ||
    fail "zring-iptables.sh install failed: $(cat "$E2E_TMP/iptables-install.out")"
}

# ---------------------------------------------------------------- processes

# start_server NS PORT ADDR...: the ZR1 server, listening on PORT at each ADDR.
start_server() {
  local ns="$1" port="$2" out="$E2E_TMP/server-$2.out" args=() a
  shift 2
  for a in "$@"; do args+=(--listen "$a"); done
  ip netns exec "$ns" "$PY" "$TOOLS/zr_server.py" --port "$port" "${args[@]}" \
    >"$out" 2>"$E2E_TMP/server-$port.log" &
  local pid=$!
  track "$pid"
  wait_until 10 grep -qs READY "$out" || fail "test server on port $port did not start"
}

# Connections the server on PORT has finished (one stderr line each).
server_conns() { grep -c '^conn ' "$E2E_TMP/server-$1.log" || true; }

need_zring() {
  [ -x "$ZRING_BIN" ] || fail "zring binary not found: ZRING_BIN=$ZRING_BIN (build it, or set ZRING_BIN)"
}

# start_zring ARGS...: a fresh zring in the client pod; sets ZPID and ZLOG.
start_zring() {
  need_zring
  E2E_ZRING_RUNS=$((E2E_ZRING_RUNS + 1))
  ZLOG="$E2E_TMP/zring-$E2E_ZRING_RUNS.log"
  : >"$ZLOG"
  ip netns exec "$NS_C" "$ZRING_BIN" "$@" >>"$ZLOG" 2>&1 &
  ZPID=$!
  track "$ZPID"
  if ! wait_until 10 zring_ready; then
    proc_alive "$ZPID" || fail "zring exited at startup (args: $*)"
    fail "zring did not log msg=ready within 10 s (args: $*)"
  fi
}

zring_ready() {
  proc_alive "$ZPID" || return 0   # died: let the caller find out
  grep -q 'msg=ready' "$ZLOG"
}

# stop_zring: SIGTERM the running zring; it must exit 0 within 10 s.
stop_zring() {
  kill -TERM "$ZPID"
  zring_wait_exit 10
  [ "$ZRING_RC" -eq 0 ] || fail "zring exited $ZRING_RC on SIGTERM, want 0"
}

# zring_wait_exit TIMEOUT_S: wait for the running zring to exit and set
# ZRING_RC to its exit code; fails the scenario if it is still running then.
zring_wait_exit() {
  wait_gone "$ZPID" $(($1 * 10)) || fail "zring still running $1 s after it was asked to stop"
  ZRING_RC=0
  wait "$ZPID" || ZRING_RC=$?
}

# client NS ARGS...: run the ZR1 client in NS; its result line goes to stdout.
client() {
  local ns="$1"
  shift
  ip netns exec "$ns" "$PY" "$TOOLS/zr_client.py" "$@"
}

# client_ok NS ARGS...: run the client, fail the scenario unless it succeeds.
client_ok() {
  local out
  out="$(client "$@")" || fail "client $* failed: $out"
  log "ok: ${out%%$'\n'*}"
}

# ---------------------------------------------------------------- zring's log

access_count() { grep -c 'msg=access' "$ZLOG" || true; }

# at_least N CMD...: true when CMD's output (a number) is >= N. For wait_until,
# which must re-run CMD on every poll: `wait_until 5 test "$(cmd)" -ge N`
# would expand $(cmd) once, before the first poll.
at_least() {
  local n="$1" v
  shift
  v="$("$@")"
  [ "${v:-0}" -ge "$n" ]
}

# wait_access N [TIMEOUT_S]: wait until zring has logged at least N access lines.
wait_access() {
  local n="$1" t="${2:-10}"
  wait_until "$t" at_least "$n" access_count ||
    fail "expected $n access lines in zring's log, found $(access_count)"
}

# access_field LINE KEY: the value of KEY= in a logfmt line (quotes kept).
access_field() {
  sed -n "s/.* $2=\(\"[^\"]*\"\|[^ ]*\).*/\1/p" <<<" $1"
}

# The access lines whose dst= is ADDR (e.g. 10.77.0.2:8080 or [fd00:77::2]:8080).
access_to() {
  grep 'msg=access' "$ZLOG" | sed 's/$/ /' | grep -F " dst=$1 " | sed 's/ $//' || true
}

# Packet count of the first rule in TABLE CHAIN whose listing matches PATTERN.
rule_packets() {
  local ipt="$1" chain="$2" pattern="$3"
  ns_c "$ipt" -w 10 -t nat -L "$chain" -n -v -x | awk -v p="$pattern" 'index($0, p) { print $1; exit }'
}

# ---------------------------------------------------------------- descriptor limits

# start_zring_nofile N ARGS...: start_zring with RLIMIT_NOFILE N, soft and
# hard (so zring cannot raise it), set by prlimit(1) before zring starts.
# prlimit and the small wrapper both exec, so ZPID is zring itself.
start_zring_nofile() {
  local n="$1" real="$ZRING_BIN" wrapper="$E2E_TMP/zring-nofile-$1"
  shift
  need_zring
  command -v prlimit >/dev/null || skip "prlimit not found"
  printf '#!/bin/sh\nexec prlimit --nofile=%s:%s "%s" "$@"\n' "$n" "$n" "$real" >"$wrapper"
  chmod +x "$wrapper"
  ZRING_BIN="$wrapper"
  start_zring "$@"
  ZRING_BIN="$real"
  grep -Eq "^Max open files +$n +$n " "/proc/$ZPID/limits" ||
    fail "zring does not run with RLIMIT_NOFILE $n: $(grep 'open files' "/proc/$ZPID/limits")"
}

# CPU time (user + system, all threads) the running zring has used, in clock ticks.
zring_cpu_ticks() {
  sed 's/.*) //' "/proc/$ZPID/stat" | awk '{ print $12 + $13 }'
}

# ------------------------------------------- many held connections (zr_hold.py)
#
#   start_echo PORT        zr_echo.py in the server pod, on $S4:PORT
#   hold_start NAME PORT   zr_hold.py in the client pod, driven through a FIFO
#   hold CMD...            one command; its answer line lands in ANSWER
#   hf KEY                 a value from ANSWER
#   hold_stop              quit it

start_echo() {
  ECHO_LOG="$E2E_TMP/echo-$1.log"
  ns_s "$PY" "$TOOLS/zr_echo.py" --listen "$S4" --port "$1" \
    >"$E2E_TMP/echo-$1.out" 2>"$ECHO_LOG" &
  track $!
  wait_until 10 grep -qs READY "$E2E_TMP/echo-$1.out" || fail "echo server on port $1 did not start"
}

# Connections the echo server has seen open, seen end, and has open now.
echo_opened() { grep -c '^open ' "$ECHO_LOG" || true; }
echo_closed() { grep -c '^conn ' "$ECHO_LOG" || true; }
echo_open_now() { echo $(($(echo_opened) - $(echo_closed))); }

hold_start() {
  HOLD_NAME="$1"
  HOLD_N=0
  local fifo="$E2E_TMP/$1.in"
  mkfifo "$fifo"
  ns_c "$PY" "$TOOLS/zr_hold.py" --host "$S4" --port "$2" \
    <"$fifo" >"$E2E_TMP/$1.out" 2>"$E2E_TMP/$1.log" &
  HOLD_PID=$!
  track "$HOLD_PID"
  exec {HOLD_FD}>"$fifo"
}

hold_answered() { [ "$(wc -l <"$E2E_TMP/$HOLD_NAME.out")" -ge "$HOLD_N" ]; }

hold() {
  printf '%s\n' "$*" >&"$HOLD_FD"
  HOLD_N=$((HOLD_N + 1))
  wait_until 30 hold_answered || fail "zr_hold did not answer '$*' within 30 s"
  ANSWER="$(sed -n "${HOLD_N}p" "$E2E_TMP/$HOLD_NAME.out")"
  log "hold $*: $ANSWER"
  case "$ANSWER" in *error=*) fail "zr_hold: $ANSWER" ;; esac
}

hf() { access_field "$ANSWER" "$1"; }

hold_stop() {
  hold quit
  exec {HOLD_FD}>&-
  wait_gone "$HOLD_PID" 50 || fail "zr_hold did not exit"
}

# ---------------------------------------------------------------- workload config
#
# For the scenarios of the workload config and hot reload (issue 3): the
# server pod stands in for several pods (a service's endpoints) by carrying
# more addresses, zr_who.py there tells a client which address and port it
# reached, and zr_mkconfig.py writes the workload files.

# add_server_addrs ADDR...: more IPv4 addresses (in 10.77.0.0/24) on the
# server pod's veth, each one "pod".
add_server_addrs() {
  local a
  for a in "$@"; do
    ip -n "$NS_S" addr add "$a/24" dev zs0 || fail "cannot add $a to the server pod"
  done
}

# route_vips CIDR: a route in the client pod for a range of service VIPs, so
# that connect() to a VIP gets as far as OUTPUT, where the capture redirects
# it to zring (without a route it fails with ENETUNREACH before that).
route_vips() {
  ip -n "$NS_C" route add "$1" via "$S4" || fail "cannot route $1 in the client pod"
}

# start_who NAME "PORT..." ADDR...: zr_who.py in the server pod on every
# ADDR x PORT; its log is $E2E_TMP/who-NAME.log.
start_who() {
  local name="$1" ports=() args=() p a
  for p in $2; do ports+=(--port "$p"); done
  shift 2
  for a in "$@"; do args+=(--listen "$a"); done
  ns_s "$PY" "$TOOLS/zr_who.py" "${ports[@]}" "${args[@]}" \
    >"$E2E_TMP/who-$name.out" 2>"$E2E_TMP/who-$name.log" &
  track $!
  wait_until 10 grep -qs READY "$E2E_TMP/who-$name.out" || fail "who server $name did not start"
}

# who HOST PORT N: N connections from the client pod to a zr_who.py server
# (through zring); prints the tally "ADDR:PORT=COUNT,..." (most first), or
# fails the scenario if any connection failed.
who() {
  local out
  out="$(client "$NS_C" who --host "$1" --port "$2" --conns "$3" --parallel 16 --timeout 10)" ||
    fail "who $1:$2 x$3 failed: $out"
  sed -n 's/.* dist=\([^ ]*\).*/\1/p' <<<"$out"
}

# who_count DIST ADDR:PORT: the count of ADDR:PORT in a `who` tally (0 if absent).
who_count() {
  tr ',' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }'
}

# mkconfig ARGS...: a workload config on stdout (tests/tools/zr_mkconfig.py).
mkconfig() { "$PY" "$TOOLS/zr_mkconfig.py" "$@"; }

# Update styles for a config file: replace FILE's content by SRC's.
#   in place: truncate and write the same inode (`cat new > file`)
#   rename:   write a temporary file beside it, rename it over FILE (editors,
#             kubectl cp, most config management)
cfg_write_inplace() { cat "$1" >"$2"; }
cfg_write_rename() {
  local tmp
  tmp="$(dirname "$2")/.$(basename "$2").tmp.$$"
  cp "$1" "$tmp" && mv -f "$tmp" "$2"
}

# The version of the last config zring applied (msg="config loaded"), 0 if none.
config_version() {
  local v
  v="$(grep 'msg="config loaded"' "$ZLOG" | tail -n1 | sed -n 's/.* version=\([0-9]*\).*/\1/p')"
  echo "${v:-0}"
}

# config_loads: how many configs zring has applied (msg="config loaded" lines).
config_loads() { grep -c 'msg="config loaded"' "$ZLOG" || true; }

# config_rejects: how many updates zring has rejected.
config_rejects() { grep -c 'msg="config reload rejected"' "$ZLOG" || true; }

# wait_config_version N [TIMEOUT_S]: until zring has applied version >= N.
wait_config_version() {
  wait_until "${2:-5}" at_least "$1" config_version
}

# access_lines_to ADDR: how many access lines have dst=ADDR.
access_lines_to() { access_to "$1" | grep -c . || true; }

# An in-place write is not atomic: the shell truncates the file (open with
# O_TRUNC), then `cat` starts and writes it. When that takes longer than
# zring's 100 ms debounce (a loaded machine), zring reads an empty or cut
# file, rejects it (keeping the old config) and applies the whole file on the
# writer's next events. These are the errors such a read gives.
readonly CONFIG_PARTIAL_WRITE_ERRORS='error="(empty document|unexpected end of input)'

# config_partial_errors / config_other_errors: msg="config error" lines that
# are / are not explained by reading a file while it was being written.
config_partial_errors() { grep 'msg="config error"' "$ZLOG" | grep -cE "$CONFIG_PARTIAL_WRITE_ERRORS" || true; }
config_other_errors() { grep 'msg="config error"' "$ZLOG" | grep -vcE "$CONFIG_PARTIAL_WRITE_ERRORS" || true; }

# ---------------------------------------------------------------- HBONE (issue 4)
#
# Two "nodes", each a pod with its own zring, as sidecars: zring A in the
# client pod (outbound capture, opens tunnels), zring B in the server pod
# (inbound HBONE on :15008); both pods get the capture rules (15008 is exempt
# from the inbound redirect). Certificates come from scripts/certs.sh.
#
#   hbone_topology                the two pods, capture rules in both
#   certs_sh ARGS...              scripts/certs.sh, its chatter to certs.log
#   hbone_certs DIR [SA...]       a CA in DIR and identities default/SA
#                                 (default: client server)
#   hbone_config FILE [CLIENT_SA [SERVER_SA]]   the two-workload config:
#                                 client 10.77.0.1, server 10.77.0.2, HBONE
#   zr_start NAME NS ARGS...      a zring called NAME in netns NS; its log is
#                                 $E2E_TMP/zring-NAME.log; waits for msg=ready
#   zr_stop NAME                  SIGTERM; it must exit 0 within 10 s
#   zr_stop_all                   zr_stop every zring still running
#   zr_log NAME / zr_pid NAME     its log file / its PID
#   zr_access NAME                its access lines
#   zr_count NAME PATTERN         lines of its log matching PATTERN (grep -E)
#   hbone_pass MSG                zr_stop_all, then pass
#   h2client NS ARGS...           tests/tools/zr_h2client.py in NS

declare -A ZR_PID=() ZR_LOGF=()
CERTS_SH="$SRCDIR/scripts/certs.sh"
# shellcheck disable=SC2034  # used by the scenarios
readonly ID_CLIENT="spiffe://cluster.local/ns/default/sa/client"
# shellcheck disable=SC2034  # used by the scenarios
readonly ID_SERVER="spiffe://cluster.local/ns/default/sa/server"

install_capture_in() {
  local ns="$1"
  shift
  ip netns exec "$ns" bash "$IPTABLES_SCRIPT" install "$@" 2>"$E2E_TMP/iptables-install-$ns.out" ||
    fail "zring-iptables.sh install in $ns failed: $(cat "$E2E_TMP/iptables-install-$ns.out")"
}

hbone_topology() {
  command -v openssl >/dev/null || skip "openssl not found"
  e2e_topology
  install_capture_in "$NS_C"
  install_capture_in "$NS_S"
}

certs_sh() {
  bash "$CERTS_SH" "$@" 2>>"$E2E_TMP/certs.log" || fail "certs.sh $* failed: $(tail -n3 "$E2E_TMP/certs.log")"
}

hbone_certs() {
  local dir="$1" sa
  shift
  certs_sh ca "$dir" >/dev/null
  [ $# -gt 0 ] || set -- client server
  for sa in "$@"; do
    certs_sh workload "$dir" --ns default --sa "$sa" >/dev/null
  done
}

# The serial of the certificate of identity default/SA in DIR (hex, upper case).
cert_serial() {
  openssl x509 -in "$1/cluster.local/ns/default/sa/$2/cert-chain.pem" -noout -serial | sed 's/^serial=//'
}

hbone_config() {
  local file="$1" csa="${2:-client}" ssa="${3:-server}"
  cat >"$file" <<JSON
{"workloads":[
  {"uid":"c1","name":"client","namespace":"default","serviceAccount":"$csa","workloadIps":["$C4"],"protocol":"HBONE"},
  {"uid":"s1","name":"server","namespace":"default","serviceAccount":"$ssa","workloadIps":["$S4"],"protocol":"HBONE"}
],"services":[],"policies":[]}
JSON
}

zr_start() {
  local name="$1" ns="$2" log
  shift 2
  need_zring
  log="$E2E_TMP/zring-$name.log"
  : >"$log"
  ip netns exec "$ns" "$ZRING_BIN" "$@" >>"$log" 2>&1 &
  ZR_PID[$name]=$!
  ZR_LOGF[$name]="$log"
  track "${ZR_PID[$name]}"
  if ! wait_until 10 zr_ready "$name"; then
    proc_alive "${ZR_PID[$name]}" || fail "zring $name exited at startup (args: $*)"
    fail "zring $name did not log msg=ready within 10 s (args: $*)"
  fi
  proc_alive "${ZR_PID[$name]}" || fail "zring $name exited at startup (args: $*)"
}

zr_ready() {
  proc_alive "${ZR_PID[$1]}" || return 0
  grep -q 'msg=ready' "${ZR_LOGF[$1]}"
}

zr_log() { echo "${ZR_LOGF[$1]}"; }
zr_pid() { echo "${ZR_PID[$1]}"; }
zr_access() { grep 'msg=access' "${ZR_LOGF[$1]}" || true; }
zr_count() { grep -cE "$2" "${ZR_LOGF[$1]}" || true; }

# zr_wait_exit NAME TIMEOUT_S: wait for zring NAME to exit; sets ZRING_RC.
zr_wait_exit() {
  local pid="${ZR_PID[$1]}"
  wait_gone "$pid" $(($2 * 10)) || fail "zring $1 still running $2 s after it was asked to stop"
  ZRING_RC=0
  wait "$pid" || ZRING_RC=$?
}

zr_stop() {
  local pid="${ZR_PID[$1]}"
  proc_alive "$pid" || fail "zring $1 is not running (it died earlier?)"
  kill -TERM "$pid"
  zr_wait_exit "$1" 10
  [ "$ZRING_RC" -eq 0 ] || fail "zring $1 exited $ZRING_RC on SIGTERM, want 0"
  unset "ZR_PID[$1]"
}

zr_stop_all() {
  local name
  for name in "${!ZR_PID[@]}"; do zr_stop "$name"; done
}

hbone_pass() {
  zr_stop_all
  soft_check
  pass "$@"
}

h2client() {
  local ns="$1"
  shift
  ip netns exec "$ns" "$PY" "$TOOLS/zr_h2client.py" "$@"
}

# Checks that should not hide the ones after them: soft_fail records a
# failure and the scenario goes on; soft_check (call it before pass) fails
# the scenario with every recorded one.
E2E_SOFT=()
soft_fail() {
  log "FAILED (continuing): $*"
  E2E_SOFT+=("$*")
}
soft_check() {
  [ "${#E2E_SOFT[@]}" -eq 0 ] && return 0
  local f msg="${#E2E_SOFT[@]} check(s) failed:"
  for f in "${E2E_SOFT[@]}"; do msg+=$'\n'"  - $f"; done
  fail "$msg"
}

# ---------------------------------------------------------------- HTTP endpoints (issue 5)
#
# zring's admin (127.0.0.1:15000), readiness ([::]:15021) and metrics
# ([::]:15020) endpoints, reached from the client pod unless NS is given.
#
#   http_status [--ns NS] URL [CURL ARGS...]   the status code (000: no answer)
#   http_body [--ns NS] URL [CURL ARGS...]     the body (fails the scenario on
#                                              no answer)
#   ready_status [NS HOST]                     status of GET /healthz/ready
#   ready_is CODE [NS HOST]                    true when it is CODE (for wait_until)
#   zhttp NS ARGS...                           tests/tools/zr_http.py in NS

# Strip an optional "--ns NS" into HTTP_NS.
_http_ns() { HTTP_NS="$NS_C"; if [ "${1:-}" = --ns ]; then HTTP_NS="$2"; return 2; fi; return 0; }

http_status() {
  local shift_n=0
  _http_ns "$@" || shift_n=$?
  shift "$shift_n"
  ip netns exec "$HTTP_NS" curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true
}

http_body() {
  local shift_n=0 out
  _http_ns "$@" || shift_n=$?
  shift "$shift_n"
  out="$(ip netns exec "$HTTP_NS" curl -sS --max-time 5 "$@" 2>&1)" || fail "curl $* failed: $out"
  printf '%s\n' "$out"
}

ready_status() {
  local ns="${1:-$NS_C}" host="${2:-127.0.0.1}"
  case "$host" in *:*) host="[$host]" ;; esac
  http_status --ns "$ns" "http://$host:15021/healthz/ready"
}

ready_is() {
  local want="$1"
  shift
  [ "$(ready_status "$@")" = "$want" ]
}

zhttp() {
  local ns="$1"
  shift
  ip netns exec "$ns" "$PY" "$TOOLS/zr_http.py" "$@"
}
