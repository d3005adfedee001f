#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: pooled tunnels retire after --hbone-tunnel-streams streams (so a
# busy pool re-handshakes, picking up rotated certificates, and never runs a
# tunnel out of HTTP/2 stream IDs), without losing a stream.
#   1. A (one worker, --hbone-tunnel-streams 2): five sequential connections
#      all succeed; A retires two tunnels ("stream limit reached") and B
#      sees three tunnels arrive;
#   2. a transfer in flight on a tunnel that retires under it (its second
#      stream is opened meanwhile) completes intact; a new connection then
#      goes through a fresh tunnel, and the retired one closes only after
#      its last stream has ended;
#   3. both exit 0 on SIGTERM.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin hbone-retire
hbone_topology
certs="$E2E_TMP/certs"
hbone_certs "$certs"
hbone_config "$E2E_TMP/w.json"
start_server "$NS_S" 8080 "$S4"

zr_start A "$NS_C" --config "$E2E_TMP/w.json" --certs "$certs" --workers 1 \
  --hbone-tunnel-streams 2 --log-level debug
zr_start B "$NS_S" --config "$E2E_TMP/w.json" --certs "$certs" --workers 1 --log-level debug

retired() { zr_count A 'msg="tunnel retired" .*reason="stream limit reached"'; }
client_tunnels_closed() { zr_count A 'msg="tunnel closed" side=client .*reason=drained'; }
server_tunnels() { zr_count B 'msg="tunnel ready" side=server'; }

# --- 1: five connections, three tunnels -----------------------------------------
for i in 1 2 3 4 5; do
  client_ok "$NS_C" xfer --host "$S4" --port 8080 --up $((1000 * i)) --down $((2000 * i))
done
[ "$(retired)" -eq 2 ] || fail "1: A retired $(retired) tunnels after 5 streams at 2 each, want 2"
[ "$(server_tunnels)" -eq 3 ] || fail "1: B saw $(server_tunnels) tunnels for 5 streams at 2 each, want 3"
wait_until 5 at_least 2 client_tunnels_closed ||
  fail "1: A closed $(client_tunnels_closed) retired tunnels, want 2"
log "ok: 5 streams at 2 a tunnel: 2 retired and closed, 3 tunnels at B"

# --- 2: a stream outlives its tunnel's retirement --------------------------------
# Tunnel 3 has carried one stream; this transfer is its second and last.
big=$((8 << 20))
client "$NS_C" xfer --host "$S4" --port 8080 --up "$big" --up-rate $((2 << 20)) \
  --down "$big" --down-rate $((2 << 20)) --timeout 30 >"$E2E_TMP/long.out" 2>&1 &
long=$!
track "$long"
wait_until 5 at_least 3 retired || fail "2: the third tunnel did not retire at its second stream"
client_ok "$NS_C" xfer --host "$S4" --port 8080 --up 5000 --down 5000
[ "$(server_tunnels)" -eq 4 ] || fail "2: the connection after a retirement did not get a fresh tunnel"
proc_alive "$long" || fail "2: the long transfer ended early: $(cat "$E2E_TMP/long.out")"
[ "$(client_tunnels_closed)" -eq 2 ] || fail "2: the retired tunnel closed under its open stream"
wait_gone "$long" 300 || fail "2: the long transfer did not finish"
wait "$long" || fail "2: the long transfer on the retired tunnel failed: $(cat "$E2E_TMP/long.out")"
wait_until 5 at_least 3 client_tunnels_closed || fail "2: the retired tunnel stayed open after its last stream"
errors="$(zr_access A | grep -vc ' error=-' || true)"
[ "$errors" -eq 0 ] || fail "A: $errors access lines carry an error: $(zr_access A | grep -v ' error=-')"
log "ok: a transfer on a retiring tunnel completed ($(cat "$E2E_TMP/long.out")); the tunnel closed after it"

hbone_pass "tunnels retire after --hbone-tunnel-streams and no stream is lost"
