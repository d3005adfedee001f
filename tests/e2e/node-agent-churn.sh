#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: pods come and go under a node-agent zring (one node, HBONE
# workloads, --drain-timeout 3s). Every pod has the capture rules installed
# for the whole run, as istio-cni leaves them until the pod is deleted.
#   A. p4's rules are in place but p4 is not in the config: its connections
#      are redirected to 15001 where nothing listens, so they are refused;
#      p5's namespace does not exist yet: logged, the others are served;
#   B. p4 added to the config: it gets its listeners and its traffic is
#      captured and proxied;
#   C. p1 removed while three transfers run: p2 -> p3 (long, another pod's),
#      p1 -> p2 (fits in the drain deadline) and p1 -> p3 (does not fit).
#      p1's listeners close at once and its new connections are refused;
#      its first transfer completes intact, the second is cut at the
#      deadline ("pod drain deadline"), the other pods' transfer spans the
#      whole change and completes intact; their listeners never move;
#   D. p1 comes back; p5's namespace exists by then but its 15006 is taken:
#      reported, p5 not served; once the port is free the next config
#      change serves it;
#   E. p2's namespace path changes (same namespace through /proc/PID/ns/net):
#      a leave and an appear, traffic to it works; a workload naming p3's
#      namespace next to p3 is refused;
#   F. SIGTERM with a transfer in flight: every pod's listeners close at once
#      while the transfer finishes, then zring exits 0.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly WORKERS=2 PER=4   # listening sockets per port: workers x (IPv4, IPv6)
readonly RATE=$((1 << 20)) # paced transfers, bytes/s
readonly DRAIN=3

e2e_begin node-agent-churn
command -v openssl >/dev/null || skip "openssl not found"
na_node 1
for i in 1 2 3 4; do na_pod "p$i" 1 "1$i"; done
readonly P5_IP=10.78.1.15

certs="$E2E_TMP/certs"
hbone_certs "$certs" p1 p2 p3 p4 p5
CFG="$E2E_TMP/workloads.json"
wl() { na_workload "$1" HBONE node-1 "${2:-$(na_pod_ip "$1")}" "${3:-}"; }
for p in p2 p3; do na_server "$p" 8080; done

# config_is N WHAT: zring applied config version N.
config_is() {
  wait_until 5 at_least "$1" zr_config_version N1 || fail "$2: config version $1 not applied"
}
zr_config_version() {
  local v
  v="$(grep 'msg="config loaded"' "$(zr_log "$1")" | tail -n1 | sed -n 's/.* version=\([0-9]*\).*/\1/p')"
  echo "${v:-0}"
}

# refused POD HOST: a new connection from POD is refused at once (no listener
# behind its capture rule), never proxied.
refused() {
  local out
  out="$(client "$(na_pod_ns "$1")" probe --host "$2" --port 8080 --within 2)" ||
    fail "a connection from $1 to $2 was not refused: $out"
  log "ok: $1 -> $2 refused: $out"
}

# --- A: a pod with rules but not in the config; a missing namespace -------------------
na_config "$CFG" "$(wl p1)" "$(wl p2)" "$(wl p3)" "$(wl p5 "$P5_IP")"
zr_start N1 "$(na_node_ns 1)" --node-agent --config "$CFG" --certs "$certs" \
  --workers "$WORKERS" --drain-timeout "${DRAIN}s"
for p in p1 p2 p3; do na_expect_listeners "$p" "$PER" N1 15008; done
na_expect_listeners p4 0 -
grep -q 'msg="pod netns unavailable" pod=default/p5 .*failures=1' "$(zr_log N1)" ||
  fail "A: p5's missing namespace was not reported"
refused p4 "$(na_pod_ip p2)"
[ "$(zr_count N1 'msg=access')" -eq 0 ] || fail "A: zring proxied something from p4"

# --- B: p4 joins ----------------------------------------------------------------------------
na_config "$CFG" "$(wl p1)" "$(wl p2)" "$(wl p3)" "$(wl p4)" "$(wl p5 "$P5_IP")"
config_is 2 B
wait_until 5 grep -q 'msg="pod added" pod=default/p4 ' "$(zr_log N1)" || fail "B: p4 was not added"
na_expect_listeners p4 "$PER" N1 15008
client_ok "$(na_pod_ns p4)" xfer --host "$(na_pod_ip p2)" --port 8080 --up 100000 --down 100000
wait_until 5 at_least 1 na_count N1 p4 outbound || fail "B: p4's connection was not proxied"
log "ok: B: p4 added, its traffic captured: $(na_access N1 p4 outbound | head -n1)"

