#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: half-close. The client sends, then shutdown(SHUT_WR); the server
# reads to EOF and only then answers; the answer must reach the client intact.
# A proxy that turns the client's FIN into a full close (or never forwards it)
# fails this: the server would never see EOF, or its answer would be lost.
# Run once per data pump.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin half-close
e2e_topology
install_capture
start_server "$NS_S" 8080 "$S4" "$S6"

for pump in ${ZRING_E2E_PUMPS:-splice copy}; do
  log "--- pump $pump"
  start_zring --pump "$pump"
  # Small request, large answer: the answer flows long after the client's FIN.
  client_ok "$NS_C" xfer --host "$S4" --port 8080 --half-close --up 1000 --down $((20 << 20)) --timeout 30
  # Nothing sent at all: a FIN right after the header.
  client_ok "$NS_C" xfer --host "$S4" --port 8080 --half-close --up 0 --down 65536 --timeout 30
  # Large both ways, sequential by construction (request, FIN, then answer).
  client_ok "$NS_C" xfer --host "$S4" --port 8080 --half-close --up $((10 << 20)) --down $((10 << 20)) --timeout 30
  # The same over IPv6.
  client_ok "$NS_C" xfer --host "$S6" --port 8080 --half-close --up 4096 --down $((4 << 20)) --timeout 30

  wait_access 4
  errors="$(grep 'msg=access' "$ZLOG" | grep -vc ' error=-' || true)"
  [ "$errors" -eq 0 ] || fail "$pump: $errors access lines carry an error"
  stop_zring
done

pass "FIN crosses zring, the other direction keeps flowing"
