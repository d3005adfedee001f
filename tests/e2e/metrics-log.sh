#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: the access log, field by field, for a known traffic pattern
# (lib.sh, "telemetry"): a zring in each pod, TELE_N direct transfers and
# TELE_V through a service VIP, each with its own byte counts.
#   1. plaintext (TCP workloads): A logs each as outbound, B (15006) as
#      inbound: addresses, workloads (pod names), the service for VIP
#      routes, security=none, no identities, bytes each way under both
#      names, response_flags=-; a connection to a closed port is logged by
#      A with response_flags=CONNECT, one to a port a policy denies by B with
#      response_flags=DENY and the policy's name;
#   2. HBONE: A's lines carry both identities and mutual_tls, B's (dir=hbone)
#      the client's forwarded address, workload and proven identity;
#   3. --log-format json with a workload name full of quotes, backslashes
#      and non-ASCII: every line both zrings write is one valid JSON object,
#      the access lines carrying the same values, the name intact.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin metrics-log
tele_topology
certs="$E2E_TMP/certs"
hbone_certs "$certs"
start_server "$NS_S" 8080 "$S4"

# line_up NAME BYTES: zring NAME's access line whose up_bytes is BYTES (each
# transfer has its own size); fails unless there is exactly one.
line_up() {
  local lines n
  lines="$(zr_access "$1" | sed 's/$/ /' | grep -F " up_bytes=$2 " | sed 's/ $//' || true)"
  n="$(grep -c . <<<"$lines" || true)"
  [ "$n" -eq 1 ] || fail "$1: $n access lines with up_bytes=$2, want 1"
  echo "$lines"
}

# want LINE KEY VALUE: the field's value, or a recorded failure.
want() {
  local got
  got="$(access_field "$1" "$2")"
  [ "$got" = "$3" ] || soft_fail "$2=$got, want $3, in: $1"
}

# absent LINE KEY: the line has no such field.
absent() {
  [ -z "$(access_field "$1" "$2")" ] || soft_fail "unexpected $2= in: $1"
}

# check_pair BDIR A_LINE B_LINE UP DOWN: what both zrings agree on. B's src
# is always its TCP peer, an address of the client pod; the client's own
# address reaches B only through HBONE, as forwarded_for (information).
check_pair() {
  local a="$2" b="$3" up="$4" down="$5" src
  for l in "$a" "$b"; do
    want "$l" src_workload client-pod
    want "$l" src_namespace default
    want "$l" dst_workload server-pod
    want "$l" dst_namespace default
    want "$l" up_bytes "$up"
    want "$l" down_bytes "$down"
    want "$l" response_flags -
    want "$l" error -
    [[ "$(access_field "$l" duration_ms)" =~ ^[0-9]+$ ]] || soft_fail "duration_ms not a number: $l"
  done
  want "$a" dir outbound
  want "$a" bytes_sent "$up"
  want "$a" bytes_recv "$down"
  want "$b" dst "$S4:8080"
  want "$b" bytes_sent "$down"
  want "$b" bytes_recv "$up"
  src="$(access_field "$a" src)"
  [[ "$src" == "$C4":* ]] || soft_fail "A's src is not the client pod: $a"
  # B's src is the TCP peer it saw (A's tunnel or upstream socket, from
  # the client pod's address); through HBONE the client's own address
  # arrives only as information, in forwarded_for.
  [[ "$(access_field "$b" src)" == "$C4":* ]] || soft_fail "B's src is not the client pod: $b"
  if [ "$1" = hbone ]; then
    want "$b" forwarded_for "$src"
  else
    absent "$b" forwarded_for
  fi
}

