#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: a config, certificate or trust bundle that is not a regular file
# is refused at once, and nothing waits on it.
#   zring runs with --config and --certs (identity default/client). Then, one
#   after the other, each swapped in by rename as a user would:
#   1. a FIFO as the config (mkfifo d/.f; mv -f d/.f d/workloads.json): the
#      reload is rejected with error="is a FIFO, not a regular file" within
#      seconds, and meanwhile /healthz/ready, /metrics and the admin port keep
#      answering at once (each probe within 2 s), the VIP keeps its route;
#   2. a symlink to /dev/zero as the config: rejected as a character device
#      (not read for 64 MiB first);
#   3. a good file: version 2 applies and the VIP moves;
#   4. a FIFO as the identity's cert-chain.pem: the certificate is refused with
#      the reason, the previous one is kept, readiness stays 200; the real file
#      back: certificates reloaded;
#   5. a FIFO as root-cert.pem: "trust bundle unreadable" with the reason, the
#      previous certificates stay; the real file back: reloaded;
#   6. another good config still applies (version 3); SIGTERM exits 0 within 3 s.
#   Then `zring check` on a FIFO and on a symlink to /dev/zero, zring
#   started on a FIFO config, and zring started with a FIFO trust bundle,
#   each fail within 2 s with the message.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly EP1=10.77.0.11 EP2=10.77.0.12 EP3=10.77.0.13 VIP=10.96.0.10

e2e_begin reload-not-regular
command -v curl >/dev/null || skip "curl not found"
command -v openssl >/dev/null || skip "openssl not found"
e2e_topology
install_capture
add_server_addrs "$EP1" "$EP2" "$EP3"
route_vips 10.96.0.0/16
start_who eps 8080 "$EP1" "$EP2" "$EP3"

mkdir -p "$E2E_TMP/cfg"
FILE="$E2E_TMP/cfg/workloads.json"
CERTS="$E2E_TMP/certs"
hbone_certs "$CERTS" client
ID_DIR="$CERTS/cluster.local/ns/default/sa/client"

expect_vip() {
  local dist
  dist="$(who "$VIP" 80 5)"
  [ "$dist" = "$1=5" ] || fail "$2: want the VIP routed to $1 (5 of 5), got $dist"
  log "ok: $2: version $(config_version), VIP -> $1"
}

# swap_in SRC DST: put SRC (a FIFO, a symlink, a file) at DST by rename.
swap_in() { mv -f "$1" "$2"; }

# endpoints_answer WHAT: readiness 200, /metrics 200 and /config_dump 200,
# each within 2 s, probed 10 times over about 2 s.
endpoints_answer() {
  local i st
  for ((i = 0; i < 10; i++)); do
    st="$(http_status --max-time 2 http://127.0.0.1:15021/healthz/ready)"
    [ "$st" = 200 ] || fail "$1: /healthz/ready answered $st (000: nothing within 2 s), want 200"
    st="$(http_status --max-time 2 http://127.0.0.1:15020/metrics)"
    [ "$st" = 200 ] || fail "$1: /metrics answered $st, want 200"
    st="$(http_status --max-time 2 http://127.0.0.1:15000/config_dump)"
    [ "$st" = 200 ] || fail "$1: /config_dump answered $st, want 200"
    sleep 0.2
  done
  log "ok: $1: readiness, metrics and admin answered 10 times in a row"
}

# wait_log N PATTERN WHAT: at least N lines of zring's log match PATTERN
# (grep -E) within 5 s; LINE is the last of them.
wait_log() {
  wait_until 5 at_least "$1" zlog_count "$2" ||
    fail "$3: no log line like /$2/ within 5 s: $(tail -n5 "$ZLOG")"
  LINE="$(grep -E "$2" "$ZLOG" | tail -n1)"
}
zlog_count() { grep -cE "$1" "$ZLOG" || true; }

# --- start ----------------------------------------------------------------------
mkconfig --service "web,$VIP,80=8080" --workload "ep1,$EP1,web" >"$FILE"
start_zring --config "$FILE" --certs "$CERTS"
wait_config_version 1 || fail "zring did not load version 1"
wait_until 5 ready_is 200 || fail "not ready with a valid identity"
expect_vip "$EP1:8080" "start"

# --- 1: a FIFO as the config ------------------------------------------------------
mkfifo "$E2E_TMP/cfg/.f"
t0="$(now)"
swap_in "$E2E_TMP/cfg/.f" "$FILE"
wait_log 1 'msg="config reload rejected"' "1: FIFO config"
took="$(elapsed_since "$t0")"
[ "$(access_field "$LINE" error)" = '"is a FIFO, not a regular file"' ] ||
  fail "1: the reject line does not say why: $LINE"
[ "$(access_field "$LINE" file)" = "$FILE" ] || fail "1: the reject line does not name the file: $LINE"
log "ok: 1: FIFO refused ${took}s after the swap: $LINE"
endpoints_answer "1: FIFO config"
expect_vip "$EP1:8080" "1: after the FIFO"

# --- 2: a symlink to /dev/zero ------------------------------------------------------
ln -s /dev/zero "$E2E_TMP/cfg/.z"
swap_in "$E2E_TMP/cfg/.z" "$FILE"
wait_log 2 'msg="config reload rejected"' "2: symlink to /dev/zero"
[ "$(access_field "$LINE" error)" = '"is a character device, not a regular file"' ] ||
  fail "2: the reject line does not say why: $LINE"
log "ok: 2: $LINE"
endpoints_answer "2: /dev/zero config"

# --- 3: a good file again -------------------------------------------------------------
mkconfig --service "web,$VIP,80=8080" --workload "ep2,$EP2,web" >"$E2E_TMP/v2.json"
cfg_write_rename "$E2E_TMP/v2.json" "$FILE"
wait_config_version 2 || fail "3: the good file after the FIFO was not applied"
expect_vip "$EP2:8080" "3: good file"

