#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: TCP keepalive on every proxied socket, no idle timeout by default
# (issue 17, "Long-lived connections"). Short figures throughout:
# --keepalive-idle 1s --keepalive-interval 1s --keepalive-probes 2.
#   A. plaintext, no --idle-timeout: while a proxied connection sits idle,
#      `ss -o` in the client pod shows a keepalive timer of under a second on
#      zring's client socket (accepted on :15001) and its upstream socket
#      (to :8080); the pod's TcpExtTCPKeepAlive count rises (probes on the
#      wire); the connection outlives 4 s of silence and then carries an
#      exchange intact.
#   B. a peer that vanishes silently (the server pod drops every packet of
#      port 8080, no FIN, no reset): keepalive finds it; zring closes the
#      connection 3 s (idle + interval * probes) after its last traffic,
#      give or take scheduling, and its access line carries the error.
#   C. --keepalive off: none of zring's sockets has a keepalive timer and no
#      probe leaves the pod.
#   D. HBONE, figures from the ZRING_KEEPALIVE_* variables: zring A's client
#      socket and tunnel socket (to :15008), zring B's tunnel socket
#      (accepted on :15008) and upstream socket all show the keepalive
#      timer; the connection outlives 4 s of silence, bytes intact. Then
#      the client pod's node vanishes (its tunnel packets dropped): zring B,
#      the tunnel's server side (which sends no HTTP/2 PING), ends the
#      stream ~3 s after the tunnel's last packet, with an error; so does A.
#   E. node-agent mode (sockets opened inside the pods' namespaces): pod1 ->
#      pod2 over HBONE through the node's zring; in pod1 the client and tunnel
#      sockets, in pod2 the tunnel and upstream sockets show the timer.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin keepalive
command -v ss >/dev/null || skip "ss not found"
KA=(--keepalive-idle 1s --keepalive-interval 1s --keepalive-probes 2)

# zr_socks NS PID FILTER...: PID's established TCP sockets in netns NS that
# match the ss FILTER, one line each, with ss -o's timer.
zr_socks() {
  local ns="$1" pid="$2"
  shift 2
  ip netns exec "$ns" ss -tnopH state established "$@" | grep -F "pid=$pid," || true
}

has_socks() { [ -n "$(zr_socks "$@")" ]; }
no_socks() { [ -z "$(zr_socks "$@")" ]; }

# has_ka_timer NS PID FILTER...: one such socket exists and every one of
# them runs a keepalive timer due within a second (the 180 s default would
# show as e.g. 2min59sec).
has_ka_timer() {
  local out
  out="$(zr_socks "$@")"
  [ -n "$out" ] || return 1
  ! grep -qvE 'timer:\(keepalive,[0-9]+ms,' <<<"$out"
}

# check_ka NS PID WHAT FILTER...: has_ka_timer, or the scenario fails.
check_ka() {
  local ns="$1" pid="$2" what="$3"
  shift 3
  wait_until 3 has_ka_timer "$ns" "$pid" "$@" ||
    fail "$what: no keepalive timer under 1 s on zring's socket: $(zr_socks "$ns" "$pid" "$@")"
  log "ok: $what: $(zr_socks "$ns" "$pid" "$@" | grep -oE 'timer:\([^)]*\)' | head -n1)"
}

# ka_probes NS: keepalive probes the netns has sent (TcpExt TCPKeepAlive).
ka_probes() {
  ip netns exec "$1" cat /proc/net/netstat |
    awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "TCPKeepAlive") c = i; h = 1 }
                      else print $c }'
}

# idle_bg NAME SECS [NS HOST]: zr_slow.py idle in the client pod (or NS),
# to the server pod (or HOST) port 8080, in the background; its result line
# goes to $E2E_TMP/NAME.out, its pid to IDLE_PID.
idle_bg() {
  ip netns exec "${3:-$NS_C}" "$PY" "$TOOLS/zr_slow.py" idle --host "${4:-$S4}" --port 8080 --idle "$2" \
    --up 65536 --down 65536 --timeout 30 >"$E2E_TMP/$1.out" 2>&1 &
  IDLE_PID=$!
  track "$IDLE_PID"
}

# idle_wait NAME: wait for idle_bg NAME to end; sets IDLE_RC and IDLE_OUT.
idle_wait() {
  IDLE_RC=0
  wait "$IDLE_PID" || IDLE_RC=$?
  IDLE_OUT="$(cat "$E2E_TMP/$1.out")"
}

client_sock='sport = :15001'
upstream_sock='dport = :8080'