# phase NAME: every transfer of the pattern checked in A's and B's lines.
# B's dir is inbound (plaintext) or hbone; security none or mutual_tls.
phase() {
  local bdir="$1" sec="$2" i up down a b
  for ((i = 1; i <= TELE_N; i++)); do
    up="$(wire_up "$(tele_up "$i")" "$(tele_down "$i")")"
    down="$(wire_down "$(tele_up "$i")" "$(tele_down "$i")")"
    a="$(line_up A "$up")" b="$(line_up B "$up")"
    check_pair "$bdir" "$a" "$b" "$up" "$down"
    want "$a" dst "$S4:8080"
    want "$a" route workload
    absent "$a" dst_service
    want "$a" security "$sec"
    want "$b" security "$sec"
    want "$b" dir "$bdir"
  done
  for ((i = 1; i <= TELE_V; i++)); do
    up="$(wire_up "$(tele_vip_up "$i")" "$(tele_vip_down "$i")")"
    down="$(wire_down "$(tele_vip_up "$i")" "$(tele_vip_down "$i")")"
    a="$(line_up A "$up")" b="$(line_up B "$up")"
    check_pair "$bdir" "$a" "$b" "$up" "$down"
    want "$a" dst "$TELE_VIP:80"
    want "$a" route service
    want "$a" upstream "$S4:8080"
    want "$a" dst_service web.default.svc.cluster.local
    want "$a" security "$sec"
    want "$b" dir "$bdir"
  done
}

wait_lines() {
  wait_until 10 at_least "$2" zr_count "$1" 'msg=access' ||
    fail "$1: $(zr_count "$1" msg=access) access lines, want $2"
}

# --- 1: plaintext -----------------------------------------------------------------
tele_config "$E2E_TMP/tcp.json" TCP
zr_start A "$NS_C" --config "$E2E_TMP/tcp.json" --workers 2
zr_start B "$NS_S" --config "$E2E_TMP/tcp.json" --workers 2
tele_traffic
client "$NS_C" probe --host "$S4" --port "$TELE_CLOSED" --within 5 >/dev/null ||
  fail "a connection to the closed port $S4:$TELE_CLOSED was not refused or reset"
client "$NS_C" probe --host "$S4" --port "$TELE_DENIED" --within 5 >/dev/null ||
  fail "a connection to the denied port $S4:$TELE_DENIED was not reset"
wait_lines A $((TELE_N + TELE_V + 2))
wait_lines B $((TELE_N + TELE_V + 1))
log "A: $(zr_access A | head -n1)"
log "B: $(zr_access B | head -n1)"
phase inbound none
if { zr_access A; zr_access B; } | grep -qE ' (src|dst)_identity='; then
  soft_fail "a plaintext access line names an identity"
fi
failed="$(zr_access A | grep -F " dst=$S4:$TELE_CLOSED " || true)"
[ "$(grep -c . <<<"$failed")" -eq 1 ] || fail "A: want one access line for the closed port: $failed"
want "$failed" response_flags CONNECT
want "$failed" up_bytes 0
want "$failed" down_bytes 0
[[ "$(access_field "$failed" error)" == '"upstream connect:'* ]] ||
  soft_fail "the failed connection's error is not the upstream connect: $failed"
# B denies by policy: DENY, and the policy named.
denied="$(zr_access B | grep -F " dst=$S4:$TELE_DENIED " || true)"
[ "$(grep -c . <<<"$denied")" -eq 1 ] || fail "B: want one access line for the denied port: $denied"
want "$denied" response_flags DENY
want "$denied" policy "default/deny-$TELE_DENIED"
want "$denied" src_workload client-pod
want "$denied" up_bytes 0
[[ "$(access_field "$denied" error)" == '"denied by policy:'* ]] ||
  soft_fail "the denied connection's error does not say so: $denied"
[ "$(zr_count A 'msg=access')" -eq $((TELE_N + TELE_V + 2)) ] || soft_fail "A: extra access lines"
[ "$(zr_count B 'msg=access')" -eq $((TELE_N + TELE_V + 1)) ] || soft_fail "B: extra access lines"
zr_stop A
zr_stop B
soft_check

