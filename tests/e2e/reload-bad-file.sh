#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: a bad config file never replaces a good one.
#   Version 1 routes the VIP 10.96.0.10:80 to ep1:8080. Then, one after the
#   other (each checked by where connections to the VIP land):
#   1. a file with a syntax error (written temp + rename): rejected, the error
#      line names file, line, col and path, the reject line says failures=1
#      kept_version=1, and the VIP still goes to ep1;
#   2. a well-formed but invalid file (temp + rename) with four problems:
#      each one reported in one go with its line:col and JSON path
#      (workloads[0].colour, workloads[1].workloadIps[0], services[0].ports["80"],
#      services[1].vips[0]), failures=2 kept_version=1, the VIP still goes to ep1;
#   3. an empty file (what an in-place writer leaves for a moment): rejected;
#   4. a fixed file: version 2 applies and the VIP moves to ep2:9090.
#   Then zring started on the invalid file exits 1 and prints the same
#   errors, and `zring check` does too.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly EP1=10.77.0.11 EP2=10.77.0.12 VIP=10.96.0.10

e2e_begin reload-bad-file
e2e_topology
install_capture
add_server_addrs "$EP1" "$EP2"
route_vips 10.96.0.0/16
start_who eps "8080 9090" "$EP1" "$EP2"

mkdir -p "$E2E_TMP/cfg"
FILE="$E2E_TMP/cfg/workloads.json"

# The bad files are written out by hand: the line and column of each
# problem below is part of what is checked.
cat >"$E2E_TMP/syntax.json" <<'EOF'
{
  "workloads": [
    { "uid": "e2e//v1/Pod/e2e/ep1", "namespace": "e2e", "workloadIps": ["10.77.0.11"],
      "services": { "e2e/web.e2e.svc.cluster.local": { "80": 8080 } } },
    { "uid": "e2e//v1/Pod/e2e/ep2", "namespace": "e2e", "workloadIps": ["10.77.0.12"]
      "services": { "e2e/web.e2e.svc.cluster.local": { "80": 8080 } } }
  ],
  "services": [
    { "name": "web", "namespace": "e2e", "hostname": "web.e2e.svc.cluster.local",
      "vips": ["/10.96.0.10"], "ports": { "80": 8080 } }
  ]
}
EOF
cat >"$E2E_TMP/invalid.json" <<'EOF'
{
  "workloads": [
    { "uid": "e2e//v1/Pod/e2e/ep1", "namespace": "e2e", "workloadIps": ["10.77.0.11"],
      "colour": "blue",
      "services": { "e2e/web.e2e.svc.cluster.local": { "80": 8080 } } },
    { "uid": "e2e//v1/Pod/e2e/ep2", "namespace": "e2e", "workloadIps": ["10.77.0.300"],
      "services": { "e2e/web.e2e.svc.cluster.local": { "80": 8080 } } }
  ],
  "services": [
    { "name": "web", "namespace": "e2e", "hostname": "web.e2e.svc.cluster.local",
      "vips": ["/10.96.0.10"], "ports": { "80": 70000 } },
    { "name": "orphan", "namespace": "e2e", "hostname": "orphan.e2e.svc.cluster.local",
      "vips": ["/10.96.0.311"], "ports": { "80": 8080 } }
  ]
}
EOF
# line col path error-prefix, for each problem in invalid.json
INVALID_ERRORS=(
  '4 7 workloads[0].colour unknown field'
  '6 73 workloads[1].workloadIps[0] invalid IP address'
  '11 49 "services[0].ports[\"80\"]" 70000 is out of range'
  '13 16 services[1].vips[0] invalid VIP'
)

# expect_vip ADDR:PORT WHAT: 5 connections to the VIP all reach ADDR:PORT.
expect_vip() {
  local dist
  dist="$(who "$VIP" 80 5)"
  [ "$dist" = "$1=5" ] || fail "$2: want the VIP routed to $1 (5 of 5), got $dist"
  log "ok: $2: version $(config_version), VIP -> $1"
}

# expect_rejected N WHAT: zring logs its N-th "config reload rejected", with
# failures=N kept_version=1, and stays at version 1.
expect_rejected() {
  local line
  wait_until 5 at_least "$1" config_rejects || fail "$2: zring did not reject the file (rejects: $(config_rejects))"
  line="$(grep 'msg="config reload rejected"' "$ZLOG" | tail -n1)"
  [ "$(access_field "$line" level)" = error ] || fail "$2: the reject line is not level=error: $line"
  [ "$(access_field "$line" file)" = "$FILE" ] || fail "$2: the reject line does not name the file: $line"
  [ "$(access_field "$line" failures)" = "$1" ] || fail "$2: want failures=$1: $line"
  [ "$(access_field "$line" kept_version)" = 1 ] || fail "$2: want kept_version=1: $line"
  [[ "$(config_version)" -eq 1 && "$(config_loads)" -eq 1 ]] || fail "$2: a bad file was applied: $(grep 'config loaded' "$ZLOG" | tail -n1)"
  log "ok: $2: $line"
}

