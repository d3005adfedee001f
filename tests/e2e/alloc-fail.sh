#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: a failed heap allocation anywhere on the accept -> route ->
# authorize -> connect paths fails closed (issue 17). Both zrings run with
# tests/support/allocfail.c preloaded; tests/tools/zr_allocsweep.py arms it
# to fail the Nth allocation counted from the moment it arms (so startup
# allocations are never the target), makes one connection, and sweeps N
# over every allocation that connection makes: for each N, zring must not
# crash, must still serve an allowed connection afterwards, a denied client
# must never get a byte back (plaintext) or a 200 (HBONE), and the denied
# server must never see a connection. Sweeps, on B (the server pod):
#   - plaintext :15006, 7001 denied by deny-src (sourceIps 10.77.0.1);
#   - plaintext :15006, 7000 allowed;
#   - HBONE :15008 (a fresh mTLS connection each time), 7002 denied by
#     deny-principal (principals .../sa/client) and 7003 by deny-ns
#     (namespaces default): a lost identity must not stop these matching;
#   - HBONE :15008, 7000 allowed;
#   - getpeername/getsockname failing instead (--fail addr), plaintext and
#     HBONE to 7001: the sourceIps deny must hold without the address;
# on A (the client pod's outbound :15001, a fresh tunnel per connection:
# --hbone-tunnel-streams 1): 7002 through the tunnel (denied by B) and 7000;
# and on B again, a config reload that adds or removes a Deny of 7004: it is
# loaded or rejected with a clear line, never half-applied, never silently
# skipped, and what B says it runs is what it enforces.
# At the end both must exit 0 on SIGTERM; on the ASan build LeakSanitizer
# runs at that exit, so whatever a failure path forgot to free fails here.
#
# Why a preloaded shim and not ASan's own options or a hook compiled in:
# ASan can only make *every* allocation over a size fail
# (allocator_may_return_null with max_allocation_size_mb); it has no "fail
# the Nth". A hook compiled into zring sees only zring's own calls, not
# wolfSSL's, nghttp2's or libc's (strdup) on the same paths. The shim
# forwards to the next allocator with dlsym(RTLD_NEXT): under ASan that is
# ASan's, so ASan still tracks every block (leaks included). Preloading a
# library in front of ASan's runtime is what verify_asan_link_order=0 allows;
# the shim avoids thread-local storage, which ASan intercepts before it has
# started (tests/support/allocfail.c). wolfSSL itself leaks a little when
# some of its own handshake allocations fail; tests/support/allocfail-lsan.supp
# names those wolfSSL-internal stacks and nothing else.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin alloc-fail
SHIM="${ZRING_ALLOCFAIL_SO:-$SRCDIR/build/tests/support/libzr-allocfail.so}"
[ -f "$SHIM" ] || fail "allocation-failure shim not found: ZRING_ALLOCFAIL_SO=$SHIM"
"$PY" -c 'import h2' 2>/dev/null || skip "python3-h2 not installed"
hbone_topology
certs="$E2E_TMP/certs"
hbone_certs "$certs"
P='cluster.local/ns/default/sa'
cfg="$E2E_TMP/w.json"
cat >"$cfg" <<JSON
{"workloads":[
  {"uid":"c1","name":"client","namespace":"default","serviceAccount":"client","workloadIps":["$C4"],"protocol":"HBONE"},
  {"uid":"s1","name":"server","namespace":"default","serviceAccount":"server","workloadIps":["$S4"],"protocol":"HBONE"}
],"services":[],"policies":[
  {"name":"deny-src","namespace":"default","scope":"Namespace","action":"Deny",
   "rules":[[[{"sourceIps":["$C4/32"],"destinationPorts":[7001]}]]]},
  {"name":"deny-principal","namespace":"default","scope":"Namespace","action":"Deny",
   "rules":[[[{"principals":[{"Exact":"$P/client"}],"destinationPorts":[7002]}]]]},
  {"name":"deny-ns","namespace":"default","scope":"Namespace","action":"Deny",
   "rules":[[[{"namespaces":[{"Exact":"default"}],"destinationPorts":[7003]}]]]}
]}
JSON
for p in 7000 7001 7002 7003 7004; do start_echo "$p"; done
cfg_b="$E2E_TMP/b.json"	# B's own copy: the reload sweep rewrites it
cp "$cfg" "$cfg_b"

# shim_env NAME: the environment that preloads the shim into zring NAME.
shim_env() {
  echo env "LD_PRELOAD=$SHIM" "ZR_ALLOCFAIL_CTL=$E2E_TMP/allocfail-$1.ctl" \
    "ZR_ALLOCFAIL_STATE=$E2E_TMP/allocfail-$1.state" ZR_ALLOCFAIL_TRACE=1 \
    "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
    "LSAN_OPTIONS=${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$SRCDIR/tests/support/allocfail-lsan.supp"
}
real_bin="$ZRING_BIN"
for name in A B; do
  wrapper="$E2E_TMP/zring-$name-shim"
  printf '#!/bin/sh\nexec %s "%s" "$@"\n' "$(shim_env "$name")" "$real_bin" >"$wrapper"
  chmod +x "$wrapper"
