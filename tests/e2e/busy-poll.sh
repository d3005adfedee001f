#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: busy polling (--busy-poll-us, include/zring/worker.h). A client
# plays ping-pong with the echo server through zring: ROUNDS rounds of a
# small message up, its echo back, on one connection. Then:
#   - every echo comes back intact, whatever the setting;
#   - by default each message sent upstream is followed by one busy poll,
#     and only those are (zring_busy_polls_total is one per round: not
#     after the echoes coming back, which go to the client);
#   - an idle zring does not poll (the counter stands still over 1 s);
#   - with a generous budget (1 ms) polls do see the echo arrive
#     (zring_busy_poll_replies_total; at least one in ten, a bound loose
#     enough for a loaded machine), so the poll can end a wait;
#   - --busy-poll-us 0 turns it off: no poll at all;
#   - next to a thread that never sleeps (a busy loop pinned to zring's
#     CPU, zring pinned there too) a yield loses the CPU for a time slice,
#     so polling backs off (zring_busy_poll_backoffs_total, and fewer
#     polls than rounds) and every echo still comes back intact.
# Speed is not asserted here (docs/benchmarks.md measures it).
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly PORT=7000 ROUNDS=400

e2e_begin busy-poll
e2e_topology
install_capture
start_echo "$PORT"

# ping_pong ARGS...: start zring with ARGS, play ROUNDS rounds, fetch the
# metrics into POLLS and REPLIES, stop zring.
ping_pong() {
  start_zring --workers 1 "$@"
  client_ok "$NS_C" pingpong --host "$S4" --port "$PORT" --rounds "$ROUNDS" --size 200
  metrics_get "$NS_C"
  POLLS="$(metric_value zring_busy_polls_total)"
  REPLIES="$(metric_value zring_busy_poll_replies_total)"
  BACKOFFS="$(metric_value zring_busy_poll_backoffs_total)"
  log "zring $*: $POLLS busy polls, $REPLIES saw the reply, $BACKOFFS backed off"
}

# One poll per message upstream. (With io_uring's fallback ring modes two
# rounds could, rarely, share a loop pass and so one poll: 90% suffices;
# and a busy machine can make polling back off, skipping some.)
one_per_round() {
  [ "$POLLS" -le "$ROUNDS" ] ||
    fail "$1: $POLLS busy polls for $ROUNDS messages sent upstream (polls after the echoes too?)"
  [ "$POLLS" -ge $((ROUNDS * 9 / 10)) ] || [ "$BACKOFFS" -gt 0 ] ||
    fail "$1: $POLLS busy polls for $ROUNDS messages sent upstream, none backed off"
}

ping_pong
one_per_round default
before="$POLLS"
sleep 1
metrics_get "$NS_C"
[ "$(metric_value zring_busy_polls_total)" = "$before" ] ||
  fail "idle: busy polls went from $before to $(metric_value zring_busy_polls_total) with no traffic"
stop_zring

ping_pong --busy-poll-us 1000
one_per_round "1 ms"
[ "$REPLIES" -ge $((ROUNDS / 10)) ] ||
  fail "1 ms: only $REPLIES of $POLLS busy polls saw the echo (want >= $((ROUNDS / 10)))"
stop_zring

ping_pong --busy-poll-us 0
[ "$POLLS" = 0 ] || fail "--busy-poll-us 0: $POLLS busy polls, want none"
[ "$REPLIES" = 0 ] || fail "--busy-poll-us 0: $REPLIES busy poll replies, want none"
stop_zring

command -v taskset >/dev/null || skip "taskset not found"
cpu="$(taskset -cp $$ | sed 's/.*: //; s/[-,].*//')"   # the first CPU we may use
taskset -c "$cpu" bash -c 'while :; do :; done' &
hog=$!
track "$hog"
start_zring --workers 1
taskset -a -cp "$cpu" "$ZPID" >/dev/null || fail "could not pin zring to CPU $cpu"
client_ok "$NS_C" pingpong --host "$S4" --port "$PORT" --rounds "$ROUNDS" --size 200
kill "$hog"
metrics_get "$NS_C"
POLLS="$(metric_value zring_busy_polls_total)"
BACKOFFS="$(metric_value zring_busy_poll_backoffs_total)"
log "zring next to a busy loop on CPU $cpu: $POLLS busy polls, $BACKOFFS backed off"
[ "$BACKOFFS" -gt 0 ] || fail "busy loop: no busy poll backed off ($POLLS polls)"
[ "$POLLS" -lt $((ROUNDS / 2)) ] ||
  fail "busy loop: $POLLS busy polls for $ROUNDS rounds, want most skipped after backing off"
stop_zring

pass "busy polling: echoes intact; one poll per message upstream, none idle, sees replies, off at 0, backs off next to a busy loop"
