#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: zring runs out of file descriptors and recovers, losing nothing.
# zring runs with RLIMIT_NOFILE 64 (soft and hard) and one worker; the echo
# server (tests/tools/zr_echo.py) holds every connection until its client
# closes; tests/tools/zr_hold.py opens 60 connections, one after the other,
# each sending random bytes as soon as it is open (the next one opens once
# the echo is back, or at once when zring is full) — far more than 64
# descriptors can proxy (each needs two). Then:
#   - zring is alive, logged "accept paused" (once per listener and 10 s at
#     most), and does not spin: < 0.3 s of CPU over 3 s of exhaustion;
#   - every connection zring connected upstream (the echo server saw it)
#     echoes its bytes intact, during the exhaustion too; the others wait;
#   - closing proxied connections lets the waiting ones through, in rounds,
#     until every connection was proxied with its bytes intact; new
#     connections work; no connection broke, every access line is clean;
#   - SIGTERM: exit 0.
# --connect-timeout 30s: a connection accepted while no descriptor is left
# for its upstream socket is parked, and reset after the connect timeout (by
# design); it must outlive the exhaustion phase here.
# Connections open one by one and recovery goes in rounds on purpose; the
# hard ways (a burst of connections, a splice pump that never made a pipe
# before the exhaustion, many connections closing at once) are fd-burst.sh.
# Run once per data pump (ZRING_E2E_PUMPS narrows the list).
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly NOFILE=64 CONNS=60 PORT=7000
readonly MAX_CPU_MS=300      # over 3 s of exhaustion

e2e_begin fd-exhaustion
e2e_topology
install_capture
command -v prlimit >/dev/null || skip "prlimit not found"

start_echo "$PORT"

expect_unbroken() {
  [ "$(hf broken)" = 0 ] || fail "$1: a connection broke: $ANSWER"
  [ "$(hf stalled)" = 0 ] || fail "$1: a proxied connection stalled (bytes not echoed): $ANSWER"
}

# Every connection zring connected upstream (open at the echo server) must
# be one whose bytes come back: none is connected but stuck.
# (A connection reaching the server just now gets a moment for its echo.)
expect_upstream_is_proxied() {
  local up tries=0
  while up="$(echo_open_now)"; [ "$up" != "$(hf proxied)" ]; do
    tries=$((tries + 1))
    [ "$tries" -le 4 ] ||
      fail "$1: $up connections open at the echo server, but $(hf proxied) echo their bytes back: $ANSWER"
    hold wait 0.5
  done
}

clk_tck="$(getconf CLK_TCK)"
max_ticks=$((MAX_CPU_MS * clk_tck / 1000))

