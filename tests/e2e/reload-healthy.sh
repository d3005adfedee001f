#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: what a healthy cluster produces loads, on start and on reload;
# ztunnel's YAML local config runs unchanged.
#   1. JSON, version 1: the VIP 10.96.0.10:80 goes to ep1:8080.
#   2. A reload where the Deployment behind a second service is scaled to
#      zero (service "idle", no workload selects it) and ep2 names a service
#      not in the file yet: version 2 applies (before issue 17 zring rejected
#      this file and every later one), the VIP moves to ep2:9090, and the
#      two warnings are reported: warnings=2 on the "config loaded" line and
#      a debug line each (file, line, col, path),
#      zring_config_warnings 2 on /metrics, both in /config_dump with
#      line, column and path; a connection to the idle VIP fails fast.
#   3. zring restarted on a ztunnel-style YAML file (LOCAL_XDS_PATH shape:
#      integer port keys, flow sequences, "- - -" rules): routes as written;
#      a YAML reload moves the VIP; a YAML syntax error is rejected with
#      file, line and column and the old config keeps routing; `zring check`
#      reads the YAML file.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly EP1=10.77.0.11 EP2=10.77.0.12 VIP=10.96.0.10 IDLE=10.96.0.11

e2e_begin reload-healthy
command -v curl >/dev/null || skip "curl not found"
e2e_topology
install_capture
add_server_addrs "$EP1" "$EP2"
route_vips 10.96.0.0/16
start_who eps "8080 9090" "$EP1" "$EP2"
mkdir -p "$E2E_TMP/cfg"

# expect_vip ADDR:PORT WHAT: 5 connections to the VIP all reach ADDR:PORT.
expect_vip() {
  local dist
  dist="$(who "$VIP" 80 5)"
  [ "$dist" = "$1=5" ] || fail "$2: want the VIP routed to $1 (5 of 5), got $dist"
  log "ok: $2: version $(config_version), VIP -> $1"
}

# --- 1: JSON, version 1 -------------------------------------------------------------
FILE="$E2E_TMP/cfg/workloads.json"
mkconfig --service "web,$VIP,80=8080" --workload "ep1,$EP1,web" >"$FILE"
start_zring --config "$FILE" --log-level debug
wait_config_version 1 || fail "zring did not load version 1"
expect_vip "$EP1:8080" "1: start"

# --- 2: a scaled-to-zero service and a service not there yet ----------------------------
cat >"$E2E_TMP/healthy.json" <<EOF
{
  "workloads": [
    { "uid": "e2e//v1/Pod/e2e/ep2", "namespace": "e2e", "serviceAccount": "ep2",
      "workloadIps": ["$EP2"],
      "services": { "e2e/web.e2e.svc.cluster.local": { "80": 9090 },
                    "e2e/canary.e2e.svc.cluster.local": { "80": 9090 } } }
  ],
  "services": [
    { "name": "web", "namespace": "e2e", "hostname": "web.e2e.svc.cluster.local",
      "vips": ["/$VIP"], "ports": { "80": 8080 } },
    { "name": "idle", "namespace": "e2e", "hostname": "idle.e2e.svc.cluster.local",
      "vips": ["/$IDLE"], "ports": { "80": 8080 } }
  ]
}
EOF
cfg_write_rename "$E2E_TMP/healthy.json" "$FILE"
wait_config_version 2 ||
  fail "2: zring did not apply the file with a scaled-to-zero service: $(grep 'msg="config' "$ZLOG" | tail -n3)"
[ "$(config_rejects)" -eq 0 ] || fail "2: a reload was rejected: $(grep 'msg="config' "$ZLOG" | tail -n3)"
line="$(grep 'msg="config loaded"' "$ZLOG" | tail -n1)"
[ "$(access_field "$line" warnings)" = 2 ] || fail "2: want warnings=2 on the loaded line: $line"
for want in 'line=6 col=21 path="workloads[0].services[\"e2e/canary.e2e.svc.cluster.local\"]" warning="service' \
            'line=11 col=5 path=services[1] warning="service \"e2e/idle.e2e.svc.cluster.local\" selects no workload'; do
  grep 'msg="config warning"' "$ZLOG" | grep -F "file=$FILE" | grep -qF "$want" ||
    fail "2: no debug line '$want': $(grep 'msg="config warning"' "$ZLOG" | tail -n3)"
done
expect_vip "$EP2:9090" "2: scaled to zero"

