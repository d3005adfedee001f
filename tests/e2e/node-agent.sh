#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: node-agent mode. Node 1 runs one zring (--node-agent --node
# node-1) for three pods; node 2 runs its own for one pod ("remote"). Every
# pod has the sidecar capture rules and no zring inside it.
#   1. each pod's 15001/15006/15008 listen inside the pod's namespace, one
#      socket per worker and family, owned by its node's zring (node 1's
#      zring opens nothing in node 2's pod and vice versa); the nodes'
#      own namespaces have no listener; a pod whose namespace does not exist
#      is logged (and counted) and the others are served;
#   2. pod1 -> pod2 on the same node, HBONE: through pod1's outbound listener
#      and pod2's 15008, both access lines in node 1's log with their pod,
#      identities both ways, bytes sha256-checked both ways;
#      pod1 using an address of another workload (that has a certificate)
#      gets no identity: a pod speaks only as itself;
#   3. pod1 -> remote (node 2), and remote -> pod1: mTLS tunnels between the
#      nodes' zrings, each side's access line names its pod;
#   4. pod1 -> pod3 (a TCP workload): plaintext, captured on pod3's 15006;
#   5. zring's sockets for a pod live in the pod's namespace and carry the
#      mark: the pods' mark-exempt OUTPUT rules counted them, the pooled
#      tunnels are open inside pod1's namespace, the nodes' namespaces have
#      no zring connection at all;
#   6. SIGTERM: both exit 0 and every pod's listeners are gone.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly WORKERS=2
readonly MIB=$((1 << 20))

e2e_begin node-agent
command -v openssl >/dev/null || skip "openssl not found"
na_node 1
na_node 2
na_link_nodes 1 2
na_pod pod1 1 11
na_pod pod2 1 12
na_pod pod3 1 13
na_pod remote 2 11

certs="$E2E_TMP/certs"
hbone_certs "$certs" pod1 pod2 pod3 remote spoof
CFG="$E2E_TMP/workloads.json"
na_config "$CFG" \
  "$(na_workload pod1 HBONE node-1 "$(na_pod_ip pod1)")" \
  "$(na_workload pod2 HBONE node-1 "$(na_pod_ip pod2)")" \
  "$(na_workload pod3 TCP node-1 "$(na_pod_ip pod3)")" \
  "$(na_workload ghost HBONE node-1 10.78.1.99)" \
  "$(na_workload remote HBONE node-2 "$(na_pod_ip remote)")" \
  "$(na_workload spoof HBONE node-3 10.78.1.50)"
for p in pod1 pod2 pod3 remote; do na_server "$p" 8080; done

args=(--node-agent --config "$CFG" --certs "$certs" --workers "$WORKERS")
zr_start N1 "$(na_node_ns 1)" "${args[@]}" --node node-1
zr_start N2 "$(na_node_ns 2)" "${args[@]}" --node node-2
spiffe_of() { echo "spiffe://cluster.local/ns/default/sa/$1"; }

# --- 1: listeners inside the pods -------------------------------------------------
per=$((WORKERS * 2))    # one per worker, IPv4 and IPv6
for p in pod1 pod2 pod3; do na_expect_listeners "$p" "$per" N1 15008; done
na_expect_listeners remote "$per" N2 15008
# zring's own endpoints (admin 15000, metrics 15020, readiness 15021) stay in
# its own namespace, like ztunnel's; no proxy listener is there.
endpoints='( sport = :15000 or sport = :15020 or sport = :15021 )'
for n in 1 2; do
  own="$(ip netns exec "$(na_node_ns "$n")" ss -Hltn "not $endpoints" | grep -c . || true)"
  [ "$own" -eq 0 ] || fail "node $n's own namespace has $own proxy listening sockets, want none"
  eps="$(ip netns exec "$(na_node_ns "$n")" ss -Hltn "$endpoints" | grep -c . || true)"
  [ "$eps" -eq 3 ] || fail "node $n's own namespace has $eps endpoint listeners, want 3 (15000, 15020, 15021)"
done
for n in N1 N2; do
  grep -q 'msg=ready .*mode=node-agent' "$(zr_log "$n")" || fail "$n: no ready line with mode=node-agent"
done
[ "$(zr_count N1 'msg="pod added"')" -eq 3 ] || fail "N1: want 3 pods added: $(grep 'pod added' "$(zr_log N1)")"
[ "$(zr_count N2 'msg="pod added"')" -eq 1 ] || fail "N2: want 1 pod added"
ghost="$(grep 'msg="pod netns unavailable"' "$(zr_log N1)" || true)"
[[ "$ghost" == *"pod=default/ghost"*"No such file or directory"*"failures=1"* ]] ||
  fail "N1: the missing namespace of pod ghost was not reported: ${ghost:-nothing}"
