#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: the metrics page (GET :15020/metrics) against a known traffic
# pattern (lib.sh, "telemetry"): a zring in each pod, TELE_N direct
# transfers and TELE_V through a service VIP, of known sizes.
#   1. plaintext: A (reporter="source") and B (reporter="destination",
#      15006) count every connection opened and closed and its bytes each
#      way, under Istio's labels; the connection to a closed port is closed
#      with response_flags="CONNECT", the one B's policy denies by B with
#      "DENY" (and zring_policy_denials_total); the bytes of a connection still open
#      appear within the 1 s flush; the page passes promtool;
#   2. HBONE: the same counts with mutual_tls and both principals, on both
#      sides.
# Needs zring's HTTP endpoint on 127.0.0.1:15020, curl and promtool.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin metrics-values
tele_topology
certs="$E2E_TMP/certs"
hbone_certs "$certs"
start_server "$NS_S" 8080 "$S4"

# is NAME LABELS WANT: metric_value must be WANT, else a recorded failure.
is() {
  local got
  got="$(metric_value "$1" "$2")"
  [ "$got" = "$3" ] || soft_fail "$1{$2} = ${got:-?}, want $3 (page: $METRICS_FILE)"
}

wait_lines() {
  wait_until 10 at_least "$2" zr_count "$1" 'msg=access' ||
    fail "$1: $(zr_count "$1" msg=access) access lines, want $2"
}

WL='source_workload="client",source_workload_namespace="default",destination_workload="server",destination_workload_namespace="default",destination_principal="'"$ID_SERVER"'",request_protocol="tcp"'
SVC='destination_service="web.default.svc.cluster.local",destination_service_namespace="default"'

# counts LABELS OPENED CLOSED_OK RECEIVED SENT: the four families for one
# label set (closed with response_flags="-").
counts() {
  is istio_tcp_connections_opened_total "$1,response_flags=\"-\"" "$2"
  is istio_tcp_connections_closed_total "$1,response_flags=\"-\"" "$3"
  is istio_tcp_received_bytes_total "$1" "$4"
  is istio_tcp_sent_bytes_total "$1" "$5"
}

# --- 1: plaintext -----------------------------------------------------------------
tele_config "$E2E_TMP/tcp.json" TCP
zr_start A "$NS_C" --config "$E2E_TMP/tcp.json" --workers 2
zr_start B "$NS_S" --config "$E2E_TMP/tcp.json" --workers 2
tele_traffic
client "$NS_C" probe --host "$S4" --port "$TELE_CLOSED" --within 5 >/dev/null ||
  fail "a connection to the closed port $S4:$TELE_CLOSED was not refused or reset"
# B denies this one by policy; A's own connection (to B's 15006) was up,
# so A counts it as ended normally, with no bytes.
client "$NS_C" probe --host "$S4" --port "$TELE_DENIED" --within 5 >/dev/null ||
  fail "a connection to the denied port $S4:$TELE_DENIED was not reset"
wait_lines A $((TELE_N + TELE_V + 2))
wait_lines B $((TELE_N + TELE_V + 1))

metrics_get "$NS_C"
metrics_promtool
src="reporter=\"source\",$WL,source_principal=\"unknown\",connection_security_policy=\"none\""
direct="$src,destination_service=\"unknown\""
# The failed and the denied connections have the direct label set too:
# opened; closed CONNECT (never connected) and - (connected to B).
counts "$direct" $((TELE_N + 2)) $((TELE_N + 1)) "$TELE_UP" "$TELE_DOWN"
is istio_tcp_connections_closed_total "$direct,response_flags=\"CONNECT\"" 1
counts "$src,$SVC,destination_service_name=\"web\"" "$TELE_V" "$TELE_V" "$TELE_VIP_UP" "$TELE_VIP_DOWN"
# Nothing else was counted.
is istio_tcp_connections_opened_total '' $((TELE_N + TELE_V + 2))
is istio_tcp_connections_closed_total '' $((TELE_N + TELE_V + 2))
is istio_tcp_received_bytes_total '' $((TELE_UP + TELE_VIP_UP))
is zring_connections_active '' 0
is zring_policy_denials_total '' 0
is zring_config_reloads_total 'result="success"' 1
is zring_config_reloads_total 'result="failure"' 0
is zring_config_version '' 1
is zring_draining '' 0
is zring_metrics_overflow_total '' 0

