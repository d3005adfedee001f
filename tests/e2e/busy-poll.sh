#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: busy polling (--busy-poll-us, include/zring/worker.h). A client
# plays ping-pong with the echo server through zring: ROUNDS rounds of a
# small message up, its echo back, on one connection. Then:
#   - every echo comes back intact, whatever the setting;
#   - by default each message sent upstream is followed by a busy poll
#     (zring_busy_polls_total counts at least one per round);
#   - with a generous budget (1 ms) most polls see the echo arrive
#     (zring_busy_poll_replies_total), so the worker did not sleep for it;
#   - --busy-poll-us 0 turns it off: no poll at all.
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
  log "zring $*: $POLLS busy polls, $REPLIES saw the reply"
  stop_zring
}

ping_pong
[ "$POLLS" -ge "$ROUNDS" ] || fail "default: $POLLS busy polls for $ROUNDS messages sent upstream"
[ "$REPLIES" -le "$POLLS" ] || fail "default: more replies ($REPLIES) than polls ($POLLS)"

ping_pong --busy-poll-us 1000
[ "$POLLS" -ge "$ROUNDS" ] || fail "1 ms: $POLLS busy polls for $ROUNDS messages sent upstream"
[ "$REPLIES" -ge $((ROUNDS / 2)) ] ||
  fail "1 ms: only $REPLIES of $POLLS busy polls saw the echo (want >= $((ROUNDS / 2)))"

ping_pong --busy-poll-us 0
[ "$POLLS" = 0 ] || fail "--busy-poll-us 0: $POLLS busy polls, want none"
[ "$REPLIES" = 0 ] || fail "--busy-poll-us 0: $REPLIES busy poll replies, want none"

pass "busy polling: echoes intact; polls after each message upstream, sees most replies, off at 0"
