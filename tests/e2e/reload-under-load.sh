#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: 100 config reloads while connections are made and carried.
#   Three configs route the service VIP 10.96.0.10:80 differently:
#     C (the start)  -> ep1:9090                      2 workloads
#     A              -> ep1:8080 or ep2:8080          4 workloads
#     B              -> ep2:9090 or ep3:9090          5 workloads
#   (the workload count in msg="config loaded" tells which one zring applied).
#   ZR1 servers (tests/tools/zr_server.py) listen on 8080 and 9090 on every
#   endpoint; every transfer is sha256-checked both ways.
#   Load, all the time the reloads run:
#     - 6 clients looping short transfers (0..64 KiB each way) to the VIP,
#       2 to a workload address (db) and 2 to an address outside the config;
#     - 3 slots looping long paced transfers (6 MiB each way at 1 MiB/s,
#       ~6 s: each spans dozens of reloads) to the VIP.
#   Reloads: 100, alternating A and B, written temp + rename, every 5th in
#   place, every 10th as a burst of three quick writes (want, other, want)
#   that the debounce may merge. After each, zring must log a new version
#   whose workload count is the config written last.
#   A reject is allowed only for an in-place write read half-written (see
#   CONFIG_PARTIAL_WRITE_ERRORS in lib.sh), and the whole file must then apply.
#   Then: zero failed connections, zero bytes lost (every hash matched),
#   no access line with an error, one access line per connection, every VIP
#   connection went where one of the configs sends it (never a mix such as
#   ep3:8080), both A's and B's endpoints were used, and after the last
#   reload (B) new connections go to B's endpoints only.
# ZRING_E2E_RELOADS overrides the count (default 100).
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly EP1=10.77.0.11 EP2=10.77.0.12 EP3=10.77.0.13 DB=10.77.0.20 EXTRA=10.77.0.30
readonly VIP=10.96.0.10
readonly RELOADS="${ZRING_E2E_RELOADS:-100}"
readonly RATE=$((1 << 20)) LONG=$((6 << 20))

e2e_begin reload-under-load
e2e_topology
install_capture
add_server_addrs "$EP1" "$EP2" "$EP3" "$DB"
route_vips 10.96.0.0/16
start_server "$NS_S" 8080 "$EP1" "$EP2" "$EP3" "$DB" "$S4"
start_server "$NS_S" 9090 "$EP1" "$EP2" "$EP3"

mkdir -p "$E2E_TMP/cfg"
FILE="$E2E_TMP/cfg/workloads.json"
mkconfig --service "web,$VIP,80=9090" --workload "ep1,$EP1,web" --workload "db,$DB" >"$E2E_TMP/C.json"
mkconfig --service "web,$VIP,80=8080" --workload "ep1,$EP1,web" --workload "ep2,$EP2,web" \
  --workload "ep3,$EP3" --workload "db,$DB" >"$E2E_TMP/A.json"
mkconfig --service "web,$VIP,80=9090" --workload "ep1,$EP1" --workload "ep2,$EP2,web" \
  --workload "ep3,$EP3,web" --workload "db,$DB" --workload "extra,$EXTRA" >"$E2E_TMP/B.json"
declare -A WORKLOADS=([A]=4 [B]=5 [C]=2)
# Every upstream a VIP connection may have, whichever config it started with.
VIP_UPSTREAMS=" $EP1:9090 $EP1:8080 $EP2:8080 $EP2:9090 $EP3:9090 "

cp "$E2E_TMP/C.json" "$FILE"
start_zring --config "$FILE"
wait_config_version 1 || fail "zring did not load the first config"

# --- load ----------------------------------------------------------------------
STOP="$E2E_TMP/stop"
seed="${ZRING_E2E_SEED:-$RANDOM}"
log "load seed $seed"
LOADERS=()
loop_client() {   # loop_client NAME HOST PORT WORKERS
  client "$NS_C" loop --host "$2" --port "$3" --workers "$4" --until "$STOP" \
    --seed "$seed" --timeout 30 >"$E2E_TMP/loop-$1.out" 2>&1 &
  track $!
  LOADERS+=("$!:loop-$1")
}
loop_client vip "$VIP" 80 6
loop_client db "$DB" 8080 2
loop_client pass "$S4" 8080 2