metrics_get "$NS_S"
metrics_promtool
# Inbound, the service is the one whose target port was connected to.
dst="reporter=\"destination\",$WL,source_principal=\"unknown\",connection_security_policy=\"none\",$SVC"
counts "$dst" $((TELE_N + TELE_V)) $((TELE_N + TELE_V)) $((TELE_UP + TELE_VIP_UP)) $((TELE_DOWN + TELE_VIP_DOWN))
# The denied one: no service has target port 8097; opened, closed DENY.
denied="reporter=\"destination\",$WL,source_principal=\"unknown\",connection_security_policy=\"none\",destination_service=\"unknown\""
is istio_tcp_connections_opened_total "$denied" 1
is istio_tcp_connections_closed_total "$denied,response_flags=\"DENY\"" 1
is istio_tcp_connections_closed_total "$denied" 1
is istio_tcp_received_bytes_total "$denied" 0
is istio_tcp_connections_opened_total '' $((TELE_N + TELE_V + 1))
is zring_policy_denials_total '' 1

# Bytes of a connection still open show within the 1 s flush: 100 kB up at
# once, 400 kB down at 100 kB/s.
client "$NS_C" xfer --host "$S4" --port 8080 --up 100000 --down 400000 --down-rate 100000 \
  >"$E2E_TMP/slow.out" 2>&1 &
slow=$!
sleep 2.5
metrics_get "$NS_C"
is istio_tcp_connections_opened_total "$direct" $((TELE_N + 3))
is istio_tcp_connections_closed_total "$direct" $((TELE_N + 2))
is istio_tcp_received_bytes_total "$direct" $((TELE_UP + $(wire_up 100000 400000 100000)))
sent="$(metric_value istio_tcp_sent_bytes_total "$direct")"
(( sent > TELE_DOWN && sent < TELE_DOWN + 400000 )) ||
  soft_fail "mid-transfer: sent bytes $sent, want between $TELE_DOWN and $((TELE_DOWN + 400000))"
is zring_connections_active '' 1
wait "$slow" || fail "the slow transfer failed: $(cat "$E2E_TMP/slow.out")"
wait_lines A $((TELE_N + TELE_V + 3))
metrics_get "$NS_C"
is istio_tcp_sent_bytes_total "$direct" $((TELE_DOWN + $(wire_down 100000 400000)))
is istio_tcp_connections_closed_total "$direct,response_flags=\"-\"" $((TELE_N + 2))
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

metrics_get "$NS_C"
metrics_promtool
mtls="$WL,source_principal=\"$ID_CLIENT\",connection_security_policy=\"mutual_tls\""
counts "reporter=\"source\",$mtls,destination_service=\"unknown\"" "$TELE_N" "$TELE_N" "$TELE_UP" "$TELE_DOWN"
counts "reporter=\"source\",$mtls,$SVC,destination_service_name=\"web\"" "$TELE_V" "$TELE_V" \
  "$TELE_VIP_UP" "$TELE_VIP_DOWN"
is istio_tcp_connections_opened_total '' $((TELE_N + TELE_V))
is zring_tls_handshake_failures_total '' 0

metrics_get "$NS_S"
metrics_promtool
counts "reporter=\"destination\",$mtls,$SVC" $((TELE_N + TELE_V)) $((TELE_N + TELE_V)) \
  $((TELE_UP + TELE_VIP_UP)) $((TELE_DOWN + TELE_VIP_DOWN))
is istio_tcp_connections_opened_total '' $((TELE_N + TELE_V))

hbone_pass "opened, closed and bytes each way right for plaintext and HBONE, source and destination"
