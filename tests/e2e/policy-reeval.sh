#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: a policy change re-evaluates open connections. Connections held
# open through zring's inbound plaintext path to two echo ports; then the
# config gains deny-7001. The connections to 7001 are closed at once (their
# access lines name default/deny-7001), those to 7000 keep echoing, and a
# new connection to 7001 is refused. Removing the policy again lets new
# connections to 7001 through.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin policy-reeval
e2e_topology
install_capture
cfg="$E2E_TMP/w.json"
write_cfg() {  # write_cfg POLICIES_JSON
  cat >"$cfg.tmp" <<JSON
{"workloads":[
  {"uid":"c1","name":"app","namespace":"default","workloadIps":["$C4"],"protocol":"TCP"}
],"services":[],"policies":[$1]}
JSON
  mv "$cfg.tmp" "$cfg"
}
write_cfg ""

for p in 7000 7001; do
  ns_c "$PY" "$TOOLS/zr_echo.py" --listen "$C4" --port "$p" >"$E2E_TMP/echo-$p.out" 2>"$E2E_TMP/echo-$p.log" &
  track $!
  wait_until 10 grep -qs READY "$E2E_TMP/echo-$p.out" || fail "echo server on $p did not start"
done
start_zring --config "$cfg"

# Two zr_hold drivers (server pod -> client pod), one per port.
declare -A HFD=() HN=()
hstart() {
  local p="$1" fifo="$E2E_TMP/hold-$1.in"
  mkfifo "$fifo"
  ns_s "$PY" "$TOOLS/zr_hold.py" --host "$C4" --port "$p" <"$fifo" >"$E2E_TMP/hold-$p.out" 2>"$E2E_TMP/hold-$p.log" &
  track $!
  exec {fd}>"$fifo"
  HFD[$p]=$fd
  HN[$p]=0
}
hanswered() { [ "$(wc -l <"$E2E_TMP/hold-$1.out")" -ge "${HN[$1]}" ]; }
hcmd() {  # hcmd PORT CMD...: sets ANSWER
  local p="$1"
  shift
  printf '%s\n' "$*" >&"${HFD[$p]}"
  HN[$p]=$((HN[$p] + 1))
  wait_until 30 hanswered "$p" || fail "zr_hold $p did not answer '$*'"
  ANSWER="$(sed -n "${HN[$p]}p" "$E2E_TMP/hold-$p.out")"
  log "hold $p $*: $ANSWER"
}
hstart 7000
hstart 7001
for p in 7000 7001; do
  hcmd "$p" open 3
  hcmd "$p" ping 5
  [ "$(hf echoed)" = 3 ] && [ "$(hf broken)" = 0 ] || fail "$p: held connections do not echo: $ANSWER"
done

write_cfg '{"name":"deny-7001","namespace":"default","scope":"Namespace","action":"Deny",
  "rules":[[[{"destinationPorts":[7001]}]]]}'
wait_config_version 2 || fail "the config with deny-7001 was not loaded"
t0="$(now)"
wait_until 5 at_least 3 access_lines_to "$C4:7001" || fail "the connections to 7001 were not closed"
log "7001 connections closed $(elapsed_since "$t0") s after the config loaded"
hcmd 7001 ping 3
[ "$(hf open)" = 0 ] && [ "$(hf broken)" = 3 ] || fail "7001: held connections still open: $ANSWER"
while read -r line; do
  [ "$(access_field "$line" policy)" = default/deny-7001 ] || fail "7001 access line does not name deny-7001: $line"
  [[ "$(access_field "$line" error)" == *denied* ]] || fail "7001 access line does not say denied: $line"
  [ "$(access_field "$line" response_flags)" = DENY ] || fail "7001 access line: response_flags is not DENY: $line"
done < <(access_to "$C4:7001")

hcmd 7000 ping 5
[ "$(hf echoed)" = 3 ] && [ "$(hf broken)" = 0 ] || fail "7000: allowed connections were disturbed: $ANSWER"
[ "$(access_lines_to "$C4:7000")" = 0 ] || fail "a connection to 7000 was closed"
client_ok "$NS_S" probe --host "$C4" --port 7001 --within 3

write_cfg ""
wait_config_version 3 || fail "the config without policies was not loaded"
hcmd 7001 open 1
hcmd 7001 ping 5
[ "$(hf echoed)" = 1 ] || fail "7001 still refused after the policy was removed: $ANSWER"

for p in 7000 7001; do hcmd "$p" quit; done
stop_zring
pass "a policy change closes the open connections it now denies and leaves the others alone"
