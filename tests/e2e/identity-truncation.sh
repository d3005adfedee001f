#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: an identity too long for zring's tunnel buffers is refused whole,
# never cut (issue 17). A's config says the server workload's service
# account is 218 'a's followed by 30 'b's (an identity of 285 characters);
# the zring answering on the server pod's :15008 (B) holds a certificate of
# the same trust domain whose service account is only the 218 'a's: exactly
# the first 255 characters of the identity A must verify. Cut to 255, the
# two would compare equal and A would send the client's bytes to a server
# that is not who the config says. A must refuse the tunnel ("identity too
# long"), the client must get nothing back, and the server never a
# connection.
# And the other way: a client certificate whose first spiffe:// SAN is too
# long for zring's buffer (service account of 250 'c's) and whose second is
# .../sa/client. Its identity is not .../sa/client: B must refuse it (two
# spiffe:// SANs name no single identity, and the long one does not fit),
# not skip to the short one and authorize it as .../sa/client, as it did.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin identity-truncation
hbone_topology
prefix="spiffe://cluster.local/ns/default/sa/"
short="$(printf 'a%.0s' $(seq 1 $((255 - ${#prefix}))))"
long="${short}$(printf 'b%.0s' $(seq 1 30))"
[ $((${#prefix} + ${#short})) -eq 255 ] || fail "bad test identity length"
certs="$E2E_TMP/certs"
hbone_certs "$certs" client "$short"
longc="$(printf 'c%.0s' $(seq 1 250))"
certs_sh workload "$certs" --ns default --sa "$longc" --san "$ID_CLIENT" >/dev/null
hbone_config "$E2E_TMP/a.json" client "$long"	# what A must verify
hbone_config "$E2E_TMP/b.json" client "$short"	# who B really is
start_echo 7000
zr_start A "$NS_C" --config "$E2E_TMP/a.json" --certs "$certs"
zr_start B "$NS_S" --config "$E2E_TMP/b.json" --certs "$certs"

client_ok "$NS_C" probe --host "$S4" --port 7000 --within 5 --send 100
wait_until 5 at_least 1 access_lines_in "$(zr_log A)" "$S4:7000" || fail "A logged no access line"
line="$(access_in "$(zr_log A)" "$S4:7000" | tail -n1)"
log "A: $line"
[[ "$(access_field "$line" error)" == *"too long"* ]] || fail "A's access line does not say the identity is too long: $line"
[ "$(echo_opened)" = 0 ] || fail "the server behind B saw $(echo_opened) connection(s)"

lc="$certs/cluster.local/ns/default/sa/$longc"
out="$(h2client "$NS_C" --addr "$S4:15008" --mark 0x539 --cert "$lc/cert-chain.pem" --key "$lc/key.pem" \
  --ca "$certs/root-cert.pem" --authority "$S4:7000" --expect refused)" ||
  fail "a client whose first SAN is too long was not refused: $out"
log "long first SAN: $out"
[ "$(echo_opened)" = 0 ] || fail "the server behind B saw a connection from the long-SAN client"
wait_until 5 at_least 1 zr_count B 'peer certificate has more than one spiffe identity' ||
  fail "B does not say why it refused the long-SAN client"
hbone_pass "an identity that does not fit is refused whole, never compared cut nor skipped"