# --- A: idle plaintext connection, keepalive on both of zring's sockets -------
e2e_topology
install_capture
start_server "$NS_S" 8080 "$S4"
start_zring "${KA[@]}"
probes0="$(ka_probes "$NS_C")"
idle_bg A 4
check_ka "$NS_C" "$ZPID" "A: client socket" "$client_sock"
check_ka "$NS_C" "$ZPID" "A: upstream socket" "$upstream_sock"
idle_wait A
[ "$IDLE_RC" -eq 0 ] || fail "A: the idle connection did not survive 4 s of silence: $IDLE_OUT"
log "ok: A: $IDLE_OUT"
probes="$(ka_probes "$NS_C")"
[ "$((probes - probes0))" -ge 4 ] ||
  fail "A: only $((probes - probes0)) keepalive probes left the client pod in 4 s (want >= 4: two sockets, 1 s idle)"
log "ok: A: $((probes - probes0)) keepalive probes sent during 4 s of silence"
wait_access 1
line="$(access_to "$S4:8080" | tail -n1)"
[ "$(access_field "$line" error)" = - ] || fail "A: the idle connection ended with an error: $line"

# --- B: the server vanishes silently; keepalive finds it ---------------------
wait_until 5 no_socks "$NS_C" "$ZPID" "$upstream_sock" || fail "B: A's upstream socket lingers"
idle_bg B 20
wait_until 3 has_ka_timer "$NS_C" "$ZPID" "$upstream_sock" ||
  fail "B: no upstream socket with a keepalive timer"
ns_s iptables -w 10 -I INPUT -p tcp --dport 8080 -j DROP
ns_s iptables -w 10 -I OUTPUT -p tcp --sport 8080 -j DROP
t0="$(now)"
wait_until 10 at_least 2 access_count || fail "B: zring did not close the connection to the vanished server within 10 s"
took="$(elapsed_since "$t0")"
idle_wait B
line="$(access_to "$S4:8080" | tail -n1)"
log "B: closed ${took}s after the server vanished: $line"
log "B: client: $IDLE_OUT"
[ "$IDLE_RC" -ne 0 ] || fail "B: the client's connection survived a dead server: $IDLE_OUT"
case "$(access_field "$line" error)" in
  -) fail "B: the access line has no error: $line" ;;
  *[Tt]imed*out*|*ETIMEDOUT*) ;;
  *) fail "B: the access line's error is not a timeout: $line" ;;
esac
duration="$(access_field "$line" duration_ms)"
# Detection is due 1 s + 2 x 1 s after the connection's last packet.
if [ "$duration" -lt 2500 ] || [ "$duration" -gt 6000 ]; then
  fail "B: closed after ${duration} ms, want about 3000 (idle + interval x probes): $line"
fi
log "ok: B: a silently vanished server was found by keepalive after ${duration} ms"
stop_zring
ns_s iptables -w 10 -D INPUT -p tcp --dport 8080 -j DROP
ns_s iptables -w 10 -D OUTPUT -p tcp --sport 8080 -j DROP

# --- C: --keepalive off ------------------------------------------------------
start_zring "${KA[@]}" --keepalive off
probes0="$(ka_probes "$NS_C")"
idle_bg C 3
wait_until 3 has_socks "$NS_C" "$ZPID" "$upstream_sock" || fail "C: no upstream socket"
sleep 1.5
socks="$(zr_socks "$NS_C" "$ZPID" "$client_sock")$(zr_socks "$NS_C" "$ZPID" "$upstream_sock")"
! grep -q 'keepalive' <<<"$socks" || fail "C: --keepalive off, yet a keepalive timer: $socks"
idle_wait C
[ "$IDLE_RC" -eq 0 ] || fail "C: the idle connection did not survive: $IDLE_OUT"
probes="$(ka_probes "$NS_C")"
[ "$probes" -eq "$probes0" ] || fail "C: --keepalive off, yet $((probes - probes0)) probes were sent"
log "ok: C: --keepalive off: no timer, no probe"
stop_zring

