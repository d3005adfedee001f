#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: the HTTP endpoints under abuse. After each case zring still
# answers GET /healthz/ready with 200, still proxies a connection, and is
# not spinning (CPU while idle, and while the abusive client is held).
#   1. garbage, a TLS ClientHello and NUL bytes on every port: 400, closed.
#   2. a 64 KiB header: 431 (the answer arrives: lingering close); a big
#      body: 413, and a refused POST /quitquitquit drains nothing; unknown
#      path 404, wrong method 405 with Allow.
#   3. a half-sent request held open, and one trickled a byte at a time:
#      closed after the 5 s request timeout, without an answer.
#   4. 300 concurrent idle connections to 15021: those over the 128-client
#      limit are closed at once, the rest at the request timeout.
#   5. clients that never read: pipelined requests, and one 5+ MiB
#      config_dump: closed by the send timeout.
#   6. out of descriptors (RLIMIT_NOFILE 64) while clients pile up on
#      15021: accept pauses ("http accept paused") without spinning, and
#      everything recovers once the idle clients are gone.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly ADMIN=http://127.0.0.1:15000 IDLE_TICKS=20

e2e_begin admin-abuse
e2e_topology
install_capture
command -v curl >/dev/null || skip "curl not found"
start_server "$NS_S" 8080 "$S4"

# A config big enough that its dump (5+ MiB) overflows the socket buffers.
big="$E2E_TMP/big.json"
"$PY" - "$big" <<'PY'
import json, sys
wl = [{"uid": f"c1//v1/Pod/load/w{i}", "name": f"w{i}", "namespace": "load",
       "serviceAccount": f"sa{i % 50}", "workloadIps": [f"10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}"],
       "protocol": "TCP", "node": "node-1", "canonicalName": f"app{i % 100}",
       "canonicalRevision": "v1", "workloadName": f"app{i % 100}-v1"} for i in range(12000)]
json.dump({"workloads": wl}, open(sys.argv[1], "w"))
PY
start_zring --workers 1 --config "$big"

cpu_now() { zring_cpu_ticks; }

# healthy CASE: ready, proxying, and idle CPU under IDLE_TICKS in 2 s.
healthy() {
  local st t0 t1
  st="$(ready_status)"
  [ "$st" = 200 ] || fail "$1: readiness is $st afterwards, want 200"
  client_ok "$NS_C" xfer --host "$S4" --port 8080 --up 20000 --down 20000 --timeout 10
  t0="$(cpu_now)"
  sleep 2
  t1="$(cpu_now)"
  [ $((t1 - t0)) -le "$IDLE_TICKS" ] || fail "$1: zring used $((t1 - t0)) CPU ticks in 2 idle seconds (spinning?)"
  log "ok: $1: ready, proxying, idle CPU $((t1 - t0)) ticks in 2 s"
}

# expect_http CASE FIELD=VALUE... -- ZR_HTTP ARGS: run zr_http.py in the
# client pod; each FIELD must have VALUE in its result line.
expect_http() {
  local name="$1" out kv want=()
  shift
  while [ "$1" != -- ]; do want+=("$1"); shift; done
  shift
  out="$(zhttp "$NS_C" "$@")" || fail "$name: zr_http $*: $out"
  for kv in "${want[@]}"; do
    [ "$(access_field "$out" "${kv%%=*}")" = "${kv#*=}" ] || fail "$name: want $kv, got: $out"
  done
  log "ok: $name: $out"
  RESULT="$out"
}

# about_5s SECS: the request timeout fired, not something else.
about_5s() { float_le 4.5 "$1" && float_le "$1" 7; }

# busy_ticks CMD...: run CMD; BUSY is the CPU ticks zring used meanwhile.
busy_ticks() {
  local t0
  t0="$(cpu_now)"
  "$@"
  BUSY=$(($(cpu_now) - t0))
}

# --- 1: garbage ---------------------------------------------------------------------
for port in 15000 15021 15020; do
  expect_http "1 garbage :$port" status=400 -- raw --host 127.0.0.1 --port "$port" --data 'garbage\r\n\r\n' --within 3
  expect_http "1 tls :$port" status=400 -- raw --host 127.0.0.1 --port "$port" \
    --data '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x00\x01\x02\x03' --within 3
  expect_http "1 nul :$port" status=400 -- raw --host 127.0.0.1 --port "$port" --data '\x00\x00\x00\x00\r\n\r\n' --within 3
done
healthy "1 garbage"

