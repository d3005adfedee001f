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
  grep -qE 'msg=ready|"msg":"ready"' "$ZLOG"
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
# which must re-run CMD on every poll (`wait_until 5 test "$(cmd)" -ge N`
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

# access_in LOG ADDR: the access lines in LOG (a zring's log file) whose dst=
# is ADDR (e.g. 10.77.0.2:8080 or [fd00:77::2]:8080); access_lines_in: how many.
access_in() {
  grep 'msg=access' "$1" | sed 's/$/ /' | grep -F " dst=$2 " | sed 's/ $//' || true
}
access_lines_in() { access_in "$1" "$2" | grep -c . || true; }

# access_to ADDR: the same in the log of the zring start_zring started.
access_to() { access_in "$ZLOG" "$1"; }

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
access_lines_to() { access_lines_in "$ZLOG" "$1"; }

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

# hbone_config FILE [CLIENT_SA] [SERVER_SA] [POLICIES]: the client and server
# pods as HBONE workloads; POLICIES is the JSON of the policies array's items.
hbone_config() {
  local file="$1" csa="${2:-client}" ssa="${3:-server}" policies="${4:-}"
  cat >"$file" <<JSON
{"workloads":[
  {"uid":"c1","name":"client","namespace":"default","serviceAccount":"$csa","workloadIps":["$C4"],"protocol":"HBONE"},
  {"uid":"s1","name":"server","namespace":"default","serviceAccount":"$ssa","workloadIps":["$S4"],"protocol":"HBONE"}
],"services":[],"policies":[$policies]}
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
  grep -qE 'msg=ready|"msg":"ready"' "${ZR_LOGF[$1]}"
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

# ---------------------------------------------------------------- authorization (issue 5)
#
# One connection that a zring's policies allow or refuse, on any path. LOG is
# the deciding zring's log ($ZLOG after start_zring, $(zr_log NAME) after
# zr_start), FROM the netns the client runs in, ADDR the destination as the
# access line writes it (10.77.0.1:9090, [fd00:77::1]:9090), served by
# start_server. The access line checked is the one the connection adds.
#
#   policy_allowed LOG FROM ADDR [KEY=VALUE...]
#                             a checked zr_client.py transfer to ADDR; its
#                             access line has error=- and each KEY=VALUE
#                             (KEY= : the field is absent)
#   policy_refused LOG FROM ADDR POLICY [KEY=VALUE...]
#                             a zr_client.py probe to ADDR ends within 3 s
#                             without data; its access line says denied,
#                             names POLICY ("-": none), has response_flags=DENY,
#                             up_bytes=0 and each KEY=VALUE; the server never
#                             sees a connection

policy_allowed() {
  local log="$1" from="$2" addr="$3" before
  shift 3
  before="$(access_lines_in "$log" "$addr")"
  client_ok "$from" xfer --host "$(addr_host "$addr")" --port "${addr##*:}" --up 100000 --down 100000
  policy_line "$log" "$addr" "$before"
  log "allowed: $POLICY_LINE"
  policy_fields "$addr" error=- "$@"
}

policy_refused() {
  local log="$1" from="$2" addr="$3" policy="$4" port="${3##*:}" before conns err
  shift 4
  [ "$policy" != - ] || policy=""
  before="$(access_lines_in "$log" "$addr")"
  conns="$(server_conns "$port")"
  client_ok "$from" probe --host "$(addr_host "$addr")" --port "$port" --within 3 --send 100
  policy_line "$log" "$addr" "$before"
  log "refused: $POLICY_LINE"
  err="$(access_field "$POLICY_LINE" error)"
  [[ "$err" == *denied* || "$err" == *"no allow policy"* ]] ||
    fail "$addr: the access line does not say it was denied: $POLICY_LINE"
  policy_fields "$addr" policy="$policy" response_flags=DENY up_bytes=0 "$@"
  sleep 0.2
  [ "$(server_conns "$port")" = "$conns" ] || fail "$addr: the server saw a connection"
}

# The host part of ADDR, without an IPv6 address's brackets.
addr_host() {
  local h="${1%:*}"
  h="${h#[}"
  echo "${h%]}"
}

# policy_line LOG ADDR BEFORE: wait for LOG's access line to ADDR after the
# first BEFORE ones; sets POLICY_LINE to it.
policy_line() {
  wait_until 5 at_least $(($3 + 1)) access_lines_in "$1" "$2" ||
    fail "$2: no access line in ${1##*/}"
  POLICY_LINE="$(access_in "$1" "$2" | tail -n1)"
}

# policy_fields ADDR KEY=VALUE...: POLICY_LINE has each field as given.
policy_fields() {
  local addr="$1" kv got
  shift
  for kv in "$@"; do
    got="$(access_field "$POLICY_LINE" "${kv%%=*}")"
    [ "$got" = "${kv#*=}" ] || fail "$addr: ${kv%%=*} is '$got', want '${kv#*=}': $POLICY_LINE"
  done
}

# ---------------------------------------------------------------- node agent (issue 6)
#
# "Nodes" and "pods" are network namespaces. A node has a bridge (zbr) whose
# address 10.78.N.1/24 is its pods' gateway; each pod has one veth (eth0) on
# that bridge, the address 10.78.N.IDX, a default route via the node, and the
# capture rules installed inside it exactly as in sidecar mode. Nodes are
# joined by a veth pair (10.78.0.N/24) and route each other's pod subnet.
# zring runs in the node's namespace with --node-agent (zr_start NAME NODE_NS
# ...) and opens each pod's listeners inside the pod's namespace.
#
#   na_node N                 node N: netns $(na_node_ns N), bridge 10.78.N.1
#   na_link_nodes A B         a veth between nodes A and B, routes both ways
#   na_pod NAME N IDX         pod NAME on node N at 10.78.N.IDX, capture rules in
#   na_pod_ns NAME / na_pod_ip NAME / na_netns_path NAME
#                             (the netns name and path are known before na_pod)
#   na_workload NAME PROTO NODE IP [NETNS_PATH]
#                             one workload (JSON) for pod NAME: uid uid-NAME,
#                             identity default/NAME, zringNetns the pod's
#                             (or the path given)
#   na_config FILE JSON...    a config with those workloads
#   na_server NAME PORT       the ZR1 server in pod NAME on its address; its
#                             stderr (one line per connection) is na-server-NAME-PORT.log
#   na_listeners NAME PORT    how many listening sockets PORT has in pod NAME
#   na_listener_pids NAME PORT  their owners' PIDs, sorted and unique
#   na_mark_packets NAME      packets the mark-exempt OUTPUT rule counted in pod NAME
#   na_xfer_bg TAG NS ARGS... a zr_client.py xfer in the background; na_xfer_wait TAG

declare -A NA_POD_IP=()

na_node_ns() { echo "zr-$E2E_NAME-$$-n$1"; }

na_node() {
  local ns
  ns="$(na_node_ns "$1")"
  new_netns "$ns"
  ip -n "$ns" link add zbr type bridge || skip "cannot create a bridge"
  ip -n "$ns" addr add "10.78.$1.1/24" dev zbr
  ip -n "$ns" link set zbr up
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
}

na_link_nodes() {
  local a="$1" b="$2" na nb
  na="$(na_node_ns "$a")"
  nb="$(na_node_ns "$b")"
  ip link add "zn$b" netns "$na" type veth peer name "zn$a" netns "$nb" ||
    skip "cannot create a veth pair"
  ip -n "$na" addr add "10.78.0.$a/24" dev "zn$b"
  ip -n "$nb" addr add "10.78.0.$b/24" dev "zn$a"
  ip -n "$na" link set "zn$b" up
  ip -n "$nb" link set "zn$a" up
  ip -n "$na" route add "10.78.$b.0/24" via "10.78.0.$b"
  ip -n "$nb" route add "10.78.$a.0/24" via "10.78.0.$a"
  wait_until 5 link_up "$na" "zn$b" || fail "veth between nodes $a and $b did not come up"
}

na_pod() {
  local name="$1" node="$2" idx="$3" ns nodens
  ns="$(na_pod_ns "$name")"
  nodens="$(na_node_ns "$node")"
  new_netns "$ns"
  ip link add eth0 netns "$ns" type veth peer name "v$name" netns "$nodens" ||
    skip "cannot create a veth pair"
  ip -n "$nodens" link set "v$name" master zbr up
  ip -n "$ns" addr add "10.78.$node.$idx/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "10.78.$node.1"
  NA_POD_IP[$name]="10.78.$node.$idx"
  ip netns exec "$ns" iptables -w 10 -t nat -S >/dev/null 2>&1 || skip "iptables nat table unusable in a netns"
  install_capture_in "$ns"
  wait_until 5 link_up "$ns" eth0 || fail "pod $name: eth0 did not come up"
}

na_pod_ns() { echo "zr-$E2E_NAME-$$-$1"; }
na_pod_ip() { echo "${NA_POD_IP[$1]}"; }
na_netns_path() { echo "/var/run/netns/$(na_pod_ns "$1")"; }

na_workload() {
  local name="$1" proto="$2" node="$3" ip="$4" path="${5:-$(na_netns_path "$1")}"
  printf '{"uid":"uid-%s","name":"%s","namespace":"default","serviceAccount":"%s","workloadIps":["%s"],"protocol":"%s","node":"%s","zringNetns":"%s"}' \
    "$name" "$name" "$name" "$ip" "$proto" "$node" "$path"
}

na_config() {
  local file="$1" sep="" w
  shift
  {
    printf '{"workloads":[\n'
    for w in "$@"; do printf '%s  %s' "$sep" "$w"; sep=$',\n'; done
    printf '\n],"services":[],"policies":[]}\n'
  } >"$file.tmp"
  mv -f "$file.tmp" "$file"
}

na_server() {
  local name="$1" port="$2" ns out
  ns="$(na_pod_ns "$name")"
  out="$E2E_TMP/na-server-$name-$port.out"
  ip netns exec "$ns" "$PY" "$TOOLS/zr_server.py" --port "$port" --listen "$(na_pod_ip "$name")" \
    >"$out" 2>"$E2E_TMP/na-server-$name-$port.log" &
  track $!
  wait_until 10 grep -qs READY "$out" || fail "test server in pod $name did not start"
}

na_listeners() {
  ip netns exec "$(na_pod_ns "$1")" ss -Hltn "sport = :$2" | grep -c . || true
}

na_listener_pids() {
  ip netns exec "$(na_pod_ns "$1")" ss -Hltnp "sport = :$2" |
    sed -n 's/.*pid=\([0-9]*\).*/\1/p' | sort -u | tr '\n' ' ' | sed 's/ $//'
}

# na_expect_listeners NAME COUNT ZRING: pod NAME has COUNT sockets listening
# on each of 15001 and 15006 (and 15008 with HBONE), owned by zring ZRING.
na_expect_listeners() {
  local name="$1" want="$2" zr="$3" port got
  shift 3
  for port in 15001 15006 "$@"; do
    wait_until 5 na_listeners_are "$name" "$port" "$want" ||
      fail "pod $name: $(na_listeners "$name" "$port") sockets listen on :$port, want $want"
    if [ "$want" -gt 0 ]; then
      got="$(na_listener_pids "$name" "$port")"
      [ "$got" = "$(zr_pid "$zr")" ] || fail "pod $name :$port: listeners belong to PID(s) $got, want zring $zr ($(zr_pid "$zr"))"
    fi
  done
}

na_listeners_are() { [ "$(na_listeners "$1" "$2")" -eq "$3" ]; }

na_mark_packets() {
  ip netns exec "$(na_pod_ns "$1")" iptables -w 10 -t nat -L ZRING_OUTPUT -n -v -x |
    awk 'index($0, "mark match 0x539") { print $1; exit }'
}

# na_xfer_bg TAG NS ARGS...: zr_client.py xfer ARGS in NS, in the background;
# its result line goes to $E2E_TMP/xfer-TAG.out. na_xfer_wait TAG [TIMEOUT_S]
# waits for it and fails the scenario unless it exited 0.
# na_xfer_end TAG: when it ended (epoch seconds): its start plus the secs=
# it reports, so a scenario busy checking other things meanwhile does not
# blur the time.
declare -A NA_XFER_PID=() NA_XFER_T0=()
na_xfer_bg() {
  local tag="$1" ns="$2"
  shift 2
  NA_XFER_T0[$tag]="$(now)"
  ip netns exec "$ns" "$PY" "$TOOLS/zr_client.py" xfer "$@" >"$E2E_TMP/xfer-$tag.out" 2>&1 &
  NA_XFER_PID[$tag]=$!
  track "${NA_XFER_PID[$tag]}"
}

na_xfer_end() {
  local secs
  secs="$(sed -n 's/.* secs=\([0-9.]*\).*/\1/p' "$E2E_TMP/xfer-$1.out" | head -n1)"
  awk -v a="${NA_XFER_T0[$1]}" -v b="${secs:-0}" 'BEGIN { printf "%.2f", a + b }'
}

na_xfer_wait() {
  local tag="$1" t="${2:-60}" pid="${NA_XFER_PID[$1]}" rc=0
  wait_gone "$pid" $((t * 10)) || fail "transfer $tag still running after $t s"
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || fail "transfer $tag failed: $(cat "$E2E_TMP/xfer-$tag.out")"
  log "ok: transfer $tag: $(head -n1 "$E2E_TMP/xfer-$tag.out")"
}

# The access lines of zring ZR whose pod= is NAME and dir= is DIR.
na_access() {
  zr_access "$1" | sed 's/$/ /' | grep -F " pod=default/$2 " | grep -F " dir=$3 " | sed 's/ $//' || true
}

na_count() { na_access "$1" "$2" "$3" | grep -c . || true; }

# ---------------------------------------------------------------- telemetry (issue 5)
#
# The access-log and metrics scenarios share one topology and one traffic
# pattern, with a zring in each pod as for HBONE (A: client pod, outbound;
# B: server pod, inbound plaintext on 15006 or HBONE on 15008):
#
#   tele_topology              the two pods, capture in both; the server pod's
#                              port $TELE_CLOSED is not captured, so A's
#                              connections to it fail at connect
#   tele_config FILE PROTO     the workloads: client-pod (workloadName client,
#                              sa client) at C4 and server-pod (workloadName
#                              server, sa server) at S4, both in namespace
#                              default, protocol PROTO (TCP or HBONE);
#                              server-pod is the endpoint of service
#                              web.default.svc.cluster.local, VIP $TELE_VIP:80 -> 8080;
#                              policy default/deny-$TELE_DENIED denies that
#                              port (enforced by B)
#   tele_traffic               TELE_N direct transfers (to S4:8080) and TELE_V
#                              through the VIP, one at a time, sizes
#                              tele_up/tele_down I (direct) and
#                              tele_vip_up/tele_vip_down I; sets TELE_UP and
#                              TELE_DOWN (direct) and TELE_VIP_UP /
#                              TELE_VIP_DOWN: the bytes on the wire each way
#   wire_up U D [RATE] / wire_down U D    bytes a ZR1 transfer of U up and
#                              D down (at --down-rate RATE) puts on the wire
#                              client->server / server->client
#   metrics_get NS             GET http://127.0.0.1:15020/metrics (curl) from
#                              the zring in netns NS into $METRICS_FILE
#   metric_value NAME [LABELS] the sum of the samples of NAME in $METRICS_FILE
#                              whose labels include all of LABELS
#                              ('k="v",k2="v2"'); 0 when none does
#   metrics_promtool           `promtool check metrics` on $METRICS_FILE
#                              (missing promtool: skip, or fail under CI=true)

readonly TELE_VIP=10.96.0.10 TELE_CLOSED=8099 TELE_DENIED=8097 TELE_N=4 TELE_V=2
METRICS_FILE=""

tele_topology() {
  command -v openssl >/dev/null || skip "openssl not found"
  e2e_topology
  install_capture_in "$NS_C"
  install_capture_in "$NS_S" --exclude-inbound-ports "$TELE_CLOSED"
  route_vips "$TELE_VIP/32"
}

tele_config() {
  cat >"$1" <<JSON
{"workloads":[
  {"uid":"c1","name":"client-pod","namespace":"default","serviceAccount":"client",
   "workloadName":"client","workloadIps":["$C4"],"protocol":"$2"},
  {"uid":"s1","name":"server-pod","namespace":"default","serviceAccount":"server",
   "workloadName":"server","workloadIps":["$S4"],"protocol":"$2",
   "services":{"default/web.default.svc.cluster.local":{"80":8080}}}
],"services":[
  {"name":"web","namespace":"default","hostname":"web.default.svc.cluster.local",
   "vips":["/$TELE_VIP"],"ports":{"80":8080}}
],"policies":[
  {"name":"deny-$TELE_DENIED","namespace":"default","scope":"Namespace","action":"Deny",
   "rules":[[[{"destinationPorts":[$TELE_DENIED]}]]]}
]}
JSON
}

wire_up() { local h="ZR1 $1 $2 ${3:-0}"; echo $(($1 + ${#h} + 1)); }
wire_down() { echo $(($2 + 64 + 1 + 64 + 1 + ${#1} + 1)); }
tele_up() { echo $((1000 * $1 + 17)); }
tele_down() { echo $((30000 * $1 + 5)); }
tele_vip_up() { echo $((5000 + $1)); }
tele_vip_down() { echo $((70000 + $1)); }

tele_traffic() {
  local i up down
  TELE_UP=0 TELE_DOWN=0 TELE_VIP_UP=0 TELE_VIP_DOWN=0
  for ((i = 1; i <= TELE_N; i++)); do
    up="$(tele_up "$i")" down="$(tele_down "$i")"
    client_ok "$NS_C" xfer --host "$S4" --port 8080 --up "$up" --down "$down"
    TELE_UP=$((TELE_UP + $(wire_up "$up" "$down")))
    TELE_DOWN=$((TELE_DOWN + $(wire_down "$up" "$down")))
  done
  for ((i = 1; i <= TELE_V; i++)); do
    up="$(tele_vip_up "$i")" down="$(tele_vip_down "$i")"
    client_ok "$NS_C" xfer --host "$TELE_VIP" --port 80 --up "$up" --down "$down"
    TELE_VIP_UP=$((TELE_VIP_UP + $(wire_up "$up" "$down")))
    TELE_VIP_DOWN=$((TELE_VIP_DOWN + $(wire_down "$up" "$down")))
  done
}

metrics_get() {
  command -v curl >/dev/null || skip "curl not found"
  METRICS_FILE="$E2E_TMP/metrics-$1-$((++E2E_METRICS_GETS)).txt"
  ip netns exec "$1" curl -fsS --max-time 5 "http://127.0.0.1:15020/metrics" >"$METRICS_FILE" ||
    fail "GET http://127.0.0.1:15020/metrics in $1 failed"
}
E2E_METRICS_GETS=0

metric_value() {
  "$PY" - "$METRICS_FILE" "$1" "${2:-}" <<'PY'
import re, sys

LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

def labels(text):
    """k="v",... with the exposition format's escapes undone."""
    out, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            sys.exit(f"bad labels: {text!r}")
        v = re.sub(r'\\(.)', lambda e: "\n" if e.group(1) == "n" else e.group(1), m.group(2))
        out[m.group(1)] = v
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                sys.exit(f"bad labels: {text!r}")
            pos += 1
    return out

path, name, want = sys.argv[1], sys.argv[2], labels(sys.argv[3])
total = 0.0
for line in open(path, encoding="utf-8"):
    line = line.rstrip("\n")
    if not line or line.startswith("#"):
        continue
    m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
    if not m:
        sys.exit(f"bad sample line: {line!r}")
    if m.group(1) != name:
        continue
    have = labels(m.group(2) or "")
    if all(have.get(k) == v for k, v in want.items()):
        total += float(m.group(3))
print(int(total) if total == int(total) else total)
PY
}

metrics_promtool() {
  if ! command -v promtool >/dev/null; then
    skip "promtool not found (Debian package prometheus)"
  fi
  promtool check metrics <"$METRICS_FILE" >"$E2E_TMP/promtool.out" 2>&1 ||
    fail "promtool check metrics: $(cat "$E2E_TMP/promtool.out")"
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
