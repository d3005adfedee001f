#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: the upstream connect fails, and the client hears of it promptly.
#   refused:      a closed port on the server pod (it answers with a reset);
#   unreachable:  an address routed to the server pod, which silently drops
#                 it, so only zring's --connect-timeout 1s can end the wait.
# The client's own connect() always succeeds (iptables hands it to zring), so
# "promptly" means: EOF or reset within a few seconds, far below the 10 s
# default connect timeout. Each failure must still get an access line with
# an error.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Documentation prefixes (RFC 5737, RFC 3849): nobody answers there. Routed
# into the server pod only, so the packets never leave our namespaces.
readonly BLACKHOLE4=203.0.113.0/24 DEAD4=203.0.113.7
readonly BLACKHOLE6=2001:db8:77::/64 DEAD6=2001:db8:77::7
readonly CLOSED_PORT=9

e2e_begin connect-fail
e2e_topology
ip -n "$NS_C" route add "$BLACKHOLE4" via "$S4"
ip -n "$NS_C" -6 route add "$BLACKHOLE6" via "$S6"
# Drop before routing in the server pod: no ICMP error comes back, whatever
# the pod's forwarding setting is.
ns_s iptables -w 10 -t raw -A PREROUTING -d "$BLACKHOLE4" -j DROP
ns_s ip6tables -w 10 -t raw -A PREROUTING -d "$BLACKHOLE6" -j DROP
install_capture
start_zring --connect-timeout 1s

# probe NAME HOST PORT WITHIN_S: the connection must end (EOF/reset) in time.
probe() {
  local name="$1" host="$2" port="$3" within="$4" out
  out="$(client "$NS_C" probe --host "$host" --port "$port" --within "$within")" ||
    fail "$name: client not closed within ${within}s ($out)"
  log "ok: $name: $out"
}

# error= of the access line for dst ADDR, which must exist and be set.
expect_access_error() {
  local name="$1" addr="$2" line err
  wait_until 5 at_least 1 access_lines_to "$addr" || fail "$name: no access line for dst=$addr"
  line="$(access_to "$addr" | tail -n1)"
  err="$(access_field "$line" error)"
  if [ -z "$err" ] || [ "$err" = - ]; then fail "$name: access line has no error: $line"; fi
  log "zring: $line"
}

probe "refused (IPv4)" "$S4" "$CLOSED_PORT" 3
expect_access_error "refused (IPv4)" "$S4:$CLOSED_PORT"
probe "refused (IPv6)" "$S6" "$CLOSED_PORT" 3
expect_access_error "refused (IPv6)" "[$S6]:$CLOSED_PORT"

probe "unreachable (IPv4)" "$DEAD4" 80 4
expect_access_error "unreachable (IPv4)" "$DEAD4:80"
probe "unreachable (IPv6)" "$DEAD6" 80 4
expect_access_error "unreachable (IPv6)" "[$DEAD6]:80"

# Several at once: one slow connect must not hold up the others' verdicts.
pids=()
for i in 1 2 3 4 5; do
  client "$NS_C" probe --host "$DEAD4" --port $((8000 + i)) --within 4 >"$E2E_TMP/par-$i.out" &
  pids+=($!)
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || fail "parallel unreachable probe $((i + 1)): $(cat "$E2E_TMP/par-$((i + 1)).out")"
done
log "ok: 5 parallel unreachable connections closed within 4 s"

proc_alive "$ZPID" || fail "zring died"
pass "refused and unreachable upstreams close the client promptly"