# --- 2: oversized -------------------------------------------------------------------
expect_http "2 64 KiB header" status=431 close=eof -- raw --host 127.0.0.1 --port 15021 --header-bytes 65536 --within 5
expect_http "2 9 KB header" status=431 -- raw --host 127.0.0.1 --port 15000 --header-bytes 9000 --within 5
expect_http "2 big body" status=413 -- raw --host 127.0.0.1 --port 15000 \
  --data 'POST /quitquitquit HTTP/1.1\r\nContent-Length: 100000\r\n\r\nxxxxxxxxxxxxxxxx' --within 5
! grep -q msg=draining "$ZLOG" || fail "2: a refused POST /quitquitquit started a drain"
[ "$(http_status "$ADMIN/nope")" = 404 ] || fail "2: unknown path is not 404"
hdrs="$(ns_c curl -s -i -X PUT --max-time 5 "$ADMIN/logging")"
grep -q '^HTTP/1.1 405' <<<"$hdrs" || fail "2: PUT /logging is not 405: $hdrs"
grep -q '^Allow: GET, HEAD, POST' <<<"$hdrs" || fail "2: no Allow header: $hdrs"
healthy "2 oversized"

# --- 3: slow clients ----------------------------------------------------------------
busy_ticks expect_http "3 half-sent request" status=- -- slow --host 127.0.0.1 --port 15021 \
  --data 'GET /healthz/ready HTTP/1.1\r\nHost: x\r\n' --within 10
secs="$(access_field "$RESULT" secs)"
about_5s "$secs" || fail "3: closed after ${secs}s, want about 5"
[ "$BUSY" -le 20 ] || fail "3: zring used $BUSY CPU ticks holding one slow client"
busy_ticks expect_http "3 trickle" status=- -- slow --host 127.0.0.1 --port 15000 \
  --data 'GET /config_dump HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' \
  --every 0.2 --within 10
secs="$(access_field "$RESULT" secs)"
about_5s "$secs" || fail "3: trickle closed after ${secs}s, want about 5"
healthy "3 slow clients"

# --- 4: many idle connections -----------------------------------------------------
busy_ticks expect_http "4 300 idle" -- idle --host 127.0.0.1 --port 15021 --conns 300 --within 12
at_once="$(access_field "$RESULT" closed_at_once)"
kept="$(access_field "$RESULT" kept)"
[ "$at_once" -ge 172 ] || fail "4: only $at_once of 300 closed at once (limit 128)"
[ "$kept" -le 128 ] || fail "4: $kept idle clients kept, limit 128"
[ "$BUSY" -le 50 ] || fail "4: zring used $BUSY CPU ticks over the idle flood"
grep -q 'msg="http client limit reached' "$ZLOG" || fail "4: the limit was not logged"
healthy "4 idle flood"

# --- 5: clients that never read ----------------------------------------------------
busy_ticks expect_http "5 pipelined, never read" close=reset -- nonreader --host 127.0.0.1 \
  --port 15000 --path / --within 15
secs="$(access_field "$RESULT" secs)"
float_le "$secs" 12 || fail "5: dropped after ${secs}s"
size="$(ns_c curl -s --max-time 10 -o /dev/null -w '%{size_download}' "$ADMIN/config_dump")"
[ "$size" -gt $((5 << 20)) ] || fail "5: config_dump is only $size bytes, too small for this case"
busy_ticks expect_http "5 ${size}-byte dump, never read" close=reset -- nonreader --host 127.0.0.1 \
  --port 15000 --path /config_dump --within 15
secs="$(access_field "$RESULT" secs)"
float_le "$secs" 12 || fail "5: dropped after ${secs}s"
healthy "5 non-readers"
stop_zring

# --- 6: out of descriptors on accept ----------------------------------------------
start_zring_nofile 64 --workers 1
busy_ticks expect_http "6 idle under RLIMIT_NOFILE 64" -- idle --host 127.0.0.1 --port 15021 \
  --conns 80 --within 15
grep -q 'msg="http accept paused" server=readiness .*error="Too many open files"' "$ZLOG" ||
  fail "6: accept never paused on EMFILE: $(grep -i 'http' "$ZLOG" | tail -n3)"
[ "$BUSY" -le 60 ] || fail "6: zring used $BUSY CPU ticks while out of descriptors (spinning?)"
healthy "6 out of descriptors"

pass "garbage, oversized, slow, idle floods, non-readers and EMFILE: answered or closed, never stuck or spinning"
