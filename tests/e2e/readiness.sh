#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: GET /healthz/ready on [::]:15021.
#   1. Up: 200 "ready" from the pod (127.0.0.1, ::1) and from outside it, as
#      a kubelet probes (the pod's IPv4 and IPv6 addresses); other paths are
#      404, other methods 405; the metrics port answers HTTP.
#   2. Not ready before certificates: with --certs whose only identity is
#      expired, 503 with the reason; once a valid identity is written, 200.
#   3. Drain: with a transfer in flight, SIGTERM turns readiness 503 at once
#      ("draining") while the connection is open and zring still runs; the
#      admin endpoints still answer; the transfer completes; exit 0.
#   4. --readiness off: nothing listens on 15021; --readiness ADDR moves it.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly RATE=$((1 << 20))

e2e_begin readiness
e2e_topology
install_capture
command -v curl >/dev/null || skip "curl not found"
command -v openssl >/dev/null || skip "openssl not found"
start_server "$NS_S" 8080 "$S4"

# --- 1: ready, from inside and outside the pod -----------------------------------
start_zring
for where in "$NS_C 127.0.0.1" "$NS_C ::1" "$NS_S $C4" "$NS_S $C6"; do
  read -r ns host <<<"$where"
  st="$(ready_status "$ns" "$host")"
  [ "$st" = 200 ] || fail "1: readiness at $host from $ns is $st, want 200"
done
[ "$(http_body http://127.0.0.1:15021/healthz/ready)" = ready ] || fail "1: body is not 'ready'"
[ "$(http_status http://127.0.0.1:15021/)" = 404 ] || fail "1: / on the readiness port is not 404"
[ "$(http_status -X POST http://127.0.0.1:15021/healthz/ready)" = 405 ] || fail "1: POST is not 405"
[ "$(http_status -I http://127.0.0.1:15021/healthz/ready)" = 200 ] || fail "1: HEAD is not 200"
st="$(http_status --ns "$NS_S" "http://$C4:15020/metrics")"
[ "$st" != 000 ] || fail "1: nothing answers on the metrics port"
log "ok: 1: ready (200) from the pod and from outside it, v4 and v6; metrics port answers ($st)"
stop_zring

# --- 2: not ready until an identity is valid -------------------------------------
certs="$E2E_TMP/certs"
certs_sh ca "$certs" >/dev/null
certs_sh workload "$certs" --ns default --sa client --expired >/dev/null
start_zring --certs "$certs"
[ "$(ready_status)" = 503 ] || fail "2: readiness with only an expired identity is not 503"
body="$(ns_c curl -s --max-time 5 http://127.0.0.1:15021/healthz/ready)"
[ "$body" = "not ready: no valid certificate identity loaded" ] || fail "2: body: $body"
log "ok: 2: 503 before a valid certificate: $body"
certs_sh rotate "$certs" --ns default --sa client >/dev/null
wait_until 5 ready_is 200 || fail "2: readiness not 200 within 5 s of a valid certificate"
log "ok: 2: 200 once the identity was replaced by a valid one"
stop_zring

# --- 3: SIGTERM with a connection open ------------------------------------------
start_zring --drain-timeout 15s
client "$NS_C" xfer --host "$S4" --port 8080 --up $((RATE * 4)) --up-rate "$RATE" \
  --timeout 30 >"$E2E_TMP/paced.out" 2>&1 &
cpid=$!
track "$cpid"
wait_until 5 eval 'ns_s ss -Htn state established "sport = :8080" | grep -q .' ||
  fail "3: the paced transfer did not start"
sleep 0.3
[ "$(ready_status)" = 200 ] || fail "3: not ready before SIGTERM"
kill -TERM "$ZPID"
t0="$(now)"
wait_until 1 ready_is 503 || fail "3: readiness not 503 within 1 s of SIGTERM"
took="$(elapsed_since "$t0")"
body="$(ns_c curl -s --max-time 5 http://127.0.0.1:15021/healthz/ready)"
[ "$body" = "not ready: draining" ] || fail "3: body: $body"
[ "$(ready_status "$NS_S" "$C4")" = 503 ] || fail "3: the kubelet's view is not 503"
proc_alive "$ZPID" || fail "3: zring exited with a connection open"
proc_alive "$cpid" || fail "3: the transfer ended before the checks"
ns_s ss -Htn state established "sport = :8080" | grep -q . || fail "3: the connection is not open"
[ "$(http_status http://127.0.0.1:15000/config_dump)" = 200 ] || fail "3: admin not served during the drain"
log "ok: 3: 503 'draining' ${took}s after SIGTERM, connection open, zring running"
wait_gone "$cpid" 150 || fail "3: the transfer did not finish"
wait "$cpid" || fail "3: the transfer failed during the drain: $(cat "$E2E_TMP/paced.out")"
zring_wait_exit 10
[ "$ZRING_RC" -eq 0 ] || fail "3: zring exited $ZRING_RC, want 0"
log "ok: 3: transfer completed ($(cat "$E2E_TMP/paced.out")), exit 0"

# --- 4: off, or elsewhere ----------------------------------------------------------
start_zring --readiness off
[ "$(ready_status)" = 000 ] || fail "4: --readiness off still answers"
stop_zring
start_zring --readiness 127.0.0.1:9021
[ "$(http_status http://127.0.0.1:9021/healthz/ready)" = 200 ] || fail "4: --readiness 127.0.0.1:9021"
[ "$(ready_status)" = 000 ] || fail "4: 15021 still answers"
log "ok: 4: --readiness off and --readiness ADDR"

pass "readiness: 200 when up (in and out of the pod), 503 before certificates and from the moment of SIGTERM"