# --- C: p1 leaves mid-transfer ------------------------------------------------------------
established_to() {   # established connections to POD:8080, seen in POD
  ip netns exec "$(na_pod_ns "$1")" ss -Htn state established "sport = :8080" | grep -c . || true
}
base2="$(established_to p2)" base3="$(established_to p3)"
na_xfer_bg long "$(na_pod_ns p2)" --host "$(na_pod_ip p3)" --port 8080 \
  --up $((RATE * 8)) --up-rate "$RATE" --down 4096 --timeout 60
na_xfer_bg fits "$(na_pod_ns p1)" --host "$(na_pod_ip p2)" --port 8080 \
  --up $((RATE * 3 / 2)) --up-rate "$RATE" --down 4096 --timeout 30
na_xfer_bg cut "$(na_pod_ns p1)" --host "$(na_pod_ip p3)" --port 8080 \
  --up $((RATE * 30)) --up-rate "$RATE" --expect fail --timeout 60
wait_until 5 at_least $((base3 + 2)) established_to p3 || fail "C: transfers to p3 did not start"
wait_until 5 at_least $((base2 + 1)) established_to p2 || fail "C: transfer to p2 did not start"
sleep 0.3
na_config "$CFG" "$(wl p2)" "$(wl p3)" "$(wl p4)" "$(wl p5 "$P5_IP")"
T0="$(now)"
config_is 3 C
wait_until 5 grep -q 'msg="pod removed" pod=default/p1 ' "$(zr_log N1)" || fail "C: p1 was not removed"
na_expect_listeners p1 0 -
refused p1 "$(na_pod_ip p2)"
for p in p2 p3 p4; do na_expect_listeners "$p" "$PER" N1 15008; done

# since T0 (the removal): when transfer TAG ended.
ended_after() { awk -v a="$T0" -v b="$(na_xfer_end "$1")" 'BEGIN { printf "%.2f", b - a }'; }
na_xfer_wait fits 10
float_le 0.2 "$(ended_after fits)" ||
  fail "C: the transfer that fits ended $(ended_after fits)s after the removal: it was not in flight"
line="$(na_access N1 p1 outbound | grep -F " dst=$(na_pod_ip p2):8080 " | tail -n1)"
[ "$(access_field "$line" error)" = - ] || fail "C: the drained transfer logged an error: $line"
[ "$(access_field "$line" up_bytes)" -gt $((RATE * 3 / 2)) ] || fail "C: the drained transfer is short: $line"

na_xfer_wait cut 15
took="$(ended_after cut)"
log "C: the long transfer from p1 was cut ${took}s after the removal (deadline ${DRAIN}s)"
float_le "$((DRAIN - 1))" "$took" || fail "C: p1's long transfer was cut after ${took}s, before the ${DRAIN}s deadline"
float_le "$took" "$((DRAIN + 2))" || fail "C: p1's long transfer was cut only after ${took}s (deadline ${DRAIN}s)"
wait_until 5 grep -q 'msg="pod drain deadline" pod=default/p1 ' "$(zr_log N1)" ||
  fail "C: no 'pod drain deadline' line for p1"
line="$(na_access N1 p1 outbound | grep -F " dst=$(na_pod_ip p3):8080 " | tail -n1)"
[ "$(access_field "$line" error)" = '"pod drain deadline"' ] || fail "C: the cut transfer's access line: $line"

na_xfer_wait long 30
took="$(ended_after long)"
float_le "$((DRAIN + 1))" "$took" || fail "C: p2's transfer ended ${took}s after the removal: it did not span the drain"
for line in "$(na_access N1 p2 outbound | tail -n1)" "$(na_access N1 p3 hbone | grep -F " src=$(na_pod_ip p2):" | tail -n1)"; do
  [ -n "$line" ] || fail "C: p2 -> p3 is missing an access line"
  [ "$(access_field "$line" error)" = - ] || fail "C: p2 -> p3 was disturbed: $line"
  [ "$(access_field "$line" up_bytes)" -gt $((RATE * 8)) ] || fail "C: p2 -> p3 is short: $line"
done
log "ok: C: p1 removed: listeners closed, new connections refused, one transfer drained, one cut at ${DRAIN}s; p2 -> p3 intact"

