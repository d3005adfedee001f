#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: zring keeps nghttp2's contract: nghttp2_session_send is never
# called from inside one of nghttp2's own callbacks. Both zrings run with
# tests/support/h2_guard.c preloaded, which aborts the process the moment
# that rule is broken; the traffic makes every refusal and close happen
# inside a callback, with more frames queued in the same read.
#   a. server side (B's :15008): one write carries the HEADERS of seven
#      requests: malformed (400), a destination that is not B's workload
#      (401), a policy deny (401), zring's own port (503), a closed port
#      (503, after the connect fails) and two CONNECTs that echo (200);
#   b. client side (A): a python HBONE server holds its answers until four
#      streams are open on A's tunnel, then answers 503, 200, 401, 200 in
#      one write: A resets the two refused clients (closing streams from
#      inside the response callback) and the other two echo intact;
#   c. A and B are alive, log no guard abort, and exit 0 on SIGTERM.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin hbone-h2-contract
"$PY" -c 'import h2' 2>/dev/null || skip "python3-h2 not installed (Debian: apt-get install python3-h2)"
command -v openssl >/dev/null || skip "openssl not found"
GUARD="${ZRING_E2E_H2GUARD:-$SRCDIR/build/tests/support/libh2_guard.so}"
[ -f "$GUARD" ] || fail "the nghttp2 guard $GUARD is not built"
e2e_topology
install_capture_in "$NS_S"
certs="$E2E_TMP/certs"
hbone_certs "$certs"
cdir="$certs/cluster.local/ns/default/sa/client"
sdir="$certs/cluster.local/ns/default/sa/server"
cfg="$E2E_TMP/w.json"
hbone_config "$cfg" client server '
  {"name":"deny-8081","namespace":"default","scope":"Namespace","action":"Deny",
   "rules":[[[{"destinationPorts":[8081]}]]]}'
start_echo 7000

# zr_guarded NAME NS ARGS...: zr_start with the guard preloaded (ASan
# builds: the sanitizer runtime need not come first).
zr_guarded() {
  LD_PRELOAD="$GUARD" ASAN_OPTIONS="verify_asan_link_order=0:${ASAN_OPTIONS:-}" zr_start "$@"
}
no_abort() {
  ! grep -q 'h2_guard:' "$(zr_log "$1")" || fail "$1 broke nghttp2's contract: $(grep 'h2_guard:' "$(zr_log "$1")")"
  proc_alive "$(zr_pid "$1")" || fail "zring $1 died"
}

# --- a: refusals from inside the request callbacks --------------------------------
zr_guarded B "$NS_S" --config "$cfg" --certs "$certs" --connect-timeout 2s
for round in 1 2 3; do
  out="$(ip netns exec "$NS_C" "$PY" "$TOOLS/zr_h2burst.py" --addr "$S4:15008" \
    --cert "$cdir/cert-chain.pem" --key "$cdir/key.pem" --ca "$certs/root-cert.pem" \
    --req bad=400 --req "10.77.0.9:80=401" --req "$S4:8081=401" --req "$S4:15008=503" \
    --req "$S4:7000=200" --req "$S4:7009=503" --req "$S4:7000=200")" ||
    fail "round $round: burst of requests into B: $out"
  no_abort B
done
log "ok: 3 rounds of 7 requests in one write: $(tr '\n' ' ' <<<"$out")"
zr_stop B
no_abort_log() { ! grep -q 'h2_guard:' "$(zr_log "$1")" || fail "$1 broke nghttp2's contract"; }
no_abort_log B

# --- b: refusals from inside the response callback ---------------------------------
install_capture_in "$NS_C"
ip netns exec "$NS_S" "$PY" "$TOOLS/zr_h2server.py" --listen "$S4" --port 15008 \
  --cert "$sdir/cert-chain.pem" --key "$sdir/key.pem" --ca "$certs/root-cert.pem" \
  --statuses 503,200,401,200 --batch 4 >"$E2E_TMP/h2server.out" 2>"$E2E_TMP/h2server.log" &
track $!
wait_until 10 grep -qs READY "$E2E_TMP/h2server.out" || fail "python HBONE server did not start"
zr_guarded A "$NS_C" --config "$cfg" --certs "$certs" --workers 1
out="$(ns_c "$PY" "$TOOLS/zr_echocheck.py" --host "$S4" --port 9000 --bytes 65536 --conns 4 --timeout 10)" || true
log "4 clients through A: $out"
wait_until 10 at_least 4 zr_count A 'msg=access' || fail "A logged $(zr_count A msg=access) access lines, want 4"
no_abort A
ok="$(zr_access A | grep -c ' error=-' || true)"
refused="$(zr_access A | grep -cE 'error="tunnel refused: (503|401)' || true)"
[ "$ok" -eq 2 ] && [ "$refused" -eq 2 ] ||
  fail "A: want 2 clean and 2 refused (503, 401) access lines, got $ok and $refused: $(zr_access A)"
echoed="$(grep -c '^stream .* status=200 bytes=65536 result=ended' "$E2E_TMP/h2server.log" || true)"
[ "$echoed" -eq 2 ] || fail "python server echoed $echoed streams in full, want 2: $(cat "$E2E_TMP/h2server.log")"
zr_stop A
no_abort_log A
pass "every refusal and close from inside nghttp2's callbacks, no send re-entered it"
