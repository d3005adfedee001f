#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: GET /config_dump of a config of 200,000 workloads never stalls
# the control thread's other endpoints, and costs little memory.
#   zring runs with a small config; a file of 200,000 more workloads
#   (tests/tools/zr_mkconfig.py --bulk) is renamed in and applied.
#   1. /config_dump is fetched while /healthz/ready is probed every 50 ms,
#      one connection per probe (tests/tools/zr_probe.py): every probe sent
#      while the dump was being sent answered 200 within 300 ms, and there
#      were at least 10 of them (before the dump was written piece by piece
#      as it is sent, a probe waited for the whole render, seconds).
#   2. The dump is complete, valid JSON: every workload, the version in
#      force. zring's resident memory grew by less than 64 MiB while it was
#      sent (the document is over 100 MB; rendered whole it cost about five
#      times that).
#   3. An HTTP/1.0 client gets the same document, ended by the close.
#   4. 4 dumps read slowly at once: a fifth is answered 503 with
#      Retry-After at once; once those clients are gone, 200 again.
#   5. SIGTERM while a slow client reads a dump: the dump is cut (the client
#      sees an incomplete body, not a short one) and zring exits 0 at once,
#      not when the client has read it all.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly ADMIN=http://127.0.0.1:15000 N=200000
# A probe that takes longer than this waited on the dump: an idle endpoint
# answers in a few ms, even on a busy 2-core machine.
readonly PROBE_MAX_MS=300
readonly RSS_MAX_KB=$((64 * 1024))

e2e_begin admin-dump-large
e2e_topology
command -v curl >/dev/null || skip "curl not found"

mkdir -p "$E2E_TMP/cfg"
FILE="$E2E_TMP/cfg/workloads.json"
mkconfig --workload "ep1,10.77.0.11" >"$FILE"
# Under ASan, freed memory waits in a quarantine (256 MiB by default) before
# it is reused: keep it small here, or it would count as growth in 2.
ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=16" start_zring --workers 1 --config "$FILE"
wait_config_version 1 || fail "zring did not load version 1"
mkconfig --workload "ep1,10.77.0.11" --bulk "$N" --out "$E2E_TMP/big.json" ||
  fail "cannot write a config of $N workloads"
cfg_write_rename "$E2E_TMP/big.json" "$FILE"
wait_config_version 2 120 || fail "the file of $N workloads was not applied within 120 s"
log "$N workloads loaded: $(grep 'msg="config loaded"' "$ZLOG" | tail -n1)"

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$ZPID/status"; }

# --- 1 and 2: a dump while readiness is probed -------------------------------------------
rm -f "$E2E_TMP/probe.stop" "$E2E_TMP/rss.stop"
ns_c "$PY" "$TOOLS/zr_probe.py" --host 127.0.0.1 --port 15021 --every 0.05 \
  --stop "$E2E_TMP/probe.stop" --out "$E2E_TMP/probe.samples" >"$E2E_TMP/probe.out" 2>&1 &
PROBE_PID=$!
track "$PROBE_PID"
wait_until 10 grep -qs READY "$E2E_TMP/probe.out" || fail "the readiness prober did not start"
rss0="$(rss_kb)"
(while [ ! -e "$E2E_TMP/rss.stop" ]; do rss_kb; sleep 0.05; done) >"$E2E_TMP/rss.samples" &
RSS_PID=$!
track "$RSS_PID"
t0="$(date +%s.%N)"
st="$(ns_c curl -s --max-time 120 -o "$E2E_TMP/dump.json" -w '%{http_code}' "$ADMIN/config_dump")" ||
  fail "1: curl of /config_dump failed (exit $?)"
t1="$(date +%s.%N)"
touch "$E2E_TMP/probe.stop" "$E2E_TMP/rss.stop"
wait_gone "$PROBE_PID" 100 || fail "the readiness prober did not stop"
wait_gone "$RSS_PID" 50 || fail "the memory sampler did not stop"
[ "$st" = 200 ] || fail "1: /config_dump answered $st"
secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
log "dump: $(stat -c %s "$E2E_TMP/dump.json") bytes in ${secs}s; prober: $(tail -n1 "$E2E_TMP/probe.out")"