for pump in ${ZRING_E2E_PUMPS:-splice copy}; do
  log "--- pump $pump"
  closed0="$(echo_closed)"
  started=$SECONDS
  start_zring_nofile "$NOFILE" --workers 1 --connect-timeout 30s --pump "$pump"
  hold_start "hold-$pump" "$PORT"

  # --- exhaustion: far more connections than descriptors ----------------------
  hold grow "$CONNS" 1
  [ "$(hf open)" = "$CONNS" ] || fail "$pump: could not open $CONNS client connections: $ANSWER"
  [ "$(hf full)" = yes ] || fail "$pump: $CONNS connections did not exhaust $NOFILE descriptors: $ANSWER"
  expect_unbroken "$pump: exhausted"
  proxied="$(hf proxied)"
  waiting="$(hf waiting)"
  [ "$proxied" -ge 10 ] || fail "$pump: only $proxied connections proxied with $NOFILE descriptors"
  expect_upstream_is_proxied "$pump: exhausted"
  proc_alive "$ZPID" || fail "$pump: zring died when descriptors ran out"
  log "ok: $pump: $proxied connections proxied, $waiting waiting"

  # Paused, said so, and does not spin while paused.
  wait_until 5 grep -q 'accept paused' "$ZLOG" || fail "$pump: no 'accept paused' warning in zring's log"
  t0="$(zring_cpu_ticks)"
  sleep 3
  t1="$(zring_cpu_ticks)"
  used=$((t1 - t0))
  [ "$used" -le "$max_ticks" ] ||
    fail "$pump: zring used $((used * 1000 / clk_tck)) ms of CPU in 3 s of exhaustion (spinning?), want <= $MAX_CPU_MS ms"
  log "ok: $pump: zring used $((used * 1000 / clk_tck)) ms of CPU over 3 s while paused"

  # Still exhausted: every proxied one still works, the others still wait.
  hold ping 10 "$waiting"
  expect_unbroken "$pump: still exhausted"
  if [ "$(hf proxied)" != "$proxied" ] || [ "$(hf waiting)" != "$waiting" ]; then
    fail "$pump: connections changed state while nothing closed: $ANSWER"
  fi
  expect_upstream_is_proxied "$pump: still exhausted"
  proc_alive "$ZPID" || fail "$pump: zring died"

  # --- recovery: closing proxied connections lets the waiting ones in ---------
  round=0
  while [ "$(hf waiting)" -gt 0 ]; do
    round=$((round + 1))
    [ "$round" -le 6 ] || fail "$pump: connections still waiting after $((round - 1)) rounds: $ANSWER"
    before="$(hf waiting)"
    hold close 15
    if [ "$(hf failed)" != 0 ] || [ "$(hf broken)" != 0 ]; then fail "$pump: a clean close failed: $ANSWER"; fi
    want=$((before - $(hf closed)))
    hold wait 3 $((want > 0 ? want : 0))
    expect_unbroken "$pump: round $round"
    expect_upstream_is_proxied "$pump: round $round"
    [ "$(hf waiting)" -lt "$before" ] ||
      fail "$pump: closing 15 connections let no waiting one through: $ANSWER"
  done
  log "ok: $pump: every waiting connection was proxied, in $round rounds"
  hold ping 10
  expect_unbroken "$pump: after recovery"
  [ "$(hf echoed)" = "$(hf open)" ] || fail "$pump: not every connection echoes: $ANSWER"

  # New connections work too. Leave room for them first: the exhaustion
  # showed how many connections fit ($proxied), and descriptors zring
  # inherited (a shell's, a test runner's) count against that.
  extra=$(($(hf open) + 5 - proxied))
  [ "$extra" -le 0 ] || hold close "$extra"
  hold open 5
  [ "$(hf opened)" = 5 ] || fail "$pump: new connections failed: $ANSWER"
  hold ping 10
  expect_unbroken "$pump: new connections"
  [ "$(hf echoed)" = "$(hf open)" ] || fail "$pump: new connections do not echo: $ANSWER"

  # Close all: every connection ended cleanly everywhere.
  hold close 1000
  if [ "$(hf failed)" != 0 ] || [ "$(hf open)" != 0 ]; then fail "$pump: closing the rest: $ANSWER"; fi
  hold_stop
  total=$((CONNS + 5))
  wait_until 5 at_least $((closed0 + total)) echo_closed ||
    fail "$pump: the echo server saw $(($(echo_closed) - closed0)) of $total connections end"
  bad="$(grep '^conn ' "$ECHO_LOG" | tail -n +"$((closed0 + 1))" | grep -vc 'result=ok' || true)"
  [ "$bad" = 0 ] || fail "$pump: $bad connections ended with an error at the echo server"
  wait_until 5 at_least "$total" access_count || fail "$pump: $(access_count) access lines, want $total"
  errors="$(grep 'msg=access' "$ZLOG" | grep -vc ' error=-' || true)"
  [ "$errors" = 0 ] ||
    fail "$pump: $errors access lines carry an error: $(grep 'msg=access' "$ZLOG" | grep -v ' error=-' | head -n 3)"

  # "accept paused": at most once per listener every 10 s, never per retry.
  listeners="$(grep -c 'msg=listening' "$ZLOG" || true)"
  warned="$(grep -c 'accept paused' "$ZLOG" || true)"
  allowed=$((listeners * (1 + (SECONDS - started) / 10)))
  [ "$warned" -le "$allowed" ] ||
    fail "$pump: 'accept paused' logged $warned times in $((SECONDS - started)) s with $listeners listeners"
  log "ok: $pump: $total connections proxied intact; 'accept paused' logged $warned times ($listeners listeners)"

  proc_alive "$ZPID" || fail "$pump: zring died"
  stop_zring
done

pass "out of descriptors: accept pauses without spinning, proxied connections keep working, all recover"