done
ZRING_BIN="$E2E_TMP/zring-A-shim" zr_start A "$NS_C" --config "$cfg" --certs "$certs" \
  --workers 1 --hbone-tunnel-streams 1
ZRING_BIN="$E2E_TMP/zring-B-shim" zr_start B "$NS_S" --config "$cfg_b" --certs "$certs" --workers 1
ZRING_BIN="$real_bin"
# The wrapper execs: the PIDs are zring's own. The shim is in place.
for name in A B; do
  grep -q libzr-allocfail "/proc/$(zr_pid "$name")/maps" || fail "the shim is not loaded into zring $name"
done

TLS=(--cert "$certs/cluster.local/ns/default/sa/client/cert-chain.pem"
     --key "$certs/cluster.local/ns/default/sa/client/key.pem" --ca "$certs/root-cert.pem")
SWEEPS=0
# sweep ZRING NAME ARGS...: zr_allocsweep.py against zring ZRING (A or B).
sweep() {
  local z="$1" name="$2" out="$E2E_TMP/sweep-$2.out" rc=0
  shift 2
  # ZRING_E2E_SWEEPS="name..." runs only those (to chase one failure).
  [[ -z "${ZRING_E2E_SWEEPS:-}" || " $ZRING_E2E_SWEEPS " == *" $name "* ]] || return 0
  ns_c "$PY" "$TOOLS/zr_allocsweep.py" --ctl "$E2E_TMP/allocfail-$z.ctl" \
    --state "$E2E_TMP/allocfail-$z.state" --pid "$(zr_pid "$z")" --name "$name" "$@" \
    >"$out" 2>&1 || rc=$?
  log "$(tail -n1 "$out")"
  if [ "$rc" -ne 0 ]; then
    grep -E 'PROBLEM|Traceback|Error' "$out" | head -n 20 >&2 || true
    soft_fail "sweep $name: $(tail -n1 "$out")"
  fi
  SWEEPS=$((SWEEPS + 1))
}

plain_b=(--kind plain --live-addr "$S4:7000")
sweep B plain-deny "${plain_b[@]}" --expect deny --addr "$S4:7001" --server-log "$E2E_TMP/echo-7001.log"
sweep B plain-allow "${plain_b[@]}" --expect allow --addr "$S4:7000"
hbone_b=(--kind hbone "${TLS[@]}" --addr "$S4:15008" --live-addr "$S4:15008" --live-authority "$S4:7000")
sweep B hbone-deny-principal "${hbone_b[@]}" --expect deny --authority "$S4:7002" \
  --server-log "$E2E_TMP/echo-7002.log"
sweep B hbone-deny-namespace "${hbone_b[@]}" --expect deny --authority "$S4:7003" \
  --server-log "$E2E_TMP/echo-7003.log"
sweep B hbone-allow "${hbone_b[@]}" --expect allow --authority "$S4:7000"
# The client's address is a fact policy rests on too: getpeername and
# getsockname fail in turn (as for a peer that reset at once); deny-src
# (sourceIps) must still hold, on plaintext and through HBONE.
sweep B addr-plain-deny "${plain_b[@]}" --fail addr --expect deny --addr "$S4:7001" \
  --server-log "$E2E_TMP/echo-7001.log"
sweep B addr-hbone-deny "${hbone_b[@]}" --fail addr --expect deny --authority "$S4:7001" \
  --server-log "$E2E_TMP/echo-7001.log"
# Through A's outbound capture (no mark): A opens the tunnel, B decides.
plain_a=(--kind plain --no-mark --live-addr "$S4:7000")
sweep A outbound-deny "${plain_a[@]}" --expect deny --addr "$S4:7002" --server-log "$E2E_TMP/echo-7002.log"
sweep A outbound-allow "${plain_a[@]}" --expect allow --addr "$S4:7000"

# A config reload under allocation failure: B's file gains or loses a Deny
# of 7004 each time; B must log that it loaded it or rejected it (the old
# policies stay), never stay silent, and enforce what it says it runs.
sweep B reload --kind reload --config "$cfg_b" --zlog "$(zr_log B)" --addr "$S4:7004" --live-addr "$S4:7000"

# What the failures looked like from the inside: each is a clear reason.
log "B's reasons: $(grep -o 'error="[^"]*"' "$(zr_log B)" | sort | uniq -c | sort -rn | head -n 12 | tr '\n' ';')"
hbone_pass "$SWEEPS sweeps: every allocation on the connection paths failed once, none crashed zring, none turned a deny into an allow"