metrics="$(http_body "http://127.0.0.1:15020/metrics")"
grep -qx 'zring_config_warnings 2' <<<"$metrics" ||
  fail "2: /metrics has no 'zring_config_warnings 2': $(grep zring_config <<<"$metrics")"
http_body "http://127.0.0.1:15000/config_dump" >"$E2E_TMP/dump.json"
"$PY" - "$E2E_TMP/dump.json" <<'PY' || fail "2: /config_dump warnings: $(cat "$E2E_TMP/dump.json")"
import json, sys
d = json.load(open(sys.argv[1]))
w = d["warnings"]
assert d["warningsTotal"] == 2, d["warningsTotal"]
assert [(x["line"], x["column"], x["path"]) for x in w] == [
    (6, 21, 'workloads[0].services["e2e/canary.e2e.svc.cluster.local"]'),
    (11, 5, "services[1]")], w
assert "is not in the file (yet)" in w[0]["message"], w[0]
assert "selects no workload" in w[1]["message"], w[1]
assert [s["name"] for s in d["config"]["services"]] == ["web", "idle"]
PY
log "ok: 2: warnings on the loaded line, /metrics and /config_dump"
rc=0
out="$(client "$NS_C" who --host "$IDLE" --port 80 --conns 1 --timeout 5 2>&1)" || rc=$?
[ "$rc" -ne 0 ] || fail "2: a connection to the idle service's VIP succeeded: $out"
log "ok: 2: the idle VIP has no endpoint: the connection fails"
stop_zring

# --- 3: ztunnel's YAML local config ---------------------------------------------------
FILE="$E2E_TMP/cfg/local.yaml"
cat >"$FILE" <<EOF
# ztunnel LOCAL_XDS_PATH shape
workloads:
- uid: cluster1//v1/Pod/e2e/ep1
  name: ep1
  namespace: e2e
  serviceAccount: default
  workloadIps: ["$EP1"]
  protocol: TCP
  network: ""
  services:
    "e2e/web.e2e.svc.cluster.local":
      80: 8080
policies:
  - action: Allow
    rules:
    - - - notDestinationPorts:
          - 9999
    name: allow-all-but-9999
    namespace: e2e
    scope: Namespace
    dryRun: false
services:
- name: web
  namespace: e2e
  hostname: web.e2e.svc.cluster.local
  vips:
    - /$VIP
  ports:
    80: 8080
EOF
start_zring --config "$FILE"
wait_config_version 1 || fail "3: zring did not load the YAML file"
line="$(grep 'msg="config loaded"' "$ZLOG" | tail -n1)"
[ "$(access_field "$line" warnings)" = 0 ] || fail "3: want warnings=0: $line"
expect_vip "$EP1:8080" "3: YAML"

sed -e "s/$EP1/$EP2/" -e 's/80: 8080/80: 9090/' -e 's/ep1/ep2/' "$FILE" >"$E2E_TMP/local2.yaml"
cfg_write_rename "$E2E_TMP/local2.yaml" "$FILE"
wait_config_version 2 || fail "3: zring did not apply the YAML reload"
expect_vip "$EP2:9090" "3: YAML reload"

printf 'workloads:\n- uid: x\n  namespace: [e2e\n' >"$E2E_TMP/broken.yaml"
cfg_write_rename "$E2E_TMP/broken.yaml" "$FILE"
wait_until 5 at_least 1 config_rejects || fail "3: the broken YAML file was not rejected"
grep 'msg="config error"' "$ZLOG" | grep -qF "file=$FILE line=4 col=1 path=\$ error=\"YAML syntax error" ||
  fail "3: no YAML syntax error with file, line and column: $(grep 'msg="config error"' "$ZLOG" | tail -n2)"
expect_vip "$EP2:9090" "3: after the broken YAML"

cfg_write_rename "$E2E_TMP/local2.yaml" "$FILE"
rc=0
"$ZRING_BIN" check "$FILE" >"$E2E_TMP/check.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "3: zring check on the YAML file: exit $rc: $(cat "$E2E_TMP/check.out")"
grep -qF "$FILE: valid" "$E2E_TMP/check.out" || fail "3: zring check: $(cat "$E2E_TMP/check.out")"
log "ok: 3: zring check reads the YAML file"
stop_zring

pass "a scaled-to-zero service and a missing service load with warnings (log, /metrics, /config_dump); ztunnel-style YAML loads, reloads, and is rejected with line:col when broken"
