#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: routing by the workload config (--config).
#   The server pod carries one address per "pod"; zr_who.py answers on each
#   with the address and port a connection reached. The config has:
#     web   VIP 10.96.0.10, port 80 -> targetPort 8080;
#           endpoints ep1 ep2 ep3 (healthy) and ep4 (Unhealthy)
#     alt   VIP 10.96.0.11, port 80 -> 8080; endpoints ep2, and ep5 whose own
#           services map says 80 -> 9090 (the workload's map wins)
#     dead  VIP 10.96.0.12, port 80; its only endpoint is ep4 (Unhealthy)
#     db    a workload outside any service
#   1. 300 connections to web's VIP spread over ep1..ep3 (each > 15 %),
#      ep4 gets none, all on 8080 (nothing listens on the VIP or on port 80),
#      and zring's access lines agree (route=service, upstream=, dst_workload=);
#   2. alt: ep5 is reached on 9090, ep2 on 8080;
#   3. dead: the client is reset at once, error "no healthy endpoint";
#   4. a workload address routes direct (route=workload, same port), and an
#      address the config does not know passes through (route=passthrough),
#      as does a VIP on a port its service does not have;
#   5. capacity weights (reload to 1:2:5, ep4 Unhealthy with capacity 10):
#      400 connections split in that proportion, ep4 still gets none.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly EP1=10.77.0.11 EP2=10.77.0.12 EP3=10.77.0.13 EP4=10.77.0.14 EP5=10.77.0.15 DB=10.77.0.20
readonly WEB=10.96.0.10 ALT=10.96.0.11 DEAD=10.96.0.12

e2e_begin vip-routing
e2e_topology
install_capture
add_server_addrs "$EP1" "$EP2" "$EP3" "$EP4" "$EP5" "$DB"
route_vips 10.96.0.0/16
start_who all "8080 9090" "$EP1" "$EP2" "$EP3" "$EP4" "$EP5" "$DB" "$S4"

CFG_DIR="$E2E_TMP/cfg"
CFG="$CFG_DIR/workloads.json"
mkdir -p "$CFG_DIR"

# config CAP1 CAP2 CAP3 REVISION: the mesh above with web's endpoint weights.
config() {
  mkconfig \
    --service "web,$WEB,80=8080" --service "alt,$ALT,80=8080" --service "dead,$DEAD,80=8080" \
    --workload "ep1,$EP1,web,cap=$1" \
    --workload "ep2,$EP2,web,alt,cap=$2" \
    --workload "ep3,$EP3,web,cap=$3" \
    --workload "ep4,$EP4,web,dead,unhealthy,cap=10" \
    --workload "ep5,$EP5,alt,map=80=9090" \
    --workload "db,$DB" \
    --revision "$4"
}

config 1 1 1 equal >"$CFG"
"$ZRING_BIN" check "$CFG" >"$E2E_TMP/check.out" 2>&1 || fail "zring check rejects the test config: $(cat "$E2E_TMP/check.out")"
start_zring --config "$CFG" --connect-timeout 2s
wait_config_version 1 || fail "zring did not log config version 1"
grep 'msg="config loaded"' "$ZLOG" | grep -q 'workloads=6 services=3' ||
  fail "config loaded line does not count 6 workloads and 3 services: $(grep 'config loaded' "$ZLOG")"

# pct N OF: N as a whole percentage of OF.
pct() { echo $(($1 * 100 / $2)); }

# --- 1: the VIP spreads over its healthy endpoints, port mapped --------------
n=300
base="$(access_count)"
dist="$(who "$WEB" 80 "$n")"
log "web VIP x$n: $dist"
total=0
for ep in "$EP1" "$EP2" "$EP3"; do
  c="$(who_count "$dist" "$ep:8080")"
  total=$((total + c))
  [ "$c" -gt $((n * 15 / 100)) ] || fail "endpoint $ep got $c of $n connections ($(pct "$c" "$n") %), want > 15 %: $dist"
done
[ "$total" -eq "$n" ] || fail "only $total of $n connections reached ep1..ep3 on 8080: $dist"
[ "$(who_count "$dist" "$EP4:8080")" -eq 0 ] || fail "the Unhealthy endpoint ep4 got connections: $dist"
wait_access $((base + n))
lines="$(access_to "$WEB:80")"
[ "$(grep -c . <<<"$lines")" -eq "$n" ] || fail "want $n access lines for dst=$WEB:80, got $(grep -c . <<<"$lines")"
[ "$(grep -c ' route=service ' <<<"$lines")" -eq "$n" ] || fail "access lines for the VIP without route=service: $(grep -v ' route=service ' <<<"$lines" | head -n3)"
for i in 1 2 3; do
  ep="EP$i"
  c="$(grep -c " upstream=${!ep}:8080 dst_workload=ep$i dst_namespace=e2e " <<<"$lines" || true)"
  [ "$c" -eq "$(who_count "$dist" "${!ep}:8080")" ] ||
    fail "zring logged $c connections to ep$i (${!ep}:8080), the endpoint saw $(who_count "$dist" "${!ep}:8080")"
done
errors="$(grep -vc ' error=- *$' <<<"$lines" || true)"
[ "$errors" -eq 0 ] || fail "$errors VIP connections logged an error: $(grep -v ' error=- *$' <<<"$lines" | head -n3)"
log "ok: access lines: $(head -n1 <<<"$lines")"

