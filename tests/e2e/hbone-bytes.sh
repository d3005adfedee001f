#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: bytes cross the HBONE tunnel intact (client pod -> zring A ->
# mTLS + HTTP/2 CONNECT -> zring B :15008 -> server pod).
#   1. one connection carries 100 MiB up and 100 MiB down at the same time,
#      sha256-checked end to end; both access lines count exactly those
#      bytes; A's names the server's identity, B's (dir=hbone) the client's
#      identity, its TCP peer (A's tunnel, from the client pod's address) as
#      src and the client's own address as forwarded_for (information);
#   2. 100 connections open at once with random sizes, each checked; they
#      share pooled tunnels (at most one per worker of A);
#   3. half-close through the tunnel: the client shuts down writing, the
#      server answers only after EOF (END_STREAM carries the FIN);
#   4. both zrings exit 0 on SIGTERM.
# ZRING_E2E_SEED replays the random sizes.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin hbone-bytes
hbone_topology
certs="$E2E_TMP/certs"
hbone_certs "$certs"
hbone_config "$E2E_TMP/w.json"
start_server "$NS_S" 8080 "$S4"

zr_start A "$NS_C" --config "$E2E_TMP/w.json" --certs "$certs" --workers 2
zr_start B "$NS_S" --config "$E2E_TMP/w.json" --certs "$certs" --workers 2

# --- 1: 100 MiB each way ------------------------------------------------------
big=$((100 << 20))
header="ZR1 $big $big 0"
want_up=$((big + ${#header} + 1))
want_down=$((big + 64 + 1 + 64 + 1 + ${#big} + 1))
t0="$(now)"
client_ok "$NS_C" xfer --host "$S4" --port 8080 --up "$big" --down "$big"
log "100 MiB each way in $(elapsed_since "$t0") s"

wait_until 10 at_least 1 zr_count A 'msg=access' || fail "A logged no access line"
wait_until 10 at_least 1 zr_count B 'msg=access' || fail "B logged no access line"
a="$(zr_access A | head -n1)"
b="$(zr_access B | head -n1)"
log "A: $a"
log "B: $b"
[ "$(access_field "$a" dir)" = outbound ] || fail "A: dir is not outbound: $a"
[ "$(access_field "$a" dst)" = "$S4:8080" ] || fail "A: dst is not $S4:8080: $a"
[ "$(access_field "$a" dst_identity)" = "$ID_SERVER" ] || fail "A: dst_identity is not $ID_SERVER: $a"
[ "$(access_field "$a" security)" = mutual_tls ] || fail "A: security is not mutual_tls: $a"
[ "$(access_field "$a" up_bytes)" = "$want_up" ] || fail "A: up_bytes != $want_up: $a"
[ "$(access_field "$a" down_bytes)" = "$want_down" ] || fail "A: down_bytes != $want_down: $a"
[ "$(access_field "$a" error)" = - ] || fail "A: error set on a clean transfer: $a"
client_addr="$(access_field "$a" src)"
[[ "$client_addr" == "$C4":* ]] || fail "A: src is not the client pod: $a"

[ "$(access_field "$b" dir)" = hbone ] || fail "B: dir is not hbone: $b"
[[ "$(access_field "$b" src)" == "$C4":* ]] || fail "B: src is not the tunnel's peer in the client pod: $b"
[ "$(access_field "$b" src)" != "$client_addr" ] || fail "B: src is the forwarded address, not the TCP peer: $b"
[ "$(access_field "$b" forwarded_for)" = "$client_addr" ] ||
  fail "B: forwarded_for is not the client address $client_addr: $b"
[ "$(access_field "$b" src_identity)" = "$ID_CLIENT" ] || fail "B: src_identity is not $ID_CLIENT: $b"
[ "$(access_field "$b" security)" = mutual_tls ] || fail "B: security is not mutual_tls: $b"
[ "$(access_field "$b" dst)" = "$S4:8080" ] || fail "B: dst is not $S4:8080: $b"
[ "$(access_field "$b" up_bytes)" = "$want_up" ] || fail "B: up_bytes != $want_up: $b"
[ "$(access_field "$b" down_bytes)" = "$want_down" ] || fail "B: down_bytes != $want_down: $b"
[ "$(access_field "$b" error)" = - ] || fail "B: error set on a clean transfer: $b"

# --- 2: 100 concurrent connections, pooled tunnels ---------------------------------
seed="${ZRING_E2E_SEED:-$RANDOM}"
client_ok "$NS_C" many --host "$S4" --port 8080 --conns 100 --seed "$seed"
wait_until 10 at_least 101 zr_count A 'msg=access' || fail "A: $(zr_count A msg=access) access lines, want 101"
wait_until 10 at_least 101 zr_count B 'msg=access' || fail "B: $(zr_count B msg=access) access lines, want 101"
tunnels="$(ns_s ss -Htn state established "sport = :15008" | grep -c . || true)"
log "tunnels open on B's :15008 after 101 connections: $tunnels"
(( tunnels >= 1 && tunnels <= 2 )) ||
  fail "want 1..2 pooled tunnels (2 workers on A), found $tunnels: connections are not pooled"
for n in A B; do
  errors="$(zr_access "$n" | grep -vc ' error=-' || true)"
  [ "$errors" -eq 0 ] || fail "$n: $errors access lines carry an error"
done
other="$(zr_access B | grep -vc "src_identity=$ID_CLIENT" || true)"
[ "$other" -eq 0 ] || fail "B: $other access lines without src_identity=$ID_CLIENT"
# Every client address A saw reached B as the forwarded address, once.
diff <(zr_access A | sed -n 's/.* src=\([^ ]*\) .*/\1/p' | sort) \
     <(zr_access B | sed -n 's/.* forwarded_for=\([^ ]*\) .*/\1/p' | sort) >/dev/null ||
  fail "the client addresses in A's access lines and the forwarded ones in B's differ"

# --- 3: half-close through the tunnel -------------------------------------------
client_ok "$NS_C" xfer --host "$S4" --port 8080 --half-close --up 1000 --down $((20 << 20)) --timeout 30
client_ok "$NS_C" xfer --host "$S4" --port 8080 --half-close --up 0 --down 65536 --timeout 30
client_ok "$NS_C" xfer --host "$S4" --port 8080 --half-close --up $((10 << 20)) --down $((10 << 20)) --timeout 30
wait_until 10 at_least 104 zr_count B 'msg=access' || fail "B: half-close connections not all logged"
for n in A B; do
  errors="$(zr_access "$n" | grep -vc ' error=-' || true)"
  [ "$errors" -eq 0 ] || fail "$n: $errors access lines carry an error after half-close"
done

# --- 4: both exit 0 on SIGTERM --------------------------------------------------
hbone_pass "100 MiB each way, 100 pooled concurrent connections, half-close: intact through HBONE (seed $seed)"
