#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: --idle-timeout closes silent connections, and only those.
#   A. --idle-timeout 1s: a proxied connection on which nothing moves is
#      closed by zring within ~3 s (zring checks once a second), not before
#      ~1 s; the client sees EOF or a reset; the access line says
#      error="idle timeout...".
#   B. --idle-timeout 1s: a connection that sends one byte every 300 ms for
#      4 s (client -> server only) stays open and its bytes arrive intact;
#      so does one that only receives (server -> client, ~1 KiB every 340 ms
#      for ~4 s). Their access lines are clean.
#   C. --idle-timeout 0 (never, the default since issue 17; keepalive.sh
#      covers dead peers): a connection silent for 3 s survives, then
#      carries an exchange intact.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin idle-timeout
e2e_topology
install_capture
start_server "$NS_S" 8080 "$S4"
start_server "$NS_S" 8081 "$S4"
start_server "$NS_S" 8082 "$S4"

# slow_ok ARGS...: tests/tools/zr_slow.py in the client pod; must succeed.
slow_ok() {
  local out
  out="$(ns_c "$PY" "$TOOLS/zr_slow.py" "$@")" || fail "zr_slow.py $* failed: $out"
  log "ok: ${out%%$'\n'*}"
}

# access_line PORT: zring's access line for the (only) connection to PORT.
access_line() { access_to "$S4:$1" | tail -n1; }
has_access() { [ -n "$(access_line "$1")" ]; }

# --- A: an idle connection is closed ------------------------------------------
start_zring --idle-timeout 1s
out="$(client "$NS_C" probe --host "$S4" --port 8080 --within 3)" ||
  fail "A: idle connection not closed within 3 s ($out)"
secs="$(access_field "$out" secs)"
float_le 0.9 "$secs" || fail "A: idle connection closed after ${secs}s, before the 1 s idle timeout ($out)"
log "ok: A: idle connection closed: $out"
wait_until 5 has_access 8080 || fail "A: no access line for the idle connection"
line="$(access_line 8080)"
case "$(access_field "$line" error)" in
  '"idle timeout'*) ;;
  *) fail "A: access line does not say idle timeout: $line" ;;
esac
log "ok: A: $line"

# --- B: a slow but steady connection is not ---------------------------------
slow_ok trickle --host "$S4" --port 8081 --secs 4 --interval 0.3 --down 4096 --timeout 20
client_ok "$NS_C" xfer --host "$S4" --port 8082 --up 0 --down 12288 --down-rate 3000 --timeout 20
for port in 8081 8082; do
  wait_until 5 has_access "$port" || fail "B: no access line for the connection to port $port"
  line="$(access_line "$port")"
  [ "$(access_field "$line" error)" = - ] || fail "B: steady connection ended with an error: $line"
  duration="$(access_field "$line" duration_ms)"
  [ "$duration" -ge 3500 ] || fail "B: steady connection lasted only ${duration} ms: $line"
done
[ "$(access_field "$(access_line 8082)" down_bytes)" -gt 12288 ] ||
  fail "B: down_bytes too small: $(access_line 8082)"
log "ok: B: trickling connections stayed open past 4 idle timeouts"
proc_alive "$ZPID" || fail "zring died"
stop_zring

# --- C: --idle-timeout 0 never closes ----------------------------------------
start_zring --idle-timeout 0
slow_ok idle --host "$S4" --port 8080 --idle 3 --up 65536 --down 65536 --timeout 20
wait_until 5 has_access 8080 || fail "C: no access line"
line="$(access_line 8080)"
[ "$(access_field "$line" error)" = - ] || fail "C: connection ended with an error: $line"
log "ok: C: $line"

pass "idle connections close after --idle-timeout, active ones and --idle-timeout 0 do not"
