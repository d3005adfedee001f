#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: L4 authorization through the HBONE tunnel. zring B (server pod)
# decides with the client's mTLS identity
# (spiffe://cluster.local/ns/default/sa/client); zring A (client pod) gets
# 401 for a denied CONNECT and resets its client.
#   - 8080: allow-client (principals Exact .../sa/client) allows it;
#   - 8081: no Allow policy matches: 401, B's access line says so;
#   - 8082: allow-client matches but deny-8082 (Deny) wins: policy=default/deny-8082;
#   - 8083: allow-other only admits .../sa/other (principal prefix match): refused;
#   - 8084: allow-ns (namespaces Suffix "ault") and 8085: allow-sa
#     (serviceAccounts default/client) allow it;
#   - 8086: deny-not-sa (Deny, notServiceAccounts default/client) does not
#     match the client, allow-client-8086 allows it;
#   - a WorkloadSelector policy that the server workload lists
#     (deny-selected, port 8087) denies; a Namespace policy of another
#     namespace (deny-elsewhere, port 8080) does not apply;
#   - streams held open to an echo server (7000) are reset when B's config
#     gains a Deny for them: A's clients see their connections end.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin policy-hbone
hbone_topology
certs="$E2E_TMP/certs"
hbone_certs "$certs"
cfg="$E2E_TMP/w.json"
P='cluster.local/ns/default/sa'
cat >"$cfg" <<JSON
{"workloads":[
  {"uid":"c1","name":"client","namespace":"default","serviceAccount":"client","workloadIps":["$C4"],"protocol":"HBONE"},
  {"uid":"s1","name":"server","namespace":"default","serviceAccount":"server","workloadIps":["$S4"],"protocol":"HBONE",
   "authorizationPolicies":["default/deny-selected"]}
],"services":[],"policies":[
  {"name":"allow-client","namespace":"default","scope":"Namespace","action":"Allow",
   "rules":[[[{"principals":[{"Exact":"$P/client"}]}],[{"destinationPorts":[8080,8082]}]]]},
  {"name":"deny-8082","namespace":"default","scope":"Namespace","action":"Deny",
   "rules":[[[{"destinationPorts":[8082]}]]]},
  {"name":"allow-other","namespace":"default","scope":"Namespace","action":"Allow",
   "rules":[[[{"principals":[{"Prefix":"$P/other"}],"destinationPorts":[8083]}]]]},
  {"name":"allow-ns","namespace":"default","scope":"Namespace","action":"Allow",
   "rules":[[[{"namespaces":[{"Suffix":"ault"}],"destinationPorts":[8084]}]]]},
  {"name":"allow-sa","namespace":"default","scope":"Namespace","action":"Allow",
   "rules":[[[{"serviceAccounts":[{"namespace":"default","serviceAccount":"client"}],"destinationPorts":[8085]}]]]},
  {"name":"deny-not-sa","namespace":"default","scope":"Namespace","action":"Deny",
   "rules":[[[{"notServiceAccounts":[{"namespace":"default","serviceAccount":"client"}],"destinationPorts":[8086]}]]]},
  {"name":"allow-client-8086","namespace":"default","scope":"Namespace","action":"Allow",
   "rules":[[[{"principals":[{"Presence":[]}],"destinationPorts":[8086,8087]}]]]},
  {"name":"deny-selected","namespace":"default","scope":"WorkloadSelector","action":"Deny",
   "rules":[[[{"destinationPorts":[8087]}]]]},
  {"name":"deny-elsewhere","namespace":"other","scope":"Namespace","action":"Deny",
   "rules":[[[{"destinationPorts":[8080]}]]]},
  {"name":"allow-echo","namespace":"default","scope":"Namespace","action":"Allow",
   "rules":[[[{"principals":[{"Exact":"$P/client"}],"destinationPorts":[7000]}]]]}
]}
JSON
for p in 8080 8081 8082 8083 8084 8085 8086 8087; do start_server "$NS_S" "$p" "$S4"; done

zr_start A "$NS_C" --config "$cfg" --certs "$certs"
cfg_b="$E2E_TMP/b.json"	# B's own copy: the live re-evaluation below changes it alone
cp "$cfg" "$cfg_b"
zr_start B "$NS_S" --config "$cfg_b" --certs "$certs"

# allowed PORT / refused PORT POLICY: through the tunnel, decided by B; a
# refused client's zring (A) logs the 401 it got.
allowed() { policy_allowed "$(zr_log B)" "$NS_C" "$S4:$1" src_identity="$ID_CLIENT"; }
refused() {
  local a
  policy_refused "$(zr_log B)" "$NS_C" "$S4:$1" "$2" dir=hbone src_identity="$ID_CLIENT"
  a="$(access_in "$(zr_log A)" "$S4:$1" | tail -n1)"
  [[ "$(access_field "$a" error)" == *401* ]] || fail "$1: A's access line does not say 401: $a"
}

allowed 8080
refused 8081 -
refused 8082 default/deny-8082
refused 8083 -
allowed 8084
allowed 8085
allowed 8086
refused 8087 default/deny-selected
# A tunnel that carried refusals still carries allowed streams.
allowed 8080

# Live re-evaluation through the tunnel: B alone gets a config that denies
# the held streams.
start_echo 7000
hold_start held 7000
hold open 3
hold ping 5
[ "$(hf echoed)" = 3 ] || fail "held streams do not echo: $ANSWER"
sed 's/{"name":"deny-8082"/{"name":"deny-echo","namespace":"default","scope":"Namespace","action":"Deny","rules":[[[{"destinationPorts":[7000]}]]]},\n  &/' "$cfg" >"$cfg_b.tmp"
grep -q deny-echo "$cfg_b.tmp" || fail "could not write B's new config"
mv "$cfg_b.tmp" "$cfg_b"
wait_until 5 at_least 2 zr_count B 'msg="config loaded"' || fail "B did not load the config with deny-echo"
wait_until 5 at_least 3 access_lines_in "$(zr_log B)" "$S4:7000" ||
  fail "B did not close the held streams: $(access_lines_in "$(zr_log B)" "$S4:7000") lines"
while read -r line; do
  [ "$(access_field "$line" policy)" = default/deny-echo ] || fail "held stream's line does not name deny-echo: $line"
done < <(access_in "$(zr_log B)" "$S4:7000")
hold ping 3
[ "$(hf open)" = 0 ] && [ "$(hf broken)" = 3 ] || fail "A's clients still hold their streams: $ANSWER"
hold_stop
hbone_pass "HBONE streams are authorized by the client's mTLS identity; denials are 401 and name the policy"