# --- 2: a workload's own port map wins over the service's --------------------
dist="$(who "$ALT" 80 60)"
log "alt VIP x60: $dist"
c5="$(who_count "$dist" "$EP5:9090")" c2="$(who_count "$dist" "$EP2:8080")"
[ $((c5 + c2)) -eq 60 ] || fail "alt: connections went elsewhere than ep5:9090 / ep2:8080: $dist"
((c5 > 0 && c2 > 0)) || fail "alt: want both ep5:9090 and ep2:8080 used: $dist"
log "ok: ep5 reached on its own target port 9090 ($c5), ep2 on the service's 8080 ($c2)"

# --- 3: a service with no healthy endpoint ------------------------------------
out="$(client "$NS_C" probe --host "$DEAD" --port 80 --within 2)" ||
  fail "dead: connection to a service without healthy endpoints not reset promptly: $out"
wait_until 3 grep -q " dst=$DEAD:80 .*error=\"no healthy endpoint" "$ZLOG" ||
  fail "dead: no access line with error=\"no healthy endpoint...\" for $DEAD:80: $(access_to "$DEAD:80")"
log "ok: dead: $out; $(access_to "$DEAD:80" | tail -n1)"
[ "$(grep -c "^conn local=$EP4:" "$E2E_TMP/who-all.log" || true)" -eq 0 ] || fail "ep4 (Unhealthy) was connected to"

# --- 4: workload direct, passthrough ------------------------------------------
dist="$(who "$DB" 8080 5)"
[ "$dist" = "$DB:8080=5" ] || fail "workload db: want 5 x $DB:8080, got $dist"
wait_until 3 at_least 5 access_lines_to "$DB:8080" || fail "no access lines for dst=$DB:8080"
line="$(access_to "$DB:8080" | tail -n1)"
[[ "$line" == *" route=workload dst_workload=db dst_namespace=e2e "* ]] ||
  fail "workload db: want route=workload dst_workload=db (and no upstream=): $line"
# An endpoint's own address is a workload address too: direct, port unmapped.
dist="$(who "$EP3" 9090 3)"
[ "$dist" = "$EP3:9090=3" ] || fail "workload ep3 direct on 9090: got $dist"
log "ok: workload: $line"

dist="$(who "$S4" 8080 5)"
[ "$dist" = "$S4:8080=5" ] || fail "passthrough: want 5 x $S4:8080, got $dist"
wait_until 3 at_least 5 access_lines_to "$S4:8080" || fail "no access lines for dst=$S4:8080"
line="$(access_to "$S4:8080" | tail -n1)"
[ "$(access_field "$line" route)" = passthrough ] && [ -z "$(access_field "$line" upstream)" ] &&
  [ -z "$(access_field "$line" dst_workload)" ] ||
  fail "unknown address: want route=passthrough and no upstream=/dst_workload=: $line"
log "ok: passthrough: $line"

# A VIP on a port its service does not list is not the service: passthrough
# to the VIP itself, which nothing answers (connect timeout 2 s -> reset).
out="$(client "$NS_C" probe --host "$WEB" --port 8080 --within 5)" ||
  fail "VIP on an unlisted port: client not reset after the connect timeout: $out"
wait_until 3 at_least 1 access_lines_to "$WEB:8080" || fail "no access line for dst=$WEB:8080"
line="$(access_to "$WEB:8080" | tail -n1)"
[ "$(access_field "$line" route)" = passthrough ] && [ -z "$(access_field "$line" upstream)" ] ||
  fail "VIP on an unlisted port: want route=passthrough: $line"
log "ok: VIP, unlisted port: $out; $line"

# --- 5: capacity weights -------------------------------------------------------
config 1 2 5 weighted >"$CFG.new"
cfg_write_rename "$CFG.new" "$CFG"
wait_config_version 2 || fail "zring did not apply the weighted config (version 2)"
n=400
dist="$(who "$WEB" 80 "$n")"
c1="$(who_count "$dist" "$EP1:8080")" c2="$(who_count "$dist" "$EP2:8080")" c3="$(who_count "$dist" "$EP3:8080")"
log "web VIP x$n, weights 1:2:5: $dist (ep1 $(pct "$c1" $n) %, ep2 $(pct "$c2" $n) %, ep3 $(pct "$c3" $n) %)"
[ $((c1 + c2 + c3)) -eq "$n" ] || fail "weighted: connections outside ep1..ep3:8080: $dist"
[ "$c1" -gt 0 ] || fail "weighted: ep1 (capacity 1) got nothing: $dist"
((c1 < c2 && c2 < c3)) || fail "weighted: want ep1 < ep2 < ep3 (1:2:5): $dist"
((c3 >= n / 2 && c3 <= n * 3 / 4)) || fail "weighted: ep3 (5/8 = 62 %) got $(pct "$c3" $n) %: $dist"
[ "$c1" -le $((n * 22 / 100)) ] || fail "weighted: ep1 (1/8 = 12 %) got $(pct "$c1" $n) %: $dist"
[ "$(grep -c "^conn local=$EP4:" "$E2E_TMP/who-all.log" || true)" -eq 0 ] || fail "ep4 (Unhealthy, capacity 10) was connected to"

pass "VIP spread over healthy endpoints with port mapping and weights; workload direct; passthrough"
