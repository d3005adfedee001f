#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: L4 authorization on the plaintext inbound path (:15006). zring
# runs in the "client" pod, whose workload has policies; connections come
# from the server pod (10.77.0.2 / fd00:77::2), so the only source facts are
# addresses: identity rules can never match here.
#   - 9090: allowed by allow-from-peer (sourceIps 10.77.0.2/32, ports 9090/9092);
#   - 9091: no Allow policy matches: refused, the access line says so;
#   - 9092: allowed by allow-from-peer but denied by deny-9092, which wins;
#     the access line names default/deny-9092;
#   - 9093: only allow-principal (principals ...) could allow it: a
#     plaintext connection has no identity, so it is refused;
#   - 9094: notSourceIps: allow-not-peer allows everyone but 10.77.0.2;
#   - [fd00:77::1]:9090 over IPv6: allow-from-peer lists only the IPv4
#     source, so IPv6 from the same pod is refused;
#   - 9095: a dry-run Deny matches: logged, not enforced.
# Every refused client sees its connection end without data, promptly, and
# the server behind a refused port never sees a connection.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin policy-inbound
e2e_topology
install_capture
cfg="$E2E_TMP/w.json"
cat >"$cfg" <<JSON
{"workloads":[
  {"uid":"c1","name":"app","namespace":"default","serviceAccount":"app",
   "workloadIps":["$C4","$C6"],"protocol":"TCP"}
],"services":[],"policies":[
  {"name":"allow-from-peer","namespace":"default","scope":"Namespace","action":"Allow",
   "rules":[[[{"sourceIps":["$S4/32"]}],[{"destinationPorts":[9090,9092,9095]}]]]},
  {"name":"deny-9092","namespace":"default","scope":"Namespace","action":"Deny",
   "rules":[[[{"destinationPorts":[9092]}]]]},
  {"name":"allow-principal","namespace":"default","scope":"Namespace","action":"Allow",
   "rules":[[[{"principals":[{"Exact":"cluster.local/ns/default/sa/peer"}],"destinationPorts":[9093]}]]]},
  {"name":"allow-not-peer","namespace":"default","scope":"Namespace","action":"Allow",
   "rules":[[[{"notSourceIps":["$S4/32"],"destinationPorts":[9094]}]]]},
  {"name":"dry-deny-9095","namespace":"default","scope":"Namespace","action":"Deny","dryRun":true,
   "rules":[[[{"destinationPorts":[9095]}]]]}
]}
JSON
for p in 9090 9091 9092 9093 9094 9095; do start_server "$NS_C" "$p" "$C4" "$C6"; done
start_zring --config "$cfg"

# allowed ADDR / refused ADDR POLICY: from the server pod to ADDR, decided
# by zring's inbound path.
allowed() { policy_allowed "$ZLOG" "$NS_S" "$1" dir=inbound policy=; }
refused() { policy_refused "$ZLOG" "$NS_S" "$1" "$2" dir=inbound; }

allowed "$C4:9090"
refused "$C4:9091" -
refused "$C4:9092" default/deny-9092
refused "$C4:9093" -
refused "$C4:9094" -
refused "[$C6]:9090" -
allowed "$C4:9095"
grep 'msg="policy dry run"' "$ZLOG" | grep -q 'policy=default/dry-deny-9095' ||
  fail "no dry-run line for default/dry-deny-9095"

# zring is still fine after the refusals.
allowed "$C4:9090"
stop_zring
pass "plaintext inbound connections are allowed and denied by address policies; identity rules never match"
