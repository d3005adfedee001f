#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: IPv6. The outbound path through ip6tables REDIRECT and zring's
# [::]:15001 listener (original destination via IP6T_SO_ORIGINAL_DST):
# a large transfer both ways and 100 concurrent connections to
# [fd00:77::2], hashes checked, and access lines naming [addr]:port.
# The server listens on IPv6 only, so nothing can pass by way of IPv4.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin ipv6
e2e_topology
install_capture
start_server "$NS_S" 8080 "$S6"
start_zring

big=$((50 << 20))
client_ok "$NS_C" xfer --host "$S6" --port 8080 --up "$big" --down "$big"
wait_access 1
line="$(access_to "[$S6]:8080" | head -n1)"
[ -n "$line" ] || fail "no access line for dst=[$S6]:8080: $(grep msg=access "$ZLOG")"
log "zring: $line"
[ "$(access_field "$line" dir)" = outbound ] || fail "dir is not outbound: $line"
src="$(access_field "$line" src)"
[[ "$src" == "[$C6]:"* ]] || fail "src is not the client's [$C6]:port: $line"
[ "$(access_field "$line" error)" = - ] || fail "error set on a clean transfer: $line"

client_ok "$NS_C" many --host "$S6" --port 8080 --conns 100 --max-up $((1 << 20)) --max-down $((1 << 20))
wait_access 101
[ "$(access_to "[$S6]:8080" | wc -l)" -eq 101 ] || fail "expected 101 access lines to [$S6]:8080"
errors="$(grep 'msg=access' "$ZLOG" | grep -vc ' error=-' || true)"
[ "$errors" -eq 0 ] || fail "$errors access lines carry an error"

# The IPv6 capture really happened in ip6tables (not some IPv4 fallback).
pkts="$(rule_packets ip6tables ZRING_OUTPUT 'zring: outbound capture')"
[ "${pkts:-0}" -ge 101 ] || fail "ip6tables outbound capture counted ${pkts:-0} packets, want >= 101"

pass "IPv6 outbound intact ($big bytes each way, 100 concurrent connections)"
