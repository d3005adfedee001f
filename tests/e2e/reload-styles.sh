#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: every way a config file gets updated is picked up, and routing
# follows. The service VIP 10.96.0.10:80 has one endpoint per config version
# (ep1..ep3 are addresses of the server pod, zr_who.py answers on 8080 and
# 9090 with the address and port reached), so each new version moves the VIP
# to another endpoint and/or target port. Each update is checked by the
# version in zring's log (msg="config loaded" version=N) and by where 5
# connections to the VIP land.
#   A. a plain file: in-place write (`cat new > file`, same inode), then
#      write-temp-then-rename over it;
#   B. a Kubernetes ConfigMap volume: workloads.json -> ..data/workloads.json,
#      ..data -> ..2026_11_21_..., updated as the kubelet does (new timestamped
#      dir, ..data_tmp symlink renamed over ..data, old dir removed), twice;
#      removing the old dir (same bytes) makes no new version;
#   C. SIGHUP: the file is a symlink to a file in another directory, whose
#      in-place changes the watcher cannot see; SIGHUP reloads it, and a
#      SIGHUP with unchanged bytes still makes a new version.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly EP1=10.77.0.11 EP2=10.77.0.12 EP3=10.77.0.13 DB=10.77.0.20
readonly VIP=10.96.0.10

e2e_begin reload-styles
e2e_topology
install_capture
add_server_addrs "$EP1" "$EP2" "$EP3" "$DB"
route_vips 10.96.0.0/16
start_who eps "8080 9090" "$EP1" "$EP2" "$EP3"

# config NAME IP TARGET: the VIP's only endpoint is workload NAME at IP, port
# 80 mapped to TARGET; db is a workload outside the service.
config() {
  mkconfig --service "web,$VIP,80=$3" --workload "$1,$2,web" --workload "db,$DB"
}

# expect_vip ADDR:PORT WHAT: 5 connections to the VIP all reach ADDR:PORT.
expect_vip() {
  local dist
  dist="$(who "$VIP" 80 5)"
  [ "$dist" = "$1=5" ] || fail "$2: want the VIP routed to $1 (5 of 5), got $dist"
  log "ok: $2: version $(config_version), VIP -> $1"
}

# expect_version N WHAT: zring applies version N within 5 s.
expect_version() {
  wait_config_version "$1" || fail "$2: zring did not apply config version $1 (at $(config_version))"
  [ "$(config_version)" -eq "$1" ] || fail "$2: want config version $1, zring is at $(config_version)"
  # A reject is allowed only for an in-place write read half-written (lib.sh).
  [[ "$(config_other_errors)" -eq 0 && "$(config_rejects)" -eq "$(config_partial_errors)" ]] ||
    fail "$2: zring rejected an update: $(grep 'config' "$ZLOG" | grep -v 'config loaded' | tail -n3)"
}

# --- A: plain file: in place, then rename --------------------------------------
mkdir -p "$E2E_TMP/plain"
FILE="$E2E_TMP/plain/workloads.json"
config ep1 "$EP1" 8080 >"$FILE"
start_zring --config "$FILE"
expect_version 1 "A: start"
expect_vip "$EP1:8080" "A: start"

config ep2 "$EP2" 8080 >"$E2E_TMP/next.json"
ino="$(stat -c %i "$FILE")"
cfg_write_inplace "$E2E_TMP/next.json" "$FILE"
[ "$(stat -c %i "$FILE")" = "$ino" ] || fail "A: the in-place write replaced the inode"
expect_version 2 "A: in-place write"
expect_vip "$EP2:8080" "A: in-place write"

config ep3 "$EP3" 9090 >"$E2E_TMP/next.json"
cfg_write_rename "$E2E_TMP/next.json" "$FILE"
[ "$(stat -c %i "$FILE")" != "$ino" ] || fail "A: the rename kept the inode"
expect_version 3 "A: write temp + rename"
expect_vip "$EP3:9090" "A: write temp + rename"
grep -q "msg=\"config loaded\" file=$FILE version=3 " "$ZLOG" ||
  fail "A: the config loaded line does not name the file: $(grep 'config loaded' "$ZLOG" | tail -n1)"
stop_zring

# --- B: Kubernetes ConfigMap volume --------------------------------------------
CM="$E2E_TMP/configmap"
mkdir -p "$CM/..2026_11_21_12_00_00.000000001"
config ep1 "$EP1" 8080 >"$CM/..2026_11_21_12_00_00.000000001/workloads.json"
ln -s ..2026_11_21_12_00_00.000000001 "$CM/..data"
ln -s ..data/workloads.json "$CM/workloads.json"
CM_CUR=..2026_11_21_12_00_00.000000001

# kubelet_update TS NAME IP TARGET: the kubelet's atomic writer: a new
# timestamped dir, a ..data_tmp symlink to it renamed over ..data, then the
# old dir removed.
kubelet_update() {
  local ts="..2026_11_21_$1"
  mkdir "$CM/$ts"
  config "$2" "$3" "$4" >"$CM/$ts/workloads.json"
  ln -s "$ts" "$CM/..data_tmp"
  mv -T "$CM/..data_tmp" "$CM/..data"
  rm -rf "${CM:?}/$CM_CUR"
  CM_CUR="$ts"
}

start_zring --config "$CM/workloads.json"
expect_version 1 "B: start"
expect_vip "$EP1:8080" "B: start"
kubelet_update 12_01_00.000000002 ep2 "$EP2" 9090
expect_version 2 "B: ..data swap"
expect_vip "$EP2:9090" "B: ..data swap"
kubelet_update 12_02_00.000000003 ep3 "$EP3" 8080
expect_version 3 "B: second ..data swap"
expect_vip "$EP3:8080" "B: second ..data swap"
[[ "$(readlink "$CM/..data")" = "$CM_CUR" && "$(find "$CM" -maxdepth 1 -name '..2026*' | wc -l)" -eq 1 ]] ||
  fail "B: the ConfigMap volume is not as the kubelet leaves it: $(ls -la "$CM")"
# The removal of the old dir and any straggling events carry the same bytes:
# no further version.
sleep 0.5
expect_version 3 "B: after the swaps settle"
stop_zring

# --- C: SIGHUP ---------------------------------------------------------------------
mkdir -p "$E2E_TMP/link" "$E2E_TMP/real"
config ep1 "$EP1" 9090 >"$E2E_TMP/real/target.json"
ln -s "$E2E_TMP/real/target.json" "$E2E_TMP/link/workloads.json"
start_zring --config "$E2E_TMP/link/workloads.json"
expect_version 1 "C: start"
expect_vip "$EP1:9090" "C: start"

config ep2 "$EP2" 8080 >"$E2E_TMP/next.json"
cfg_write_inplace "$E2E_TMP/next.json" "$E2E_TMP/real/target.json"
sleep 0.5
[ "$(config_version)" -eq 1 ] ||
  fail "C: premise: a change outside the watched directory was picked up without SIGHUP"
expect_vip "$EP1:9090" "C: changed outside the watched directory, no SIGHUP yet"
kill -HUP "$ZPID"
expect_version 2 "C: SIGHUP"
expect_vip "$EP2:8080" "C: SIGHUP"
kill -HUP "$ZPID"
expect_version 3 "C: SIGHUP, same bytes"
expect_vip "$EP2:8080" "C: SIGHUP, same bytes"

pass "in-place write, temp+rename, ConfigMap ..data swap and SIGHUP each applied a new version and moved the VIP"
