#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: the inbound path. A connection from the server pod to the client
# pod's own address is redirected by PREROUTING to zring's 15006 listener,
# which connects (marked, over lo) to the real local server in the client pod.
# Also: a port excluded with --exclude-inbound-ports bypasses zring.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly PORT=9090 EXCLUDED=9091

e2e_begin inbound
e2e_topology
install_capture --exclude-inbound-ports "$EXCLUDED"
# Servers in the *client* pod, the client in the server pod.
start_server "$NS_C" "$PORT" "$C4" "$C6"
start_server "$NS_C" "$EXCLUDED" "$C4"
start_zring

# inbound_ok ADDR HOST: one checked transfer from the server pod to HOST:PORT,
# which must show up as one inbound access line for dst=ADDR.
inbound_ok() {
  local addr="$1" host="$2" before line
  before="$(access_to "$addr" | wc -l)"
  client_ok "$NS_S" xfer --host "$host" --port "$PORT" --up $((8 << 20)) --down $((8 << 20))
  wait_until 5 at_least $((before + 1)) access_lines_to "$addr" ||
    fail "no access line for dst=$addr: the connection did not go through zring"
  line="$(access_to "$addr" | tail -n1)"
  log "zring: $line"
  [ "$(access_field "$line" dir)" = inbound ] || fail "dir is not inbound: $line"
  [ "$(access_field "$line" error)" = - ] || fail "error set on a clean transfer: $line"
}

inbound_ok "$C4:$PORT" "$C4"
inbound_ok "[$C6]:$PORT" "$C6"
[ "$(access_count)" -eq 2 ] || fail "expected exactly 2 access lines, got $(access_count)"

pkts="$(rule_packets iptables ZRING_PREROUTING 'zring: inbound capture')"
[ "${pkts:-0}" -ge 1 ] || fail "the IPv4 inbound capture rule counted no packets"
pkts="$(rule_packets ip6tables ZRING_PREROUTING 'zring: inbound capture')"
[ "${pkts:-0}" -ge 1 ] || fail "the IPv6 inbound capture rule counted no packets"

# The excluded port reaches its server directly: no access line.
client_ok "$NS_S" xfer --host "$C4" --port "$EXCLUDED" --up 1000 --down 1000
sleep 0.5
[ -z "$(access_to "$C4:$EXCLUDED")" ] || fail "excluded inbound port $EXCLUDED went through zring"
[ "$(server_conns "$EXCLUDED")" -eq 1 ] || fail "the server on $EXCLUDED saw no connection"

pass "inbound connections go through zring's 15006 listener; excluded ports bypass it"