[ "$(zr_count N2 'pod=default/ghost')" -eq 0 ] || fail "N2 looked at node 1's pod ghost"
log "ok: listeners: $per per port in each pod, owned by its node's zring; ghost reported"

# --- 2: pod1 -> pod2, same node, HBONE ----------------------------------------------
size=$((32 * MIB))
header="ZR1 $size $size 0"
want_up=$((size + ${#header} + 1))
want_down=$((size + 64 + 1 + 64 + 1 + ${#size} + 1))
client_ok "$(na_pod_ns pod1)" xfer --host "$(na_pod_ip pod2)" --port 8080 --up "$size" --down "$size"
wait_until 10 at_least 1 na_count N1 pod2 hbone || fail "N1: no hbone access line for pod2"
out="$(na_access N1 pod1 outbound | head -n1)"
in="$(na_access N1 pod2 hbone | head -n1)"
log "N1 outbound: $out"
log "N1 hbone:    $in"
[ "$(access_field "$out" dst)" = "$(na_pod_ip pod2):8080" ] || fail "pod1 -> pod2: outbound dst: $out"
[ "$(access_field "$out" dst_identity)" = "$(spiffe_of pod2)" ] || fail "pod1 -> pod2: dst_identity: $out"
[ "$(access_field "$out" security)" = mutual_tls ] || fail "pod1 -> pod2: not mutual_tls: $out"
[ "$(access_field "$out" up_bytes)" = "$want_up" ] || fail "pod1 -> pod2: up_bytes != $want_up: $out"
[ "$(access_field "$out" down_bytes)" = "$want_down" ] || fail "pod1 -> pod2: down_bytes != $want_down: $out"
src="$(access_field "$out" src)"
[[ "$src" == "$(na_pod_ip pod1)":* ]] || fail "pod1 -> pod2: src is not pod1: $out"
# pod2's zring takes the source from the tunnel's TCP peer: pod1's address
# (its tunnel is opened inside pod1's namespace); the client's own socket
# arrives only as information.
[[ "$(access_field "$in" src)" == "$(na_pod_ip pod1)":* ]] || fail "pod2's hbone line: src is not pod1: $in"
[ "$(access_field "$in" forwarded_for)" = "$src" ] || fail "pod2's hbone line: forwarded_for is not $src: $in"
[ "$(access_field "$in" src_identity)" = "$(spiffe_of pod1)" ] || fail "pod2's hbone line: src_identity: $in"
[ "$(access_field "$in" dst)" = "$(na_pod_ip pod2):8080" ] || fail "pod2's hbone line: dst: $in"
[ "$(access_field "$in" up_bytes)" = "$want_up" ] || fail "pod2's hbone line: up_bytes: $in"
[ "$(access_field "$in" down_bytes)" = "$want_down" ] || fail "pod2's hbone line: down_bytes: $in"
for l in "$out" "$in"; do
  [ "$(access_field "$l" error)" = - ] || fail "pod1 -> pod2: error logged: $l"
done
# A node agent's own endpoints are in the node's namespace: a pod's 15021 is
# the application's, and a CONNECT to it is carried (a sidecar refuses it).
na_server pod2 15021
client_ok "$(na_pod_ns pod1)" xfer --host "$(na_pod_ip pod2)" --port 15021 --up 1000 --down 1000
wait_until 5 grep -q "dir=hbone .*dst=$(na_pod_ip pod2):15021 .*error=-" "$(zr_log N1)" ||
  fail "pod1 -> pod2:15021 (the application's port) was not carried over HBONE"

# pod1 borrows spoof's address: zring must not lend it spoof's identity.
ip -n "$(na_pod_ns pod1)" addr add 10.78.1.50/24 dev eth0
got="$(ip netns exec "$(na_pod_ns pod1)" "$PY" - "$(na_pod_ip pod2)" <<'PYEOF'
import socket, sys
s = socket.socket()
s.settimeout(5)
s.bind(("10.78.1.50", 0))
try:
    # The reset can beat connect() back to us: it counts the same.
    s.connect((sys.argv[1], 8080))
    s.sendall(b"ZR1 10 10 0\n" + b"x" * 10)
    print("data" if s.recv(100) else "eof")
except OSError as e:
    print("reset" if isinstance(e, ConnectionResetError) else "error %s" % e)
PYEOF
)"
[ "$got" = reset ] || fail "pod1 speaking from spoof's address: want a reset, got $got"
wait_until 5 grep -q 'src=10.78.1.50:.*error="source address is not the pod.s own' "$(zr_log N1)" ||
  fail "N1 did not log the refused source address: $(grep 10.78.1.50 "$(zr_log N1)")"
ip -n "$(na_pod_ns pod1)" addr del 10.78.1.50/24 dev eth0
log "ok: pod1 cannot speak as spoof from spoof's address"

# --- 3: across nodes, both ways ------------------------------------------------------
client_ok "$(na_pod_ns pod1)" xfer --host "$(na_pod_ip remote)" --port 8080 --up "$size" --down "$size"
client_ok "$(na_pod_ns remote)" xfer --host "$(na_pod_ip pod1)" --port 8080 --up "$MIB" --down "$size"
wait_until 10 at_least 1 na_count N2 remote hbone || fail "N2: no hbone access line for remote"
wait_until 10 at_least 1 na_count N1 pod1 hbone || fail "N1: no hbone access line for pod1"
out="$(na_access N1 pod1 outbound | grep -F " dst=$(na_pod_ip remote):8080 " | head -n1)"
in="$(na_access N2 remote hbone | head -n1)"
[ -n "$out" ] || fail "N1: no outbound line from pod1 to remote"
[ "$(access_field "$out" dst_identity)" = "$(spiffe_of remote)" ] || fail "pod1 -> remote: dst_identity: $out"
[ "$(access_field "$in" src_identity)" = "$(spiffe_of pod1)" ] || fail "pod1 -> remote: N2's src_identity: $in"
[ "$(access_field "$in" up_bytes)" = "$want_up" ] || fail "pod1 -> remote: N2's up_bytes: $in"
[ "$(access_field "$in" down_bytes)" = "$want_down" ] || fail "pod1 -> remote: N2's down_bytes: $in"
back_out="$(na_access N2 remote outbound | head -n1)"
back_in="$(na_access N1 pod1 hbone | head -n1)"
[ "$(access_field "$back_out" dst_identity)" = "$(spiffe_of pod1)" ] || fail "remote -> pod1: N2's dst_identity: $back_out"
[ "$(access_field "$back_in" src_identity)" = "$(spiffe_of remote)" ] || fail "remote -> pod1: N1's src_identity: $back_in"
for l in "$out" "$in" "$back_out" "$back_in"; do
  [ "$(access_field "$l" error)" = - ] || fail "across nodes: error logged: $l"
done
log "ok: pod1 <-> remote through the nodes' zrings"

# --- 4: pod1 -> pod3, a TCP workload: plaintext into pod3's 15006 -----------------------
client_ok "$(na_pod_ns pod1)" xfer --host "$(na_pod_ip pod3)" --port 8080 --up "$size" --down "$MIB"
wait_until 10 at_least 1 na_count N1 pod3 inbound || fail "N1: no inbound access line for pod3"
out="$(na_access N1 pod1 outbound | grep -F " dst=$(na_pod_ip pod3):8080 " | head -n1)"
in="$(na_access N1 pod3 inbound | head -n1)"
[ "$(access_field "$out" route)" = workload ] || fail "pod1 -> pod3: route: $out"
[ "$(access_field "$out" security)" = none ] || fail "pod1 -> pod3 went through a tunnel: $out"
# The upstream socket was made in pod1's namespace: pod3 sees it come from
# pod1's address (from the node's it would be 10.78.1.1), on a port of its own.
[[ "$(access_field "$in" src)" == "$(na_pod_ip pod1)":* ]] || fail "pod3's inbound line: src is not pod1: $in"
[ "$(access_field "$in" src)" != "$(access_field "$out" src)" ] || fail "pod3's inbound line: src is the client's own socket: $in"
[ "$(access_field "$in" up_bytes)" = "$(access_field "$out" up_bytes)" ] || fail "pod3's inbound line: bytes: $in"
log "ok: pod1 -> pod3 in plaintext, captured on pod3's 15006"

# --- 5: sockets in the pods' namespaces, marked ------------------------------------------
for p in pod1 pod2 pod3 remote; do
  n="$(na_mark_packets "$p")"
  log "pod $p: the mark-exempt OUTPUT rule counted ${n:-?} packets"
  [ "${n:-0}" -gt 0 ] || fail "pod $p: no marked packet left through its OUTPUT chain"
done
tunnels="$(ip netns exec "$(na_pod_ns pod1)" ss -Htnp state established "dport = :15008" | grep -c 'zring' || true)"
[ "$tunnels" -ge 2 ] || fail "pod1's namespace has $tunnels zring tunnels open (to pod2 and remote), want >= 2"
for n in 1 2; do
  conns="$(ip netns exec "$(na_node_ns "$n")" ss -Htanp "not $endpoints" | grep -c zring || true)"
  [ "$conns" -eq 0 ] || fail "node $n's own namespace has $conns zring sockets, want none"
done
log "ok: pooled tunnels open inside pod1; no zring socket in the nodes' namespaces"

# --- 6: SIGTERM -------------------------------------------------------------------------
zr_stop N1
zr_stop N2
for p in pod1 pod2 pod3 remote; do na_expect_listeners "$p" 0 -; done
soft_check
pass "one zring per node serves its pods inside their namespaces: same node, across nodes, plaintext"
