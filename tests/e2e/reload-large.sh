#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: a config that takes seconds to load never stalls the endpoints.
#   zring runs with a small config (the VIP goes to ep1). A file with the VIP
#   moved to ep2 plus 200,000 more workloads (tests/tools/zr_mkconfig.py
#   --bulk; 300,000, near the 4,000,000-value limit, if the machine loads
#   200,000 in under a second) is renamed over it while /healthz/ready is
#   probed every 50 ms, one connection per probe, as a kubelet does
#   (tests/tools/zr_probe.py).
#   1. The load really is slow: its "config loaded" line says load_ms >= 1000
#      (>= 600 will do for 300,000 on a fast machine).
#   2. Every probe sent while it loaded answered 200 within 300 ms (and
#      within half the load time: before the loader thread, a probe sent as
#      the load began waited for all of it), and there were at least 10 of
#      them; the new version applies and the VIP moves.
#   3. The file is renamed in again with one workload more, and SIGTERM
#      comes while it is being parsed: zring exits 0, without applying it and
#      without a sanitizer report, within the time a load took in 1 plus 5 s
#      (the shutdown waits for the parse under way, no more).
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly EP1=10.77.0.11 EP2=10.77.0.12 VIP=10.96.0.10
# A probe that takes longer than this is the control thread waiting on the
# load: an idle endpoint answers in a few ms, even on a busy 2-core machine.
readonly PROBE_MAX_MS=300

e2e_begin reload-large
e2e_topology
install_capture
add_server_addrs "$EP1" "$EP2"
route_vips 10.96.0.0/16
start_who eps 8080 "$EP1" "$EP2"

mkdir -p "$E2E_TMP/cfg"
FILE="$E2E_TMP/cfg/workloads.json"

expect_vip() {
  local dist
  dist="$(who "$VIP" 80 5)"
  [ "$dist" = "$1=5" ] || fail "$2: want the VIP routed to $1 (5 of 5), got $dist"
  log "ok: $2: version $(config_version), VIP -> $1"
}

# big N OUT: the VIP on ep2, plus N bulk workloads.
big() {
  mkconfig --service "web,$VIP,80=8080" --workload "ep2,$EP2,web" --bulk "$1" --out "$2" ||
    fail "cannot write a config of $1 workloads"
}

# probe_start / probe_stop: zr_probe.py against readiness in the client pod.
probe_start() {
  PROBE_N=$((${PROBE_N:-0} + 1))
  PROBE_OUT="$E2E_TMP/probe-$PROBE_N.samples"
  rm -f "$E2E_TMP/probe.stop"
  ns_c "$PY" "$TOOLS/zr_probe.py" --host 127.0.0.1 --port 15021 --every 0.05 \
    --stop "$E2E_TMP/probe.stop" --out "$PROBE_OUT" >"$E2E_TMP/probe-$PROBE_N.out" 2>&1 &
  PROBE_PID=$!
  track "$PROBE_PID"
  wait_until 10 grep -qs READY "$E2E_TMP/probe-$PROBE_N.out" || fail "the readiness prober did not start"
}
probe_stop() {
  touch "$E2E_TMP/probe.stop"
  wait_gone "$PROBE_PID" 100 || fail "the readiness prober did not stop"
  log "prober: $(tail -n1 "$E2E_TMP/probe-$PROBE_N.out")"
}

mkconfig --service "web,$VIP,80=8080" --workload "ep1,$EP1,web" >"$FILE"
start_zring --config "$FILE"
wait_config_version 1 || fail "zring did not load version 1"
expect_vip "$EP1:8080" "start"

# --- 1 and 2: a slow load while readiness is probed ------------------------------------
n=200000
while :; do
  big "$n" "$E2E_TMP/big.json"
  want=$(($(config_version) + 1))
  probe_start
  t0="$(date +%s.%N)"
  cfg_write_rename "$E2E_TMP/big.json" "$FILE"
  wait_config_version "$want" 120 || fail "the file of $n workloads was not applied within 120 s"
  t1="$(date +%s.%N)"
  probe_stop
  line="$(grep 'msg="config loaded"' "$ZLOG" | tail -n1)"
  load_ms="$(access_field "$line" load_ms)"
  [ "$(access_field "$line" workloads)" -eq $((n + 1)) ] || fail "2: the loaded line does not count $((n + 1)) workloads: $line"
  log "$n workloads: load_ms=$load_ms, applied $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')s after the rename"
  [ "$load_ms" -ge 1000 ] && break
  if [ "$n" -ge 300000 ]; then
    [ "$load_ms" -ge 600 ] && break
    fail "1: even $n workloads load in ${load_ms} ms: this check needs a load of 600 ms or more"
  fi
  n=300000
done
log "ok: 1: the load took ${load_ms} ms: $line"
max_ms=$((load_ms / 2 < PROBE_MAX_MS ? load_ms / 2 : PROBE_MAX_MS))

# The probes sent while zring was loading: from the rename to the new version.
read -r count worst bad < <(awk -v a="$t0" -v b="$t1" -v max="$max_ms" '
  $1 >= a && $1 <= b { n++; if ($2 > w) w = $2; if ($3 != 200 || $2 >= max) bad++ }
  END { printf "%d %.1f %d\n", n, w, bad }' "$PROBE_OUT")
[ "$count" -ge 10 ] || fail "2: only $count probes while loading (want 10 or more)"
[ "$bad" -eq 0 ] || fail "2: $bad of $count probes while loading took ${max_ms} ms or more, or were not 200 (slowest: ${worst} ms): $(awk -v a="$t0" -v b="$t1" '$1 >= a && $1 <= b' "$PROBE_OUT" | sort -k2 -n -r | head -n5 | tr '\n' ';')"
log "ok: 2: $count probes while loading, all 200, slowest ${worst} ms (limit ${max_ms} ms)"
expect_vip "$EP2:8080" "2: the big file applied"

# --- 3: SIGTERM during a parse -----------------------------------------------------------
big $((n + 1)) "$E2E_TMP/big2.json"
v="$(config_version)"
cfg_write_rename "$E2E_TMP/big2.json" "$FILE"
# The debounce is 100 ms; the parse then takes about load_ms.
sleep 0.4
kill -TERM "$ZPID"
t0="$(now)"
zring_wait_exit $((load_ms / 1000 + 5))
took="$(elapsed_since "$t0")"
[ "$ZRING_RC" -eq 0 ] || fail "3: zring exited $ZRING_RC on SIGTERM during a parse, want 0"
[ "$(config_version)" -eq "$v" ] || fail "3: the file parsed during the shutdown was applied: $(grep 'config loaded' "$ZLOG" | tail -n1)"
log "ok: 3: SIGTERM during a parse: exit 0 in ${took}s (limit $((load_ms / 1000 + 5)) s), nothing applied"

pass "a config that loads in ${load_ms} ms: readiness answered every probe within ${max_ms} ms meanwhile; SIGTERM during a parse exits 0"
