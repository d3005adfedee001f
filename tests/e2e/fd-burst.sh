#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: descriptor exhaustion the hard ways (each part once failed; the
# descriptor budget, src/fdbudget.c, fixed them). RLIMIT_NOFILE 64, one
# worker, the echo server of fd-exhaustion.
#   A. accept must leave room for upstream sockets (copy pump): 60
#      connections arrive while zring is busy (SIGSTOP, then SIGCONT), so all
#      are in the backlog at once. Want: zring proxies as many as its
#      descriptors allow (>= 10) and the rest wait in the backlog, none is
#      reset when the connect timeout (3 s) passes.
#   B. the splice pump must keep moving bytes when no pipe can be created
#      (splice pump): connections open one at a time without sending
#      anything, each connected upstream, until zring is full; only then do
#      they send. Want: every connection zring connected upstream echoes,
#      and once the clients close, zring ends them.
#   C. recovery must not strand connections (copy pump, --connect-timeout
#      5s): zring filled gently as in fd-exhaustion.sh, then 15 proxied
#      connections close at once. Want: 15 waiting ones get through promptly
#      and none is reset later.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly NOFILE=64 CONNS=60 PORT=7000

e2e_begin fd-burst
e2e_topology
install_capture
command -v prlimit >/dev/null || skip "prlimit not found"
start_echo "$PORT"
failures=()

# --- A: a burst of connections ------------------------------------------------
start_zring_nofile "$NOFILE" --workers 1 --connect-timeout 3s --pump copy
hold_start hold-a "$PORT"
kill -STOP "$ZPID"
hold open "$CONNS"
kill -CONT "$ZPID"
hold ping 2 $((CONNS - 10))
a_proxied="$(hf proxied)"
hold wait 4                     # past the 3 s connect timeout
a_broken="$(hf broken)"
log "A: after the burst: $a_proxied proxied, $a_broken reset; zring: $(access_to "$S4:$PORT" | head -n1)"
[ "$a_proxied" -ge 10 ] ||
  failures+=("A: a burst of $CONNS connections: only $a_proxied proxied with $NOFILE descriptors")
[ "$a_broken" = 0 ] ||
  failures+=("A: $a_broken connections reset while waiting ($(hf why))")
hold_stop
stop_zring

# --- B: no pipe to be had -----------------------------------------------------
start_zring_nofile "$NOFILE" --workers 1 --connect-timeout 30s --pump splice
hold_start hold-b "$PORT"
base="$(echo_open_now)"
n=0
upstream_reached() { [ "$(echo_open_now)" -ge $((base + n)) ]; }
while [ "$n" -lt "$CONNS" ]; do
  hold open 1
  n=$((n + 1))
  wait_until 1 upstream_reached || break
done
hold open $((CONNS - n))
upstream=$(($(echo_open_now) - base))
hold ping 5 $((CONNS - upstream))
log "B: $upstream connections connected upstream, $(hf proxied) of them echo"
[ "$upstream" -ge 10 ] || failures+=("B: only $upstream connections reached the server")
if [ "$(hf proxied)" != "$upstream" ] || [ "$(hf stalled)" != 0 ]; then
  failures+=("B: $upstream connections connected upstream, but only $(hf proxied) echo their bytes ($ANSWER)")
fi
hold_stop                       # every client closes
wait_until 3 at_least "$upstream" access_count ||
  failures+=("B: all clients closed, yet zring ended only $(access_count) of its $upstream connections within 3 s")
stop_zring

# --- C: recovery strands connections ----------------------------------------
start_zring_nofile "$NOFILE" --workers 1 --connect-timeout 5s --pump copy
hold_start hold-c "$PORT"
hold grow "$CONNS" 1
before="$(hf waiting)"
hold close 15
hold wait 3 $((before - 15))
c_through=$((before - $(hf waiting)))
hold wait 6                     # past the 5 s connect timeout
c_broken="$(hf broken)"
log "C: closing 15 let $c_through through within 3 s; $c_broken reset later"
[ "$c_through" -ge 15 ] ||
  failures+=("C: closing 15 proxied connections let only $c_through waiting ones through within 3 s")
[ "$c_broken" = 0 ] ||
  failures+=("C: $c_broken connections reset while waiting after the close ($(hf why))")
hold_stop
stop_zring

[ "${#failures[@]}" = 0 ] || fail "$(printf '%s; ' "${failures[@]}")"
pass "bursts and pipe-less splice survive descriptor exhaustion"