# --- 2: HBONE -----------------------------------------------------------------
tele_config "$E2E_TMP/hbone.json" HBONE
zr_start A "$NS_C" --config "$E2E_TMP/hbone.json" --certs "$certs" --workers 2
zr_start B "$NS_S" --config "$E2E_TMP/hbone.json" --certs "$certs" --workers 2
tele_traffic
wait_lines A $((TELE_N + TELE_V))
wait_lines B $((TELE_N + TELE_V))
log "A: $(zr_access A | head -n1)"
log "B: $(zr_access B | head -n1)"
phase hbone mutual_tls
while IFS= read -r l; do
  want "$l" src_identity "$ID_CLIENT"
  want "$l" dst_identity "$ID_SERVER"
done < <(zr_access A; zr_access B)
zr_stop A
zr_stop B
soft_check

# --- 3: JSON, hostile names ------------------------------------------------------
# The client pod's name: a quote, a backslash, a tab and a snowman.
sed 's/"name":"client-pod"/"name":"cl\\"ient\\\\pod\\t\\u2603"/' "$E2E_TMP/hbone.json" >"$E2E_TMP/json.json"
zr_start A "$NS_C" --config "$E2E_TMP/json.json" --certs "$certs" --workers 2 --log-format json
zr_start B "$NS_S" --config "$E2E_TMP/json.json" --certs "$certs" --workers 2 --log-format json
up=$((123 * 1024)) down=$((456 * 1024))
client_ok "$NS_C" xfer --host "$S4" --port 8080 --up "$up" --down "$down"
wait_until 10 at_least 1 zr_count A '"msg":"access"' || fail "A logged no JSON access line"
wait_until 10 at_least 1 zr_count B '"msg":"access"' || fail "B logged no JSON access line"
zr_stop A
zr_stop B
"$PY" - "$(zr_log A)" "$(zr_log B)" "$(wire_up $up $down)" "$(wire_down $up $down)" \
  "$C4" "$S4" "$ID_CLIENT" "$ID_SERVER" <<'PY' || fail "JSON access lines are wrong (above)"
import json, sys

log_a, log_b, up, down, c4, s4, id_c, id_s = sys.argv[1:]
up, down = int(up), int(down)
name = 'cl"ient\\pod\t\u2603'
bad = []

def lines(path):
    out = []
    for n, raw in enumerate(open(path, "rb"), 1):
        try:
            out.append(json.loads(raw.decode("utf-8")))
        except ValueError as e:
            bad.append(f"{path}:{n}: not one JSON object ({e}): {raw[:200]!r}")
    return out

def expect(line, key, value):
    if line.get(key) != value:
        bad.append(f"{key}={line.get(key)!r}, want {value!r}, in {line}")

a = [l for l in lines(log_a) if l.get("msg") == "access"]
b = [l for l in lines(log_b) if l.get("msg") == "access"]
if len(a) != 1 or len(b) != 1:
    bad.append(f"want one access line each, A has {len(a)}, B {len(b)}")
else:
    a, b = a[0], b[0]
    for l in (a, b):
        expect(l, "src_workload", name)
        expect(l, "src_namespace", "default")
        expect(l, "dst_workload", "server-pod")
        expect(l, "src_identity", id_c)
        expect(l, "dst_identity", id_s)
        expect(l, "security", "mutual_tls")
        expect(l, "up_bytes", up)
        expect(l, "down_bytes", down)
        expect(l, "response_flags", "-")
        expect(l, "error", "-")
        expect(l, "dst", f"{s4}:8080")
        if not isinstance(l.get("duration_ms"), int):
            bad.append(f"duration_ms is not a number: {l}")
    expect(a, "dir", "outbound")
    expect(a, "bytes_sent", up)
    expect(a, "bytes_recv", down)
    expect(b, "dir", "hbone")
    expect(b, "bytes_sent", down)
    expect(b, "bytes_recv", up)
    expect(b, "forwarded_for", a.get("src"))
    if not str(b.get("src", "")).startswith(c4 + ":") or b.get("src") == a.get("src"):
        bad.append(f"B's src is not its TCP peer in the client pod: {b}")
    if not str(a.get("src", "")).startswith(c4 + ":"):
        bad.append(f"A's src is not the client pod: {a}")
for m in bad:
    print(m, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

soft_check
pass "access lines right field by field: plaintext both ways, HBONE both sides, JSON with hostile names"
