#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: zring's own traffic is never captured again, and what must not
# be captured is not.
#   - each client connection yields exactly one access line and one server
#     connection (a loop would multiply both), and the mark-exempt rule
#     (zring's SO_MARK 0x539 upstream sockets) counted those connections;
#   - direct connections to zring's own listeners are refused (closed) rather
#     than proxied to themselves, and zring stays healthy afterwards;
#   - an --exclude-outbound-ports port and loopback traffic bypass zring.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly PORT=8080 EXCLUDED=8081 LOCAL=7070 N=10

e2e_begin no-loop
e2e_topology
install_capture --exclude-outbound-ports "$EXCLUDED"
start_server "$NS_S" "$PORT" "$S4" "$S6"
start_server "$NS_S" "$EXCLUDED" "$S4"
start_server "$NS_C" "$LOCAL" 127.0.0.1
start_zring

for ((i = 0; i < N; i++)); do
  client_ok "$NS_C" xfer --host "$S4" --port "$PORT" --up 10000 --down 10000
done
client_ok "$NS_C" xfer --host "$S6" --port "$PORT" --up 10000 --down 10000
wait_access $((N + 1))
sleep 1   # a loop would keep adding lines; give it the time to show
[ "$(access_count)" -eq $((N + 1)) ] ||
  fail "expected exactly $((N + 1)) access lines for $((N + 1)) connections, got $(access_count)"
[ "$(server_conns "$PORT")" -eq $((N + 1)) ] ||
  fail "server saw $(server_conns "$PORT") connections for $((N + 1)) client connections"
pkts="$(rule_packets iptables ZRING_OUTPUT 'zring: own upstream traffic')"
[ "${pkts:-0}" -ge "$N" ] || fail "IPv4 mark-exempt rule counted ${pkts:-0} packets, want >= $N"
pkts6="$(rule_packets ip6tables ZRING_OUTPUT 'zring: own upstream traffic')"
[ "${pkts6:-0}" -ge 1 ] || fail "IPv6 mark-exempt rule counted ${pkts6:-0} packets, want >= 1"
log "ok: one access line per connection; mark-exempt rule counted $pkts (v4) and $pkts6 (v6)"

# Straight at zring's own listeners: closed, never proxied to themselves.
before="$(access_count)"
for target in "127.0.0.1 15001" "$C4 15001" "::1 15001" "$C6 15001" "$C4 15006"; do
  read -r host port <<<"$target"
  out="$(client "$NS_C" probe --host "$host" --port "$port" --within 2)" ||
    fail "connection to zring's own $host:$port was not closed promptly ($out)"
  log "ok: own listener $host:$port: $out"
done
sleep 1
after="$(access_count)"
[ $((after - before)) -le 5 ] ||
  fail "5 connections to zring's own ports produced $((after - before)) access lines (a loop?)"
proc_alive "$ZPID" || fail "zring died after connections to its own ports"
client_ok "$NS_C" xfer --host "$S4" --port "$PORT" --up 10000 --down 10000

# Not captured: the excluded port and loopback.
before="$(access_count)"
client_ok "$NS_C" xfer --host "$S4" --port "$EXCLUDED" --up 1000 --down 1000
client_ok "$NS_C" xfer --host 127.0.0.1 --port "$LOCAL" --up 1000 --down 1000
sleep 0.5
[ "$(access_count)" -eq "$before" ] || fail "excluded or loopback traffic went through zring"
[ "$(server_conns "$EXCLUDED")" -eq 1 ] || fail "server on excluded port $EXCLUDED saw no connection"

pass "no capture loop; own ports refused; exclusions honoured"