long_slot() {     # long_slot K: long paced transfers to the VIP until STOP
  while [ ! -e "$STOP" ]; do
    client "$NS_C" xfer --host "$VIP" --port 80 --up "$LONG" --down "$LONG" \
      --up-rate "$RATE" --down-rate "$RATE" --timeout 60 || echo "result=FAILED"
  done >"$E2E_TMP/long-$1.out" 2>&1
}
for k in 1 2 3; do
  long_slot "$k" &
  track $!
  LOADERS+=("$!:long-$k")
done
# Everything flowing before the first reload.
wait_until 10 at_least 12 access_count || fail "the load did not start (access lines: $(access_count))"

# --- reloads -------------------------------------------------------------------
# applied PREV WL: zring has logged a version > PREV, and the last one has WL workloads.
applied() {
  local line
  line="$(grep 'msg="config loaded"' "$ZLOG" | tail -n1)"
  [ "$(access_field "$line" version)" -gt "$1" ] && [ "$(access_field "$line" workloads)" = "$2" ]
}

T0="$(now)"
for ((i = 1; i <= RELOADS; i++)); do
  if ((i % 2)); then want=A other=B; else want=B other=A; fi
  prev="$(config_version)"
  if ((i % 10 == 0)); then
    cfg_write_rename "$E2E_TMP/$want.json" "$FILE"
    cfg_write_inplace "$E2E_TMP/$other.json" "$FILE"
    cfg_write_rename "$E2E_TMP/$want.json" "$FILE"
  elif ((i % 5 == 0)); then
    cfg_write_inplace "$E2E_TMP/$want.json" "$FILE"
  else
    cfg_write_rename "$E2E_TMP/$want.json" "$FILE"
  fi
  wait_until 5 applied "$prev" "${WORKLOADS[$want]}" ||
    fail "reload $i ($want): zring did not apply it within 5 s (last: $(grep 'config loaded' "$ZLOG" | tail -n1))"
  for l in "${LOADERS[@]}"; do
    proc_alive "${l%%:*}" || fail "reload $i: load generator ${l#*:} ended early: $(cat "$E2E_TMP/${l#*:}.out")"
  done
done
reload_secs="$(elapsed_since "$T0")"
versions="$(config_version)"
log "ok: $RELOADS reloads in ${reload_secs}s: zring at version $versions ($(config_loads) configs applied), $(access_count) connections so far"
[ "$versions" -ge $((RELOADS + 1)) ] || fail "want at least $((RELOADS + 1)) versions, zring is at $versions"
# A reject is allowed only where an in-place write was caught half-written
# (see CONFIG_PARTIAL_WRITE_ERRORS in lib.sh); the complete file was then
# applied, as checked after every reload above.
[ "$(config_other_errors)" -eq 0 ] ||
  fail "zring rejected a valid config: $(grep 'msg="config error"' "$ZLOG" | grep -vE "$CONFIG_PARTIAL_WRITE_ERRORS" | head -n3)"
partial="$(config_partial_errors)"
[ "$(config_rejects)" -eq "$partial" ] || fail "$(config_rejects) rejects but $partial partial-write errors: $(grep 'config' "$ZLOG" | grep -v 'config loaded' | head -n6)"
[ "$partial" -eq 0 ] || log "note: $partial in-place writes were read half-written (empty or cut) and rejected before the whole file applied"

# --- stop the load, check every connection ----------------------------------------
touch "$STOP"
for l in "${LOADERS[@]}"; do
  pid="${l%%:*}" name="${l#*:}"
  wait_gone "$pid" 300 || fail "$name did not stop within 30 s"
  rc=0
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || fail "$name exited $rc: $(head -n5 "$E2E_TMP/$name.out")"
done
conns=0
for name in vip db pass; do
  out="$(head -n1 "$E2E_TMP/loop-$name.out")"
  [[ "$out" == result=ok\ * ]] || fail "loop-$name: $(head -n5 "$E2E_TMP/loop-$name.out")"
  [ "$(access_field "$out" failed)" = 0 ] || fail "loop-$name: $out"
  n="$(access_field "$out" conns)"
  [ "$n" -ge 10 ] || fail "loop-$name made only $n connections: $out"
  conns=$((conns + n))
  log "ok: loop-$name: $out"
done
long=0
for k in 1 2 3; do
  bad="$(grep -vc '^result=ok ' "$E2E_TMP/long-$k.out" || true)"
  [ "$bad" -eq 0 ] || fail "long transfers in slot $k failed: $(grep -v '^result=ok ' "$E2E_TMP/long-$k.out" | head -n3)"
  n="$(grep -c '^result=ok ' "$E2E_TMP/long-$k.out")"
  [ "$n" -ge 1 ] || fail "slot $k made no long transfer"
  long=$((long + n))
done
log "ok: $long long transfers ($((LONG >> 20)) MiB each way), all intact"
conns=$((conns + long))

# One access line per connection, none with an error.
wait_until 10 at_least "$conns" access_count || fail "want $conns access lines, got $(access_count)"
sleep 0.3
[ "$(access_count)" -eq "$conns" ] || fail "clients made $conns connections, zring logged $(access_count) access lines"
errors="$(grep 'msg=access' "$ZLOG" | grep -vc ' error=-$' || true)"
[ "$errors" -eq 0 ] || fail "$errors access lines carry an error: $(grep 'msg=access' "$ZLOG" | grep -v ' error=-$' | head -n3)"

# Every VIP connection went to an endpoint and port of some config.
declare -A seen=()
while read -r up; do
  [[ "$VIP_UPSTREAMS" == *" $up "* ]] || fail "a VIP connection went to $up, which no config sends it to"
  seen[$up]=$((${seen[$up]:-0} + 1))
done < <(access_to "$VIP:80" | sed -n 's/.* upstream=\([^ ]*\) .*/\1/p')
summary="$(for k in "${!seen[@]}"; do printf '%s=%s ' "$k" "${seen[$k]}"; done)"
log "ok: VIP connections by upstream: $summary"
[[ "${seen[$EP1:8080]:-0}" -gt 0 && "${seen[$EP3:9090]:-0}" -gt 0 ]] ||
  fail "want both A's (ep1:8080) and B's (ep3:9090) endpoints used under load: $summary"
long_lines="$(access_to "$VIP:80" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^duration_ms=/) { split($i, d, "="); if (d[2] >= 5000) n++ } } END { print n + 0 }')"
[ "$long_lines" -ge "$long" ] || fail "want $long VIP connections lasting >= 5 s (the long ones), found $long_lines"

# --- the final config (B) is in effect ------------------------------------------------
applied 0 "${WORKLOADS[B]}" || fail "the last config applied is not B: $(grep 'config loaded' "$ZLOG" | tail -n1)"
before="$(access_lines_to "$VIP:80")"
client_ok "$NS_C" many --host "$VIP" --port 80 --conns 40 --max-up 4096 --max-down 4096 --seed "$seed"
wait_until 5 at_least $((before + 40)) access_lines_to "$VIP:80" || fail "no access lines for the last 40 VIP connections"
last="$(access_to "$VIP:80" | tail -n 40 | sed -n 's/.* upstream=\([^ ]*\) .*/\1/p' | sort | uniq -c | tr -s ' \n' ' ')"
[ "$(access_to "$VIP:80" | tail -n 40 | grep -cE " upstream=($EP2|$EP3):9090 ")" -eq 40 ] ||
  fail "after the last reload (B) VIP connections must go to ep2/ep3:9090: $last"
log "ok: final config B in effect: last 40 VIP connections:$last"

pass "$RELOADS reloads under load (${reload_secs}s, $versions versions): $conns connections, none failed, every byte checked"