# --- 4: a FIFO as the certificate chain ------------------------------------------------
cp "$ID_DIR/cert-chain.pem" "$E2E_TMP/chain.pem"
mkfifo "$ID_DIR/.c"
swap_in "$ID_DIR/.c" "$ID_DIR/cert-chain.pem"
wait_log 1 'msg="certificate refused"' "4: FIFO cert-chain.pem"
[ "$(access_field "$LINE" error)" = '"cert-chain.pem unreadable: is a FIFO, not a regular file"' ] ||
  fail "4: the refusal does not say why: $LINE"
[ "$(access_field "$LINE" keeping)" = '"previous certificate"' ] || fail "4: the previous certificate was not kept: $LINE"
log "ok: 4: $LINE"
endpoints_answer "4: FIFO cert-chain.pem"
cp "$E2E_TMP/chain.pem" "$ID_DIR/.c" && swap_in "$ID_DIR/.c" "$ID_DIR/cert-chain.pem"
wait_log 1 'msg="certificates reloaded".* refused=0' "4: the real chain back"

# --- 5: a FIFO as the trust bundle -----------------------------------------------------
cp "$CERTS/root-cert.pem" "$E2E_TMP/root.pem"
mkfifo "$CERTS/.r"
swap_in "$CERTS/.r" "$CERTS/root-cert.pem"
wait_log 1 'msg="trust bundle unreadable"' "5: FIFO root-cert.pem"
[ "$(access_field "$LINE" error)" = '"is a FIFO, not a regular file"' ] ||
  fail "5: the trust bundle line does not say why: $LINE"
[ "$(access_field "$LINE" file)" = "$CERTS/root-cert.pem" ] || fail "5: the line does not name the file: $LINE"
wait_log 1 'certificate reload failed' "5: FIFO root-cert.pem"
log "ok: 5: $(grep 'trust bundle unreadable' "$ZLOG" | tail -n1)"
endpoints_answer "5: FIFO root-cert.pem"
cp "$E2E_TMP/root.pem" "$CERTS/.r" && swap_in "$CERTS/.r" "$CERTS/root-cert.pem"
wait_log 2 'msg="certificates reloaded".* refused=0' "5: the real bundle back"

# --- 6: still reloading; SIGTERM ---------------------------------------------------------
mkconfig --service "web,$VIP,80=8080" --workload "ep3,$EP3,web" >"$E2E_TMP/v3.json"
cfg_write_rename "$E2E_TMP/v3.json" "$FILE"
v="$(config_version)"
wait_config_version $((v + 1)) || fail "6: the last good file was not applied"
expect_vip "$EP3:8080" "6: good file"
mkfifo "$E2E_TMP/cfg/.f"
swap_in "$E2E_TMP/cfg/.f" "$FILE"
wait_log 3 'msg="config reload rejected"' "6: FIFO config again"
kill -TERM "$ZPID"
t0="$(now)"
zring_wait_exit 10
took="$(elapsed_since "$t0")"
[ "$ZRING_RC" -eq 0 ] || fail "6: zring exited $ZRING_RC on SIGTERM, want 0"
float_le "$took" 3 || fail "6: SIGTERM took ${took}s, want < 3 s"
log "ok: 6: SIGTERM with a FIFO in place: exit 0 in ${took}s"

# --- zring check / startup on what is not a file ------------------------------------------
# expect_fast_fail WHAT WANT CMD...: CMD exits 1 within 2 s (killed at 10 s)
# and its output has WANT.
FAST_FAILS=0
expect_fast_fail() {
  local what="$1" want="$2" out rc=0 t
  out="$E2E_TMP/zring-fastfail-$((++FAST_FAILS)).log"
  shift 2
  t="$(now)"
  timeout 10 "$@" >"$out" 2>&1 || rc=$?
  t="$(elapsed_since "$t")"
  [ "$rc" -eq 1 ] || fail "$what: exit $rc after ${t}s, want 1 (124: still waiting at 10 s): $(tail -n3 "$out")"
  float_le "$t" 2 || fail "$what: took ${t}s, want < 2 s"
  grep -qF -- "$want" "$out" || fail "$what: no '$want' in: $(tail -n3 "$out")"
  log "ok: $what: exit 1 in ${t}s: $(grep -F -- "$want" "$out" | head -n1)"
}
ln -s /dev/zero "$E2E_TMP/zero.json"
expect_fast_fail "zring check FIFO" "$FILE: is a FIFO, not a regular file" "$ZRING_BIN" check "$FILE"
expect_fast_fail "zring check symlink to /dev/zero" \
  "$E2E_TMP/zero.json: is a character device, not a regular file" "$ZRING_BIN" check "$E2E_TMP/zero.json"
expect_fast_fail "zring --config FIFO" 'error="is a FIFO, not a regular file"' \
  ip netns exec "$NS_C" "$ZRING_BIN" --config "$FILE"
cp -r "$CERTS" "$E2E_TMP/certs-fifo"
rm -f "$E2E_TMP/certs-fifo/root-cert.pem"
mkfifo "$E2E_TMP/certs-fifo/root-cert.pem"
expect_fast_fail "zring --certs with a FIFO trust bundle" \
  "msg=\"trust bundle unreadable\" file=$E2E_TMP/certs-fifo/root-cert.pem error=\"is a FIFO, not a regular file\"" \
  ip netns exec "$NS_C" "$ZRING_BIN" --certs "$E2E_TMP/certs-fifo"

pass "FIFOs and a symlink to /dev/zero as config, certificate and trust bundle refused at once with the reason, endpoints kept answering, later good files applied, SIGTERM exits 0, zring check fails fast"
