#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: zring runs out of file descriptors and recovers, losing nothing.
# zring runs with RLIMIT_NOFILE 64 (soft and hard) and one worker; the echo
# server (tests/tools/zr_echo.py) holds every connection until its client
# closes; tests/tools/zr_hold.py opens and holds far more connections than
# 64 descriptors can proxy (each needs two), and sends random bytes on every
# one. Then:
#   - zring is alive, logged "accept paused" (a few times at most), and does
#     not spin: < 0.3 s of CPU over 3 s of exhaustion;
#   - every connection zring proxied (the echo server saw it) echoes its
#     bytes intact, during the exhaustion too; the others just wait;
#   - closing proxied connections lets the waiting ones through, in rounds,
#     until every connection was proxied with its bytes intact; new
#     connections work; no connection was broken, every access line is clean;
#   - SIGTERM: exit 0.
# --connect-timeout 30s: a connection parked without an upstream socket is
# reset after the connect timeout (by design); this scenario checks that
# nothing is lost, so the parked one must outlive the exhaustion phase.
# Run once per data pump (ZRING_E2E_PUMPS narrows the list).
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly NOFILE=64 CONNS=60 PORT=7000
readonly MAX_TICKS_3S=30     # 0.3 s of CPU at 100 ticks/s, scaled below

e2e_begin fd-exhaustion
e2e_topology
install_capture
command -v prlimit >/dev/null || skip "prlimit not found"

# The echo server in the server pod.
ns_s "$PY" "$TOOLS/zr_echo.py" --listen "$S4" --port "$PORT" \
  >"$E2E_TMP/echo.out" 2>"$E2E_TMP/echo.log" &
track $!
wait_until 10 grep -qs READY "$E2E_TMP/echo.out" || fail "echo server did not start"

echo_opened() { grep -c '^open ' "$E2E_TMP/echo.log" || true; }
echo_closed() { grep -c '^conn ' "$E2E_TMP/echo.log" || true; }
# ge CMD N: CMD's output >= N (re-evaluated on every call, for wait_until).
ge() { [ "$("$1")" -ge "$2" ]; }

# ------------------------------------------------ the holder, through a FIFO

HOLD_N=0
# hold_start NAME: a zr_hold.py in the client pod reading commands from a FIFO.
hold_start() {
  HOLD_NAME="$1"
  HOLD_N=0
  local fifo="$E2E_TMP/$1.in"
  mkfifo "$fifo"
  ns_c "$PY" "$TOOLS/zr_hold.py" --host "$S4" --port "$PORT" \
    <"$fifo" >"$E2E_TMP/$1.out" 2>"$E2E_TMP/$1.log" &
  HOLD_PID=$!
  track "$HOLD_PID"
  exec {HOLD_FD}>"$fifo"
}

# hold CMD... [--within S]: send one command, wait for its answer (in ANSWER).
hold() {
  local within=30
  printf '%s\n' "$*" >&"$HOLD_FD"
  HOLD_N=$((HOLD_N + 1))
  wait_until "$within" hold_answered ||
    fail "zr_hold did not answer '$*' within ${within}s"
  ANSWER="$(sed -n "${HOLD_N}p" "$E2E_TMP/$HOLD_NAME.out")"
  log "hold $*: $ANSWER"
  case "$ANSWER" in *error=*) fail "zr_hold: $ANSWER" ;; esac
}

hold_answered() { [ "$(wc -l <"$E2E_TMP/$HOLD_NAME.out")" -ge "$HOLD_N" ]; }

# hf KEY: a count from the last answer.
hf() { access_field "$ANSWER" "$1"; }

expect_unbroken() {
  [ "$(hf broken)" = 0 ] || fail "$1: a connection broke: $ANSWER"
  [ "$(hf stalled)" = 0 ] || fail "$1: a proxied connection stalled (bytes not echoed): $ANSWER"
}

# Every connection zring connected upstream (open at the echo server) must
# be one whose bytes come back: none is connected but stuck.
expect_upstream_is_proxied() {
  local up=$(($(echo_opened) - $(echo_closed)))
  [ "$up" = "$(hf proxied)" ] || {
    log "zring's descriptors: $(ls -l "/proc/$ZPID/fd" | awk 'NR > 1 { print $NF }' | sed 's/:.*//' | sort | uniq -c | tr -s ' \n' ' ')"
    fail "$1: $up connections open at the echo server, but $(hf proxied) echo their bytes back: $ANSWER"
  }
}

hold_stop() {
  hold quit
  exec {HOLD_FD}>&-
  wait_gone "$HOLD_PID" 50 || fail "zr_hold did not exit"
}

clk_tck="$(getconf CLK_TCK)"
max_ticks=$((MAX_TICKS_3S * clk_tck / 100))

