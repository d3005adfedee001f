#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: graceful shutdown (SIGTERM drains, a second SIGTERM exits at once).
#   A. --drain-timeout 5s, a paced transfer needing ~1 s in flight at SIGTERM:
#      it completes intact, new connections are refused meanwhile, and zring
#      exits 0 as soon as it is done (well before the 5 s deadline).
#   B. --drain-timeout 1s, a transfer needing ~10 s: the deadline cuts it,
#      the client hears so promptly, zring exits 0.
#   C. --drain-timeout 30s, a long transfer: a second SIGTERM during the drain
#      makes zring exit at once.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly RATE=$((1 << 20))   # client send pace, bytes/s

e2e_begin drain
e2e_topology
install_capture
start_server "$NS_S" 8080 "$S4"

# paced_client NAME BYTES EXPECT: a background paced upload; sets CPID.
paced_client() {
  client "$NS_C" xfer --host "$S4" --port 8080 --up "$2" --up-rate "$RATE" \
    --expect "$3" --timeout 30 >"$E2E_TMP/$1.out" 2>&1 &
  CPID=$!
  track "$CPID"
  # Wait until zring has connected upstream (the server logs only at the
  # end, so look at the server pod's sockets), then let bytes flow a little.
  wait_until 5 upstream_established || fail "$1: transfer did not start"
  sleep 0.3
}

upstream_established() {
  ns_s ss -Htn state established "sport = :8080" | grep -q .
}

# sigterm: send SIGTERM to zring and remember when.
sigterm() {
  kill -TERM "$ZPID"
  T0="$(now)"
}

# New connections while draining: refused or closed at once, never proxied
# (a proxied one would sit waiting: the test server says nothing first).
expect_refused_while_draining() {
  local out
  wait_until 3 grep -q 'msg=draining' "$ZLOG" || fail "$1: zring logged no msg=draining"
  proc_alive "$ZPID" || fail "$1: zring already gone, cannot test refusal while draining"
  out="$(client "$NS_C" probe --host "$S4" --port 8080 --within 2)" ||
    fail "$1: a new connection during the drain was not refused ($out)"
  log "ok: $1: new connection while draining: $out"
}

# wait_client NAME WITHIN_S: the paced client must finish within WITHIN_S of
# SIGTERM, with the outcome it was started to expect.
wait_client() {
  local rc=0
  wait_gone "$CPID" $(($2 * 10)) || fail "$1: client still running $2 s after SIGTERM"
  wait "$CPID" || rc=$?
  [ "$rc" -eq 0 ] || fail "$1: client: $(cat "$E2E_TMP/$1.out")"
  log "ok: $1: client $(cat "$E2E_TMP/$1.out") after SIGTERM+$(elapsed_since "$T0")s"
}

# --- A: the transfer fits the deadline ----------------------------------------
start_zring --drain-timeout 5s
paced_client A $((RATE * 3 / 2)) ok     # ~1.5 s, ~1.2 s left at SIGTERM
sigterm
expect_refused_while_draining A
wait_client A 5
zring_wait_exit 5
took="$(elapsed_since "$T0")"
[ "$ZRING_RC" -eq 0 ] || fail "A: zring exited $ZRING_RC after a clean drain, want 0"
float_le "$took" 4 || fail "A: zring took ${took}s to exit after its last connection ended (deadline 5 s)"
line="$(access_to "$S4:8080" | tail -n1)"
[ "$(access_field "$line" error)" = - ] || fail "A: drained connection logged an error: $line"
log "ok: A: zring exited 0 after ${took}s; $line"

# --- B: the transfer does not fit ---------------------------------------------
start_zring --drain-timeout 1s
paced_client B $((RATE * 10)) fail      # ~10 s
sigterm
wait_client B 4
zring_wait_exit 4
took="$(elapsed_since "$T0")"
[ "$ZRING_RC" -eq 0 ] || fail "B: zring exited $ZRING_RC after the drain deadline, want 0"
log "ok: B: transfer cut, zring exited 0 after ${took}s"
wait_until 2 at_least 1 access_count || fail "B: no access line for the cut connection"

# --- C: a second SIGTERM ------------------------------------------------------
start_zring --drain-timeout 30s
paced_client C $((RATE * 20)) fail      # ~20 s
sigterm
expect_refused_while_draining C
proc_alive "$ZPID" || fail "C: zring exited before the second SIGTERM (drain deadline is 30 s)"
kill -TERM "$ZPID"
T0="$(now)"
zring_wait_exit 2
log "ok: C: second SIGTERM: zring exited (code $ZRING_RC) after $(elapsed_since "$T0")s"
wait_client C 5

pass "drain completes what fits, cuts what does not, refuses new connections, exits 0"
