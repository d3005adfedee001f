#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: the config watcher keeps working while zring drains.
#   Version 1 routes the VIP 10.96.0.10:80 to ep1:8080. A paced transfer
#   through the VIP (~4 s each way, sha256-checked) is in flight when zring
#   gets SIGTERM (--drain-timeout 30s). During the drain:
#   1. the config file is replaced (VIP -> ep2): zring logs version 2 after
#      msg=draining and before it exits;
#   2. SIGHUP reloads too: version 3;
#   3. the in-flight transfer completes intact, still on ep1 (a connection
#      keeps the config it started with): the client's hashes match, the
#      server on ep1 logs it ok, zring's access line says upstream=ep1:8080
#      error=-;
#   4. zring exits 0 as soon as that connection is done (well before the
#      30 s deadline).
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly EP1=10.77.0.11 EP2=10.77.0.12 VIP=10.96.0.10
readonly RATE=$((1 << 20)) SIZE=$((4 << 20))

e2e_begin reload-during-drain
e2e_topology
install_capture
add_server_addrs "$EP1" "$EP2"
route_vips 10.96.0.0/16
start_server "$NS_S" 8080 "$EP1" "$EP2"

mkdir -p "$E2E_TMP/cfg"
FILE="$E2E_TMP/cfg/workloads.json"
mkconfig --service "web,$VIP,80=8080" --workload "ep1,$EP1,web" --workload "ep2,$EP2" >"$FILE"
start_zring --config "$FILE" --drain-timeout 30s
wait_config_version 1 || fail "zring did not load version 1"

# The long transfer, through the VIP, paced both ways.
client "$NS_C" xfer --host "$VIP" --port 80 --up "$SIZE" --down "$SIZE" \
  --up-rate "$RATE" --down-rate "$RATE" --timeout 60 >"$E2E_TMP/long.out" 2>&1 &
CPID=$!
track "$CPID"
upstream_on_ep1() { ns_s ss -Htn state established "src $EP1:8080" | grep -q .; }
wait_until 5 upstream_on_ep1 || fail "the transfer did not reach ep1:8080"
sleep 0.3

kill -TERM "$ZPID"
T0="$(now)"
wait_until 3 grep -q 'msg=draining' "$ZLOG" || fail "zring logged no msg=draining"
log "ok: SIGTERM, draining"

# --- 1: file replaced during the drain -------------------------------------------
mkconfig --service "web,$VIP,80=8080" --workload "ep1,$EP1" --workload "ep2,$EP2,web" >"$E2E_TMP/next.json"
cfg_write_rename "$E2E_TMP/next.json" "$FILE"
wait_config_version 2 || fail "zring did not apply the new file during the drain (at version $(config_version))"
proc_alive "$ZPID" || fail "zring exited before the reload could be seen during the drain"
proc_alive "$CPID" || fail "the transfer ended before the reload (too short to test a reload in flight)"
log "ok: version 2 applied while draining, after $(elapsed_since "$T0")s"

# --- 2: SIGHUP during the drain ------------------------------------------------------
kill -HUP "$ZPID"
wait_config_version 3 || fail "SIGHUP during the drain did not reload (at version $(config_version))"
proc_alive "$CPID" || fail "the transfer ended before the SIGHUP reload"
log "ok: version 3 (SIGHUP) applied while draining, after $(elapsed_since "$T0")s"
[ "$(config_rejects)" -eq 0 ] || fail "a reload was rejected: $(grep 'config reload rejected' "$ZLOG")"

# --- 3: the transfer completes intact, on ep1 ----------------------------------------
rc=0
wait_gone "$CPID" 300 || fail "the transfer is still running 30 s after SIGTERM"
wait "$CPID" || rc=$?
[ "$rc" -eq 0 ] || fail "the in-flight transfer failed during the drain: $(cat "$E2E_TMP/long.out")"
log "ok: transfer: $(cat "$E2E_TMP/long.out")"
T1="$(now)"

# --- 4: zring exits 0 once it is done ------------------------------------------------
zring_wait_exit 5
[ "$ZRING_RC" -eq 0 ] || fail "zring exited $ZRING_RC after the drain, want 0"
log "ok: zring exited 0, $(elapsed_since "$T1")s after the transfer ended ($(elapsed_since "$T0")s after SIGTERM)"

# Order in the log: draining, then both reloads, then the access line and exit.
order="$(grep -nE 'msg=draining|msg="config loaded"|msg=access|msg=exit' "$ZLOG" |
  sed -E 's/^([0-9]+):.*msg=("config loaded"|[a-z]+).*/\2/' | tr '\n' ' ')"
[ "$order" = '"config loaded" draining "config loaded" "config loaded" access exit ' ] ||
  fail "want the log order: config loaded, draining, config loaded x2, access, exit; got: $order"
line="$(access_to "$VIP:80")"
[ "$(grep -c . <<<"$line")" -eq 1 ] || fail "want one access line for $VIP:80: $line"
[[ "$line" == *" route=service upstream=$EP1:8080 dst_workload=ep1 "* ]] ||
  fail "the in-flight connection did not keep its config (want upstream=$EP1:8080): $line"
[ "$(access_field "$line" error)" = - ] || fail "the drained connection logged an error: $line"
grep -q "^conn .* result=ok local=$EP1:8080\$" "$E2E_TMP/server-8080.log" ||
  fail "the server on ep1 did not log the transfer ok: $(cat "$E2E_TMP/server-8080.log")"
log "ok: $line"

pass "reloads (file and SIGHUP) applied during the drain; the in-flight transfer kept its config and completed intact; exit 0"
