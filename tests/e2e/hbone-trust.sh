#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: zring B's :15008 decides only on what was authenticated, and
# never relays into zring itself. The client is python3-h2 with a valid
# certificate of the trust domain (default/client), talking to B straight
# from the client pod (10.77.0.1).
#   1. `forwarded: for=` is information, not proof: a client that forges an
#      address an Allow rule admits (10.77.0.99) is still denied by a
#      sourceIps Deny of its real address, and not admitted by the Allow;
#      B's access line has src = the TCP peer (10.77.0.1:port) and the
#      forged address only as forwarded_for;
#   2. a CONNECT to the local workload on one of zring's own ports (15001,
#      15006, 15008, 15000, 15020, 15021) gets 503 (ztunnel's answer to a
#      self call), never a tunnel into zring's own listeners;
#   3. control: an allowed CONNECT echoes bytes; B exits 0 on SIGTERM.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin hbone-trust
"$PY" -c 'import h2' 2>/dev/null || skip "python3-h2 not installed (Debian: apt-get install python3-h2)"
command -v openssl >/dev/null || skip "openssl not found"
e2e_topology
install_capture_in "$NS_S"
certs="$E2E_TMP/certs"
hbone_certs "$certs"
cdir="$certs/cluster.local/ns/default/sa/client"
FORGED=10.77.0.99
cfg="$E2E_TMP/w.json"
hbone_config "$cfg" client server '
  {"name":"deny-client-ip","namespace":"default","scope":"Namespace","action":"Deny",
   "rules":[[[{"sourceIps":["'"$C4"'/32"],"destinationPorts":[8080]}]]]},
  {"name":"allow-any-8080","namespace":"default","scope":"Namespace","action":"Allow",
   "rules":[[[{"principals":[{"Presence":[]}],"destinationPorts":[8080,7000]}]]]},
  {"name":"allow-forged-ip","namespace":"default","scope":"Namespace","action":"Allow",
   "rules":[[[{"sourceIps":["'"$FORGED"'/32"],"destinationPorts":[8081]}]]]}'
start_server "$NS_S" 8080 "$S4"
start_server "$NS_S" 8081 "$S4"
start_echo 7000
zr_start B "$NS_S" --config "$cfg" --certs "$certs"

# pyc EXPECT ARGS...: one CONNECT from the python client in the client pod.
pyc() {
  local want="$1" out
  shift
  out="$(h2client "$NS_C" --addr "$S4:15008" --cert "$cdir/cert-chain.pem" --key "$cdir/key.pem" \
    --ca "$certs/root-cert.pem" --expect-id "$ID_SERVER" --expect "$want" "$@")" ||
    fail "python client ($*): want $want, got: $out"
  log "ok: want $want ($*): ${out%% peer_id=*}"
}

# --- 1: a forged forwarded header changes nothing ------------------------------
pyc 401 --authority "$S4:8080" --forwarded "for=\"$FORGED:5555\""
pyc 401 --authority "$S4:8080" --forwarded "for=$FORGED:5556"
pyc 401 --authority "$S4:8081" --forwarded "for=\"$FORGED:5557\""
wait_until 5 at_least 3 zr_count B 'msg=access' || fail "B logged $(zr_count B msg=access) access lines, want 3"
for fwd in "$FORGED:5555" "$FORGED:5556" "$FORGED:5557"; do
  line="$(zr_access B | grep -F " forwarded_for=$fwd " | head -n1)"
  [ -n "$line" ] || fail "B: no access line with forwarded_for=$fwd: $(zr_access B)"
  log "B: $line"
  src="$(access_field "$line" src)"
  [[ "$src" == "$C4":* ]] || fail "B: src is not the TCP peer in the client pod: $line"
  [ "$(access_field "$line" response_flags)" = DENY ] || fail "B: response_flags is not DENY: $line"
  [ "$(access_field "$line" src_identity)" = "$ID_CLIENT" ] || fail "B: src_identity is not $ID_CLIENT: $line"
done
line="$(zr_access B | grep -F " forwarded_for=$FORGED:5555 ")"
[ "$(access_field "$line" policy)" = default/deny-client-ip ] ||
  fail "B: the deny did not come from deny-client-ip: $line"

# --- 2: zring's own ports on its own workload ------------------------------------
for port in 15001 15006 15008 15000 15020 15021; do
  pyc 503 --authority "$S4:$port"
done
n="$(zr_access B | grep -c 'error="destination is zring itself"' || true)"
[ "$n" -eq 6 ] || fail "B: $n access lines say 'destination is zring itself', want 6: $(zr_access B | tail -n6)"

# --- 3: control ------------------------------------------------------------------
pyc 200 --authority "$S4:7000" --forwarded "for=\"$FORGED:5558\"" --echo 65536
hbone_pass "forged forwarded: still denied, src = TCP peer; own ports: 503; allowed: echoed"
