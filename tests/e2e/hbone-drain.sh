#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: graceful drain with HBONE tunnels.
#   1. SIGTERM to B (--drain-timeout 5s) while a paced transfer crosses its
#      tunnel: the transfer completes intact; new tunnels are refused
#      meanwhile (a new connection through A ends at once; a direct TLS
#      connection to B's :15008 is refused; A, with one worker, must not
#      put it on its pooled tunnel that B sent GOAWAY on); B exits 0 soon after the
#      transfer ends, well before the deadline.
#   2. SIGTERM to B (--drain-timeout 1s) with a transfer that needs ~10 s:
#      the deadline cuts it, the client hears so promptly, B exits 0.
#   3. A recovers: with a new B, new connections through A work (its old
#      tunnels died with the old B). SIGTERM to A with a transfer in flight:
#      it completes, new connections are refused, A exits 0.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly RATE=$((1 << 20))   # paced transfers, bytes/s each way

e2e_begin hbone-drain
"$PY" -c 'import h2' 2>/dev/null || skip "python3-h2 not installed (Debian: apt-get install python3-h2)"
hbone_topology
start_server "$NS_S" 8080 "$S4"
hbone_config "$E2E_TMP/w.json"
certs="$E2E_TMP/certs"
hbone_certs "$certs"
cdir="$certs/cluster.local/ns/default/sa/client"

# paced NAME BYTES EXPECT: a background transfer of BYTES each way at RATE;
# sets PACED_PID; returns once it has reached the server and run a little.
paced() {
  client "$NS_C" xfer --host "$S4" --port 8080 --up "$2" --up-rate "$RATE" \
    --down "$2" --down-rate "$RATE" --expect "$3" --timeout 30 >"$E2E_TMP/$1.out" 2>&1 &
  PACED_PID=$!
  track "$PACED_PID"
  wait_until 5 server_established || fail "$1: the transfer did not reach the server"
  sleep 0.3
}
server_established() { ns_s ss -Htn state established "sport = :8080" | grep -q .; }

# paced_done NAME WITHIN_S: it must end as it was started to expect.
paced_done() {
  local rc=0
  wait_gone "$PACED_PID" $(($2 * 10)) || fail "$1: transfer still running $2 s after SIGTERM"
  wait "$PACED_PID" || rc=$?
  [ "$rc" -eq 0 ] || fail "$1: transfer: $(cat "$E2E_TMP/$1.out")"
  log "ok: $1: $(cat "$E2E_TMP/$1.out") (SIGTERM+$(elapsed_since "$T0") s)"
}

sigterm() {
  kill -TERM "$(zr_pid "$1")"
  T0="$(now)"
  wait_until 3 at_least 1 zr_count "$1" 'msg=draining' || fail "$1 logged no msg=draining"
}

# A new connection through A must end within 2 s without data.
new_refused() {
  local out
  out="$(client "$NS_C" probe --host "$S4" --port 8080 --within 2)" ||
    fail "$1: a new connection during the drain was not refused: $out"
  log "ok: $1: new connection: $out"
}

# --- 1: the transfer fits the deadline ---------------------------------------------
# One worker in A: the new connection during B's drain finds the pooled
# tunnel that B has sent GOAWAY on, and must not open a stream on it.
zr_start A "$NS_C" --config "$E2E_TMP/w.json" --certs "$certs" --workers 1
zr_start B1 "$NS_S" --config "$E2E_TMP/w.json" --certs "$certs" --drain-timeout 5s
client_ok "$NS_C" xfer --host "$S4" --port 8080 --up 100000 --down 100000 --timeout 10
paced one $((RATE * 2)) ok      # ~2 s, ~1.6 s left at SIGTERM
sigterm B1
proc_alive "$(zr_pid B1)" || fail "1: B exited before its transfer ended"
new_refused "1: through A"
out="$(h2client "$NS_C" --mark 0x539 --addr "$S4:15008" --cert "$cdir/cert-chain.pem" --key "$cdir/key.pem" \
  --ca "$certs/root-cert.pem" --authority "$S4:8080" --expect refused --timeout 2)" ||
  fail "1: a direct HBONE connection to draining B was not refused: $out"
log "ok: 1: direct to B's :15008: $out"
paced_done one 5
zr_wait_exit B1 5
took="$(elapsed_since "$T0")"
[ "$ZRING_RC" -eq 0 ] || fail "1: B exited $ZRING_RC after a clean drain, want 0"
float_le "$took" 4 || fail "1: B took ${took}s to exit (its transfer ended ~1.6 s after SIGTERM; deadline 5 s)"
unset "ZR_PID[B1]"
hdr="ZR1 $((RATE * 2)) $((RATE * 2)) $RATE"
line="$(zr_access B1 | grep -F " up_bytes=$((RATE * 2 + ${#hdr} + 1)) " | tail -n1)"
[ -n "$line" ] || fail "1: B has no access line for the paced transfer: $(zr_access B1)"
[ "$(access_field "$line" error)" = - ] || fail "1: B: the drained transfer logged an error: $line"
log "ok: 1: B exited 0 ${took}s after SIGTERM; $line"

# --- 2: the transfer does not fit ------------------------------------------------
zr_start B2 "$NS_S" --config "$E2E_TMP/w.json" --certs "$certs" --drain-timeout 1s
paced two $((RATE * 10)) fail   # ~10 s
sigterm B2
paced_done two 4
zr_wait_exit B2 4
[ "$ZRING_RC" -eq 0 ] || fail "2: B exited $ZRING_RC after the drain deadline, want 0"
unset "ZR_PID[B2]"
log "ok: 2: transfer cut, B exited 0 after $(elapsed_since "$T0") s"
wait_until 3 at_least 1 zr_count B2 'msg=access' || fail "2: B logged no access line for the cut transfer"
line="$(zr_access B2 | tail -n1)"
log "2: B: $line"
[ "$(access_field "$line" error)" = '"drain deadline"' ] || fail "2: B's access line does not say drain deadline: $line"

# --- 3: A recovers; then A drains ------------------------------------------------
zr_start B3 "$NS_S" --config "$E2E_TMP/w.json" --certs "$certs"
client_ok "$NS_C" xfer --host "$S4" --port 8080 --up 100000 --down 100000 --timeout 10
client_ok "$NS_C" many --host "$S4" --port 8080 --conns 20 --max-up 100000 --max-down 100000
paced three $((RATE * 2)) ok
sigterm A
new_refused "3: A draining"
paced_done three 5
zr_wait_exit A 5
[ "$ZRING_RC" -eq 0 ] || fail "3: A exited $ZRING_RC after a clean drain, want 0"
unset "ZR_PID[A]"
log "ok: 3: A exited 0 after $(elapsed_since "$T0") s"
line="$(zr_access A | tail -n1)"
[ "$(access_field "$line" error)" = - ] || fail "3: A: the drained transfer logged an error: $line"

hbone_pass "drain with HBONE tunnels: in-flight transfers finish, new tunnels refused, deadline cuts, exit 0"