# --- D: HBONE, figures from the environment ----------------------------------
install_capture_in "$NS_S"
certs="$E2E_TMP/certs"
command -v openssl >/dev/null || skip "openssl not found"
hbone_certs "$certs"
hbone_config "$E2E_TMP/w.json"
export ZRING_KEEPALIVE_IDLE=1s ZRING_KEEPALIVE_INTERVAL=1 ZRING_KEEPALIVE_PROBES=2
zr_start A "$NS_C" --config "$E2E_TMP/w.json" --certs "$certs"
zr_start B "$NS_S" --config "$E2E_TMP/w.json" --certs "$certs"
unset ZRING_KEEPALIVE_IDLE ZRING_KEEPALIVE_INTERVAL ZRING_KEEPALIVE_PROBES
idle_bg D 4
check_ka "$NS_C" "$(zr_pid A)" "D: A's client socket" "$client_sock"
check_ka "$NS_C" "$(zr_pid A)" "D: A's tunnel socket" 'dport = :15008'
check_ka "$NS_S" "$(zr_pid B)" "D: B's tunnel socket" 'sport = :15008'
check_ka "$NS_S" "$(zr_pid B)" "D: B's upstream socket" "$upstream_sock"
idle_wait D
[ "$IDLE_RC" -eq 0 ] || fail "D: the idle HBONE connection did not survive 4 s of silence: $IDLE_OUT"
log "ok: D: $IDLE_OUT"

# The client pod's node vanishes (its tunnel packets dropped, nothing sent
# back): zring B, the tunnel's server side, sends no HTTP/2 PING of its own;
# keepalive is what finds it, ~3 s after the tunnel's last packet.
# The first connection's sockets must be gone, or they would pass for the
# second's below (and the drop could come before its CONNECT went out).
wait_until 5 at_least 1 zr_count B 'msg=access' || fail "D: no access line from B"
wait_until 5 no_socks "$NS_S" "$(zr_pid B)" "$upstream_sock" || fail "D: B's upstream socket lingers"
idle_bg D2 30
wait_until 3 has_ka_timer "$NS_S" "$(zr_pid B)" "$upstream_sock" ||
  fail "D: no upstream socket of B for the second connection"
ns_c iptables -w 10 -I OUTPUT -p tcp --dport 15008 -j DROP
ns_c iptables -w 10 -I INPUT -p tcp --sport 15008 -j DROP
wait_until 10 at_least 2 zr_count B 'msg=access' ||
  fail "D: zring B did not close the stream of a vanished tunnel peer within 10 s"
line="$(zr_access B | tail -n1)"
log "D: B: $line"
[ "$(access_field "$line" error)" != - ] || fail "D: B's access line has no error: $line"
duration="$(access_field "$line" duration_ms)"
if [ "$duration" -lt 2500 ] || [ "$duration" -gt 6000 ]; then
  fail "D: B closed the stream after ${duration} ms, want about 3000: $line"
fi
wait_until 10 at_least 2 zr_count A 'msg=access' || fail "D: zring A did not close its side"
log "D: A: $(zr_access A | tail -n1)"
idle_wait D2
[ "$IDLE_RC" -ne 0 ] || fail "D: the client's connection survived a dead tunnel: $IDLE_OUT"
log "ok: D: a vanished tunnel peer was found by keepalive on both sides"
ns_c iptables -w 10 -D OUTPUT -p tcp --dport 15008 -j DROP
ns_c iptables -w 10 -D INPUT -p tcp --sport 15008 -j DROP
zr_stop_all

# --- E: node-agent mode: the sockets zring opens in the pods ------------------
na_node 1
na_pod pod1 1 11
na_pod pod2 1 12
hbone_certs "$certs" pod1 pod2
na_config "$E2E_TMP/na.json" \
  "$(na_workload pod1 HBONE node-1 "$(na_pod_ip pod1)")" \
  "$(na_workload pod2 HBONE node-1 "$(na_pod_ip pod2)")"
na_server pod2 8080
zr_start N1 "$(na_node_ns 1)" --node-agent --config "$E2E_TMP/na.json" --certs "$certs" --workers 2 "${KA[@]}"
na_expect_listeners pod1 4 N1 15008
idle_bg E 4 "$(na_pod_ns pod1)" "$(na_pod_ip pod2)"
check_ka "$(na_pod_ns pod1)" "$(zr_pid N1)" "E: pod1's client socket" "$client_sock"
check_ka "$(na_pod_ns pod1)" "$(zr_pid N1)" "E: pod1's tunnel socket" 'dport = :15008'
check_ka "$(na_pod_ns pod2)" "$(zr_pid N1)" "E: pod2's tunnel socket" 'sport = :15008'
check_ka "$(na_pod_ns pod2)" "$(zr_pid N1)" "E: pod2's upstream socket" "$upstream_sock"
idle_wait E
[ "$IDLE_RC" -eq 0 ] || fail "E: the idle connection did not survive 4 s of silence: $IDLE_OUT"
log "ok: E: $IDLE_OUT"

hbone_pass "keepalive on client, upstream and tunnel sockets finds dead peers; no idle timeout by default; --keepalive off"
