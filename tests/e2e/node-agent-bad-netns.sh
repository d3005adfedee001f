#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: a node-agent zring (one node, TCP workloads) whose config names,
# as a pod's zringNetns, something that is not a network namespace.
#   1. p1 and p2 are served; p1 -> p2 is captured and proxied.
#   2. A config with two more pods is renamed in: "fifo", whose zringNetns
#      is a FIFO with no writer (opening it for reading would block for
#      ever, and the node agent opens namespaces on the control thread),
#      and "dev", whose zringNetns is /dev/null. Each is reported at once
#      ("pod netns unavailable" with the reason: a FIFO, a character
#      device) and not served; the new version applies; /healthz/ready and
#      /metrics answer within a second; p1 -> p2 still works and their
#      listeners never moved.
#   3. SIGTERM: zring exits 0 (the control thread is not stuck).
#   4. zring started on that config: ready, p1 and p2 served, the FIFO and
#      the device reported; SIGTERM exits 0.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly WORKERS=1 PER=2   # listening sockets per port: workers x (IPv4, IPv6)

e2e_begin node-agent-bad-netns
command -v curl >/dev/null || skip "curl not found"
na_node 1
na_pod p1 1 11
na_pod p2 1 12
na_server p2 8080
NODE="$(na_node_ns 1)"

CFG="$E2E_TMP/workloads.json"
FIFO="$E2E_TMP/fifo-netns"
mkfifo "$FIFO"
wl() { na_workload "$1" TCP node-1 "$2" "${3:-}"; }
na_config "$CFG" "$(wl p1 "$(na_pod_ip p1)")" "$(wl p2 "$(na_pod_ip p2)")"
zr_start N1 "$NODE" --node-agent --node node-1 --config "$CFG" --workers "$WORKERS"

version() {
  local v
  v="$(grep 'msg="config loaded"' "$(zr_log N1)" | tail -n1 | sed -n 's/.* version=\([0-9]*\).*/\1/p')"
  echo "${v:-0}"
}
xfer_ok() {
  client_ok "$(na_pod_ns p1)" xfer --host "$(na_pod_ip p2)" --port 8080 --up 100000 --down 100000 --timeout 10
}

# --- 1: served ---------------------------------------------------------------------
for p in p1 p2; do na_expect_listeners "$p" "$PER" N1; done
xfer_ok
wait_until 5 at_least 1 na_count N1 p1 outbound || fail "1: p1's connection was not proxied"
log "ok: 1: p1 and p2 served, p1 -> p2 proxied"

# --- 2: a FIFO and a device as namespaces -------------------------------------------
na_config "$CFG.new" "$(wl p1 "$(na_pod_ip p1)")" "$(wl p2 "$(na_pod_ip p2)")" \
  "$(wl fifo 10.78.1.21 "$FIFO")" "$(wl dev 10.78.1.22 /dev/null)"
mv -f "$CFG.new" "$CFG"
wait_until 5 at_least 2 version || fail "2: the new config was not applied"
unavailable() { grep 'msg="pod netns unavailable"' "$(zr_log N1)" | grep -F "pod=default/$1" || true; }
reported() { [ -n "$(unavailable "$1")" ]; }
for p in fifo dev; do wait_until 3 reported "$p" || fail "2: pod $p was not reported"; done
[[ "$(unavailable fifo)" == *'error="is a FIFO, not a network namespace"'* ]] ||
  fail "2: the FIFO's reason is not given: $(unavailable fifo)"
[[ "$(unavailable dev)" == *'error="is a character device, not a network namespace"'* ]] ||
  fail "2: /dev/null's reason is not given: $(unavailable dev)"
log "ok: 2: reported: $(unavailable fifo); $(unavailable dev)"
t0="$(now)"
st="$(ip netns exec "$NODE" curl -s -o /dev/null -w '%{http_code}' --max-time 1 http://127.0.0.1:15021/healthz/ready || true)"
[ "$st" = 200 ] || fail "2: readiness answered '$st' within 1 s, want 200 (the control thread is stuck?)"
st="$(ip netns exec "$NODE" curl -s -o /dev/null -w '%{http_code}' --max-time 1 http://127.0.0.1:15020/metrics || true)"
[ "$st" = 200 ] || fail "2: /metrics answered '$st' within 1 s, want 200"
log "ok: 2: readiness and metrics answer ($(elapsed_since "$t0")s for both)"
[ "$(zr_count N1 'msg="pod added"')" -eq 2 ] || fail "2: want only p1 and p2 added: $(grep 'pod added' "$(zr_log N1)")"
for p in p1 p2; do na_expect_listeners "$p" "$PER" N1; done
xfer_ok
log "ok: 2: p1 and p2 still served, p1 -> p2 proxied"

# --- 3: SIGTERM ------------------------------------------------------------------------
zr_stop N1
log "ok: 3: SIGTERM: exit 0"

# --- 4: at startup ---------------------------------------------------------------------
zr_start N2 "$NODE" --node-agent --node node-1 --config "$CFG" --workers "$WORKERS"
for p in p1 p2; do na_expect_listeners "$p" "$PER" N2; done
for p in fifo dev; do
  grep 'msg="pod netns unavailable"' "$(zr_log N2)" | grep -qF "pod=default/$p" ||
    fail "4: pod $p was not reported at startup"
done
[ "$(ready_status "$NODE")" = 200 ] || fail "4: not ready"
xfer_ok
zr_stop N2
log "ok: 4: started on that config: ready, p1 and p2 served, fifo and dev reported"

pass "a FIFO and a device as pods' namespaces: reported at once with the reason, not served; the other pods, readiness, metrics and SIGTERM unaffected"