read -r count worst bad < <(awk -v a="$t0" -v b="$t1" -v max="$PROBE_MAX_MS" '
  $1 >= a && $1 <= b { n++; if ($2 > w) w = $2; if ($3 != 200 || $2 >= max) bad++ }
  END { printf "%d %.1f %d\n", n, w, bad }' "$E2E_TMP/probe.samples")
[ "$count" -ge 10 ] || fail "1: only $count probes while the dump was sent in ${secs}s (want 10 or more)"
[ "$bad" -eq 0 ] || fail "1: $bad of $count probes during the dump took ${PROBE_MAX_MS} ms or more, or were not 200 (slowest: ${worst} ms): $(awk -v a="$t0" -v b="$t1" '$1 >= a && $1 <= b' "$E2E_TMP/probe.samples" | sort -k2 -n -r | head -n5 | tr '\n' ';')"
log "ok: 1: $count probes while the dump was sent, all 200, slowest ${worst} ms (limit ${PROBE_MAX_MS} ms)"

# check_dump FILE WHAT: FILE is the whole document of the version in force.
check_dump() {
  local out
  out="$("$PY" - "$1" "$FILE" "$((N + 1))" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["version"] == 2, d["version"]
assert d["source"] == sys.argv[2], d["source"]
w = d["config"]["workloads"]
assert len(w) == int(sys.argv[3]), len(w)
assert w[0]["name"] == "ep1" and w[-1]["name"] == "bulk%d" % (len(w) - 2), (w[0], w[-1])
assert d["config"]["services"] == [] and d["config"]["policies"] == []
print(len(w))
PY
)" || fail "$2: the dump is not the whole document: $out; ends with: $(tail -c 300 "$1")"
  log "ok: $2: the dump is valid JSON with all $out workloads"
}
check_dump "$E2E_TMP/dump.json" 2
peak="$(sort -n "$E2E_TMP/rss.samples" | tail -n1)"
grew=$((${peak:-0} - rss0))
[ "$(wc -l <"$E2E_TMP/rss.samples")" -ge 5 ] || fail "2: too few memory samples"
[ "$grew" -lt "$RSS_MAX_KB" ] || fail "2: zring's RSS grew by $((grew / 1024)) MiB while the dump was sent (from $((rss0 / 1024)) MiB), limit $((RSS_MAX_KB / 1024)) MiB"
log "ok: 2: RSS $((rss0 / 1024)) MiB before, $((peak / 1024)) MiB at most while sending (limit +$((RSS_MAX_KB / 1024)) MiB)"

# --- 3: HTTP/1.0 --------------------------------------------------------------------------
hdr="$(ns_c curl -s --http1.0 --max-time 120 -D - -o "$E2E_TMP/dump10.json" "$ADMIN/config_dump" | tr -d '\r')" ||
  fail "3: HTTP/1.0 dump failed"
grep -qi '^transfer-encoding' <<<"$hdr" && fail "3: chunked to an HTTP/1.0 client: $hdr"
check_dump "$E2E_TMP/dump10.json" 3

# --- 4: too many at once ----------------------------------------------------------------
slow=()
for i in 1 2 3 4; do
  ns_c curl -s --limit-rate 200K --max-time 60 -o /dev/null "$ADMIN/config_dump" &
  slow+=($!)
  track "$!"
done
sleep 1
hdr="$(ns_c curl -s --max-time 5 -D - -o "$E2E_TMP/busy.body" "$ADMIN/config_dump" | tr -d '\r')"
grep -q '^HTTP/1.1 503' <<<"$hdr" || fail "4: a fifth dump at once was not refused: $hdr"
grep -qi '^retry-after: 1$' <<<"$hdr" || fail "4: no Retry-After: $hdr"
log "ok: 4: a fifth dump at once: 503, $(cat "$E2E_TMP/busy.body")"
kill "${slow[@]}" 2>/dev/null
for p in "${slow[@]}"; do wait_gone "$p" 50 || fail "4: a slow client did not stop"; done
dump_head() { [ "$(http_status -I "$ADMIN/config_dump")" = 200 ]; }
wait_until 10 dump_head || fail "4: /config_dump still refused after the slow clients left"
[ "$(ready_status)" = 200 ] || fail "4: not ready afterwards"
log "ok: 4: /config_dump answers again once they are gone"

# --- 5: SIGTERM during a slow dump --------------------------------------------------------
ns_c curl -s --limit-rate 200K --max-time 120 -o "$E2E_TMP/cut.json" "$ADMIN/config_dump" &
CUT_PID=$!
track "$CUT_PID"
wait_until 10 test -s "$E2E_TMP/cut.json" || fail "5: the slow dump did not start"
kill -TERM "$ZPID"
t0="$(now)"
zring_wait_exit 10
took="$(elapsed_since "$t0")"
[ "$ZRING_RC" -eq 0 ] || fail "5: zring exited $ZRING_RC on SIGTERM during a dump, want 0"
rc=0
wait "$CUT_PID" || rc=$?
[ "$rc" -ne 0 ] || fail "5: the cut dump looked complete to its client"
! "$PY" -c 'import json, sys; json.load(open(sys.argv[1]))' "$E2E_TMP/cut.json" 2>/dev/null ||
  fail "5: the cut dump parses as whole JSON"
log "ok: 5: SIGTERM during a slow dump: exit 0 in ${took}s; the client saw the body cut (curl exit $rc)"

pass "/config_dump of $N workloads in ${secs}s: readiness answered every probe within ${PROBE_MAX_MS} ms, RSS +$((grew / 1024)) MiB; HTTP/1.0; 503 + Retry-After past 4 at once; cut on SIGTERM"
