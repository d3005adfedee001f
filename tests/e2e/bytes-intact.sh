#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: bytes cross zring intact, both ways at once, with each data pump.
#   1. one connection carries 100 MiB up and 100 MiB down at the same time;
#      sha256 of each direction is checked end to end, and zring's access line
#      counts exactly the bytes that crossed;
#   2. 100 connections open at once, each with random sizes, each checked;
#   3. small messages into a slow reader: the server sends 1 MiB in ~15 KB
#      writes (small enough for the splice pump's copy path) to a client that
#      reads nothing for 2 s through a 4 KiB receive buffer, so zring's sends
#      toward it come up short and the rest must wait in order.
# Run once per pump (--pump splice and --pump copy): both must stay honest.
# ZRING_E2E_PUMPS narrows the list; ZRING_E2E_SEED replays the random sizes.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin bytes-intact
e2e_topology
install_capture
start_server "$NS_S" 8080 "$S4"

big=$((100 << 20))
# The byte counts include the ZR1 header (up) and trailer (down).
header="ZR1 $big $big 0"
want_up=$((big + ${#header} + 1))
want_down=$((big + 64 + 1 + 64 + 1 + ${#big} + 1))

for pump in ${ZRING_E2E_PUMPS:-splice copy}; do
  log "--- pump $pump"
  start_zring --pump "$pump"

  client_ok "$NS_C" xfer --host "$S4" --port 8080 --up "$big" --down "$big"
  wait_access 1
  line="$(access_to "$S4:8080" | head -n1)"
  [ -n "$line" ] || fail "$pump: no access line for dst=$S4:8080"
  log "zring: $line"
  [ "$(access_field "$line" dir)" = outbound ] || fail "$pump: dir is not outbound: $line"
  [ "$(access_field "$line" up_bytes)" = "$want_up" ] || fail "$pump: up_bytes != $want_up: $line"
  [ "$(access_field "$line" down_bytes)" = "$want_down" ] || fail "$pump: down_bytes != $want_down: $line"
  [ "$(access_field "$line" error)" = - ] || fail "$pump: error set on a clean transfer: $line"

  seed="${ZRING_E2E_SEED:-$RANDOM}"
  client_ok "$NS_C" many --host "$S4" --port 8080 --conns 100 --seed "$seed"
  wait_access 101
  errors="$(grep 'msg=access' "$ZLOG" | grep -vc ' error=-' || true)"
  [ "$errors" -eq 0 ] || fail "$pump: $errors access lines carry an error"

  # 300000 B/s: zrproto paces in rate/20 = 15000-byte writes. A 64 KiB cap
  # on send buffers in the client pod (loopback would otherwise grow zring's
  # toward the client past the whole transfer) makes the stall fill it.
  wmem="$(ip netns exec "$NS_C" sysctl -n net.ipv4.tcp_wmem)"
  ip netns exec "$NS_C" sysctl -qw net.ipv4.tcp_wmem="4096 16384 65536"
  client_ok "$NS_C" xfer --host "$S4" --port 8080 --up 4096 --down $((1 << 20)) \
    --down-rate 300000 --stall 2 --rcvbuf 4096
  ip netns exec "$NS_C" sysctl -qw net.ipv4.tcp_wmem="$wmem"
  wait_access 102
  errors="$(grep 'msg=access' "$ZLOG" | grep -vc ' error=-' || true)"
  [ "$errors" -eq 0 ] || fail "$pump: slow reader: an access line carries an error"
  stop_zring
done

pass "100 MiB each way, 100 concurrent connections and small writes into a slow reader intact (pumps: ${ZRING_E2E_PUMPS:-splice copy})"