for pump in ${ZRING_E2E_PUMPS:-splice copy}; do
  log "--- pump $pump"
  opened0="$(echo_opened)"
  closed0="$(echo_closed)"
  start_zring_nofile "$NOFILE" --workers 1 --connect-timeout 30s --pump "$pump"
  hold_start "hold-$pump"

  # --- exhaustion: far more connections than descriptors ----------------------
  hold open "$CONNS"
  [ "$(hf opened)" = "$CONNS" ] || fail "$pump: could not open $CONNS client connections: $ANSWER"
  hold ping 3
  expect_unbroken "$pump: exhausted"
  proxied="$(hf proxied)"
  waiting="$(hf waiting)"
  expect_upstream_is_proxied "$pump: exhausted"
  [ "$proxied" -ge 5 ] || fail "$pump: only $proxied connections proxied with $NOFILE descriptors"
  [ "$waiting" -ge 10 ] || fail "$pump: only $waiting connections waiting: descriptors not exhausted? $ANSWER"
  proc_alive "$ZPID" || fail "$pump: zring died when descriptors ran out"
  log "ok: $pump: $proxied connections proxied, $waiting waiting in the backlog"

  # Paused, said so, and does not spin while paused.
  wait_until 5 grep -q 'accept paused' "$ZLOG" || fail "$pump: no 'accept paused' warning in zring's log"
  t0="$(zring_cpu_ticks)"
  sleep 3
  t1="$(zring_cpu_ticks)"
  used=$((t1 - t0))
  [ "$used" -le "$max_ticks" ] ||
    fail "$pump: zring used $used/$clk_tck s of CPU in 3 s of exhaustion (spinning?), want <= $max_ticks"
  log "ok: $pump: zring used $used/$clk_tck s of CPU over 3 s while paused"

  # Still exhausted: proxied ones keep working, waiting ones keep waiting.
  hold ping 2
  expect_unbroken "$pump: still exhausted"
  [ "$(hf proxied)" = "$proxied" ] || fail "$pump: proxied count changed without any close: $ANSWER"
  proc_alive "$ZPID" || fail "$pump: zring died"

  # --- recovery: closing proxied connections lets the waiting ones in ---------
  round=0
  while [ "$(hf waiting)" -gt 0 ]; do
    round=$((round + 1))
    [ "$round" -le 6 ] || fail "$pump: connections still waiting after $((round - 1)) rounds: $ANSWER"
    before_waiting="$(hf waiting)"
    hold close 15
    [ "$(hf failed)" = 0 ] && [ "$(hf broken)" = 0 ] || fail "$pump: a clean close failed: $ANSWER"
    want=$((before_waiting - $(hf closed)))
    hold wait 8 $((want > 0 ? want : 0))
    expect_unbroken "$pump: round $round"
    expect_upstream_is_proxied "$pump: round $round"
    [ "$(hf waiting)" -lt "$before_waiting" ] ||
      fail "$pump: closing 15 connections let no waiting one through: $ANSWER"
  done
  log "ok: $pump: every waiting connection was proxied after $round rounds"
  hold ping 5
  expect_unbroken "$pump: after recovery"
  [ "$(hf echoed)" = "$(hf open)" ] || fail "$pump: not every connection echoes: $ANSWER"

  # New connections work too.
  hold open 5
  [ "$(hf opened)" = 5 ] || fail "$pump: new connections failed: $ANSWER"
  hold ping 5
  expect_unbroken "$pump: new connections"
  [ "$(hf echoed)" = "$(hf open)" ] || fail "$pump: new connections do not echo: $ANSWER"

  # Close all: every connection ended cleanly everywhere.
  hold close 1000
  [ "$(hf failed)" = 0 ] && [ "$(hf open)" = 0 ] || fail "$pump: closing the rest: $ANSWER"
  hold_stop
  total=$((CONNS + 5))
  wait_until 5 ge echo_closed $((closed0 + total)) ||
    fail "$pump: the echo server saw $(($(echo_closed) - closed0)) of $total connections end"
  bad="$(tail -n +"$((closed0 + 1))" <(grep '^conn ' "$E2E_TMP/echo.log") | grep -vc 'result=ok' || true)"
  [ "$bad" = 0 ] || fail "$pump: $bad connections ended with an error at the echo server"
  wait_until 5 ge access_count "$total" || fail "$pump: $(access_count) access lines, want $total"
  errors="$(grep 'msg=access' "$ZLOG" | grep -vc ' error=-' || true)"
  [ "$errors" = 0 ] || fail "$pump: $errors access lines carry an error: $(grep 'msg=access' "$ZLOG" | grep -v ' error=-' | head -n 3)"
  warned="$(grep -c 'accept paused' "$ZLOG" || true)"
  [ "$warned" -le 3 ] || fail "$pump: 'accept paused' logged $warned times (want a few at most)"
  log "ok: $pump: $total connections proxied intact, 'accept paused' logged $warned time(s)"

  proc_alive "$ZPID" || fail "$pump: zring died"
  stop_zring
done

pass "out of descriptors: accept pauses without spinning, nothing is lost, all recover"