# --- D: the next changes retry p5 and bring p1 back -------------------------------------------
# p5's namespace exists now, but something else holds its 15006: listening
# there fails, p5 is not served (nothing half-open), p1 comes back anyway.
na_pod p5 1 15
ip netns exec "$(na_pod_ns p5)" "$PY" -c '
import socket, time
s = socket.socket()
s.bind(("0.0.0.0", 15006))
s.listen()
print("READY", flush=True)
time.sleep(600)' >"$E2E_TMP/blocker.out" 2>&1 &
blocker=$!
track "$blocker"
wait_until 5 grep -qs READY "$E2E_TMP/blocker.out" || fail "D: the 15006 blocker did not start"
na_config "$CFG" "$(wl p1)" "$(wl p2)" "$(wl p3)" "$(wl p4)" "$(wl p5 "$P5_IP")"
config_is 4 D
wait_until 5 grep -q 'msg="cannot listen in pod" pod=default/p5 .*role=inbound addr=0.0.0.0:15006 ' "$(zr_log N1)" ||
  fail "D: p5's bind failure was not reported: $(grep 'pod=default/p5' "$(zr_log N1)" | tail -n2)"
[ "$(zr_count N1 'msg="pod added" pod=default/p1 ')" -eq 2 ] || fail "D: p1 was not added back"
na_expect_listeners p1 "$PER" N1 15008
[ "$(na_listeners p5 15001)" -eq 0 ] || fail "D: p5 kept listeners although it is not served"
# Free the port; the next change (the same pods, in another order) serves p5.
kill "$blocker"
wait_gone "$blocker" 50 || fail "D: the blocker did not exit"
na_config "$CFG" "$(wl p5 "$P5_IP")" "$(wl p1)" "$(wl p2)" "$(wl p3)" "$(wl p4)"
config_is 5 D
wait_until 5 grep -q 'msg="pod added" pod=default/p5 ' "$(zr_log N1)" || fail "D: p5 was not retried"
for p in p1 p5; do
  na_expect_listeners "$p" "$PER" N1 15008
  client_ok "$(na_pod_ns "$p")" xfer --host "$(na_pod_ip p2)" --port 8080 --up 100000 --down 100000
done
wait_until 5 at_least 1 na_count N1 p5 outbound || fail "D: p5's connection was not proxied"

# --- E: p2 moves to another path of the same namespace; a duplicate is refused ---------------
spid="$(ip netns pids "$(na_pod_ns p2)" | head -n1)"
[ -n "$spid" ] || fail "E: no process in p2's namespace"
moved="/proc/$spid/ns/net"
dup="$(na_workload p3copy HBONE node-1 10.78.1.33 "$(na_netns_path p3)")"
na_config "$CFG" "$(wl p1)" "$(wl p2 "" "$moved")" "$(wl p3)" "$(wl p4)" "$(wl p5 "$P5_IP")" "$dup"
config_is 6 E
wait_until 5 grep -q "msg=\"pod added\" pod=default/p2 uid=uid-p2 netns=$moved " "$(zr_log N1)" ||
  fail "E: p2 was not added at its new path"
[ "$(zr_count N1 'msg="pod removed" pod=default/p2 ')" -eq 1 ] || fail "E: p2 did not leave its old path"
grep -q 'msg="pod not served" pod=default/p3copy .*reason="another served pod has the same network namespace"' \
  "$(zr_log N1)" || fail "E: the workload sharing p3's namespace was not refused"
na_expect_listeners p2 "$PER" N1 15008
na_expect_listeners p3 "$PER" N1 15008
client_ok "$(na_pod_ns p4)" xfer --host "$(na_pod_ip p2)" --port 8080 --up 100000 --down 100000
client_ok "$(na_pod_ns p2)" xfer --host "$(na_pod_ip p3)" --port 8080 --up 100000 --down 100000
log "ok: E: p2 moved (leave + appear), traffic to and from it works; the duplicate is refused"

# --- F: SIGTERM ------------------------------------------------------------------------------
base2="$(established_to p2)"
na_xfer_bg last "$(na_pod_ns p4)" --host "$(na_pod_ip p2)" --port 8080 \
  --up $((RATE * 3 / 2)) --up-rate "$RATE" --down 4096 --timeout 30
wait_until 5 at_least $((base2 + 1)) established_to p2 || fail "F: transfer to p2 did not start"
sleep 0.3
kill -TERM "$(zr_pid N1)"
for p in p1 p2 p3 p4 p5; do na_expect_listeners "$p" 0 -; done
proc_alive "$(zr_pid N1)" || fail "F: zring exited before its last transfer ended"
refused p5 "$(na_pod_ip p3)"
na_xfer_wait last 10
zr_wait_exit N1 10
[ "$ZRING_RC" -eq 0 ] || fail "F: zring exited $ZRING_RC after SIGTERM, want 0"
unset "ZR_PID[N1]"
errors="$(zr_access N1 | grep -v ' error=-' | grep -vF " src=$(na_pod_ip p1):" || true)"
[ -z "$errors" ] || fail "connections other than p1's cut transfer logged errors: $errors"
soft_check
pass "pods added, removed mid-transfer (drained, cut at the deadline, others untouched), retried, moved"