# expect_error_line LOG LINE COL PATH ERROR-PREFIX WHAT: a msg="config error"
# line for FILE with exactly these fields.
expect_error_line() {
  local f="$1" want="line=$2 col=$3 path=$4 error=\"$5"
  grep 'msg="config error"' "$f" | grep -qF "file=$FILE $want" ||
    fail "$6: no config error line with file=$FILE $want...: $(grep 'msg="config error"' "$f" | tail -n5)"
}

# --- version 1 -----------------------------------------------------------------
mkconfig --service "web,$VIP,80=8080" --workload "ep1,$EP1,web" >"$FILE"
start_zring --config "$FILE"
wait_config_version 1 || fail "zring did not load version 1"
expect_vip "$EP1:8080" "start"

# --- 1: syntax error ---------------------------------------------------------------
cfg_write_rename "$E2E_TMP/syntax.json" "$FILE"
expect_rejected 1 "syntax error"
expect_error_line "$ZLOG" 6 7 '$' 'syntax error' "syntax error"
expect_vip "$EP1:8080" "after the syntax error"

# --- 2: validation errors ------------------------------------------------------------
cfg_write_rename "$E2E_TMP/invalid.json" "$FILE"
expect_rejected 2 "invalid file"
for e in "${INVALID_ERRORS[@]}"; do
  read -r l c p msg <<<"$e"
  expect_error_line "$ZLOG" "$l" "$c" "$p" "$msg" "invalid file"
done
n="$(grep -c 'msg="config error"' "$ZLOG")"
[ "$n" -eq $((1 + ${#INVALID_ERRORS[@]})) ] || fail "invalid file: want ${#INVALID_ERRORS[@]} error lines for it, got $((n - 1))"
expect_vip "$EP1:8080" "after the invalid file"

# --- 3: empty file -------------------------------------------------------------------
: >"$FILE"
expect_rejected 3 "empty file"
expect_vip "$EP1:8080" "after the empty file"

# --- 4: fixed --------------------------------------------------------------------------
mkconfig --service "web,$VIP,80=9090" --workload "ep2,$EP2,web" >"$E2E_TMP/fixed.json"
cfg_write_rename "$E2E_TMP/fixed.json" "$FILE"
wait_config_version 2 || fail "fixed file: zring did not apply version 2"
expect_vip "$EP2:9090" "fixed file"
[ "$(config_rejects)" -eq 3 ] || fail "fixed file: want 3 rejects in all, got $(config_rejects)"
stop_zring

# --- startup on an invalid file ----------------------------------------------------------
cfg_write_rename "$E2E_TMP/invalid.json" "$FILE"
out="$E2E_TMP/zring-startup-invalid.log"
rc=0
timeout 20 ip netns exec "$NS_C" "$ZRING_BIN" --config "$FILE" >"$out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "zring started on an invalid file: exit $rc, want 1: $(tail -n5 "$out")"
for e in "${INVALID_ERRORS[@]}"; do
  read -r l c p msg <<<"$e"
  expect_error_line "$out" "$l" "$c" "$p" "$msg" "startup on the invalid file"
done
grep -q "msg=\"config rejected\" file=$FILE " "$out" || fail "startup: no config rejected line: $(tail -n3 "$out")"
grep -q 'msg=ready' "$out" && fail "startup: zring logged ready on an invalid file"
log "ok: startup on the invalid file: exit 1, $(grep -c 'msg="config error"' "$out") errors"

rc=0
"$ZRING_BIN" check "$FILE" >"$E2E_TMP/zring-check.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "zring check on the invalid file: exit $rc, want 1"
for want in "$FILE:4:7: workloads[0].colour:" "$FILE:6:73: workloads[1].workloadIps[0]:" \
            "$FILE:11:49: services[0].ports[\"80\"]:" "$FILE:13:16: services[1].vips[0]:"; do
  grep -qF "$want" "$E2E_TMP/zring-check.log" || fail "zring check does not report '$want': $(cat "$E2E_TMP/zring-check.log")"
done
log "ok: zring check: exit 1, $(grep -c . "$E2E_TMP/zring-check.log") lines"

pass "syntax error, invalid file and empty file rejected with file:line:col:path, old config kept routing, fixed file applied, bad startup exits 1"
