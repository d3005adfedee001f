#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: certificates change while zring runs.
#   1. rotation: a ~8 s paced transfer through A and B while
#      `scripts/certs.sh rotate` re-issues both identities; both zrings log
#      msg="certificates reloaded"; the transfer completes intact (its tunnel
#      keeps the session it made); a new connection works, and a fresh TLS
#      handshake with B (python client) shows B's *new* certificate serial.
#   2. trust bundle, with A at --hbone-idle-timeout 1s --hbone-max-streams 1
#      (every new connection needs a new tunnel) and a paced transfer open
#      throughout, which must finish intact:
#      a. B's root-cert.pem replaced by another CA's (ca2) root: B's own
#         certificate no longer chains to it (refused, previous one kept),
#         and new tunnels must be refused: B no longer trusts A's ca1
#         client certificate;
#      b. B's certificate re-issued by ca2 as well: new tunnels still refused;
#      then both roots in B's bundle: new connections work again.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly RATE=$((1 << 20))   # paced transfers, bytes/s each way

e2e_begin hbone-rotation
"$PY" -c 'import h2' 2>/dev/null || skip "python3-h2 not installed (Debian: apt-get install python3-h2)"
hbone_topology
start_server "$NS_S" 8080 "$S4"
hbone_config "$E2E_TMP/w.json"
certs="$E2E_TMP/certs"
hbone_certs "$certs"
ca2="$E2E_TMP/ca2"
certs_sh ca "$ca2" >/dev/null

# paced NAME SECS: a background transfer of SECS seconds each way at RATE;
# sets PACED_PID, waits until it reaches the server.
paced() {
  client "$NS_C" xfer --host "$S4" --port 8080 --up $(($2 * RATE)) --up-rate "$RATE" \
    --down $(($2 * RATE)) --down-rate "$RATE" --timeout 60 >"$E2E_TMP/$1.out" 2>&1 &
  PACED_PID=$!
  track "$PACED_PID"
  wait_until 5 server_established || fail "$1: the transfer did not reach the server"
}
server_established() { ns_s ss -Htn state established "sport = :8080" | grep -q .; }

# paced_done NAME WITHIN_S: the paced transfer must end, intact, within WITHIN_S.
paced_done() {
  local rc=0
  wait_gone "$PACED_PID" $(($2 * 10)) || fail "$1: transfer still running after $2 s"
  wait "$PACED_PID" || rc=$?
  [ "$rc" -eq 0 ] || fail "$1: transfer failed: $(cat "$E2E_TMP/$1.out")"
  log "ok: $1: $(cat "$E2E_TMP/$1.out")"
}

# B's certificate as a fresh handshake from the client pod sees it (the
# socket is marked so that A's capture rules let it pass). Prints the line.
b_handshake() {
  local dir="$1/cluster.local/ns/default/sa/client"
  shift
  h2client "$NS_C" --mark 0x539 --addr "$S4:15008" --cert "$dir/cert-chain.pem" \
    --key "$dir/key.pem" --ca "$1/root-cert.pem" --expect-id "$ID_SERVER" "${@:2}"
}

reloads() { zr_count "$1" 'msg="certificates reloaded"'; }

# --- 1: rotation during a transfer ---------------------------------------------
zr_start A "$NS_C" --config "$E2E_TMP/w.json" --certs "$certs"
zr_start B "$NS_S" --config "$E2E_TMP/w.json" --certs "$certs"
old_server="$(cert_serial "$certs" server)"
old_client="$(cert_serial "$certs" client)"
out="$(b_handshake "$certs" "$certs" --handshake-only --expect handshake)" || fail "1: handshake with B: $out"
grep -q " serial=$old_server " <<<"$out" || fail "1: B does not present its certificate $old_server: $out"

paced rot 8
sleep 1.5
t0="$(now)"
certs_sh rotate "$certs" --ns default --sa server >/dev/null
certs_sh rotate "$certs" --ns default --sa client >/dev/null
new_server="$(cert_serial "$certs" server)"
new_client="$(cert_serial "$certs" client)"
[[ "$new_server" != "$old_server" && "$new_client" != "$old_client" ]] || fail "1: rotate kept a serial"
log "rotated: server $old_server -> $new_server, client $old_client -> $new_client"
# Both files of both identities changed; a reload may see them in one or two steps.
wait_until 5 at_least 1 reloads A || fail "1: A did not log msg=\"certificates reloaded\" within 5 s"
wait_until 5 at_least 1 reloads B || fail "1: B did not log msg=\"certificates reloaded\" within 5 s"
log "ok: both reloaded $(elapsed_since "$t0") s after the rotation began"
for n in A B; do
  refused="$(zr_count "$n" 'msg="certificate refused"')"
  [ "$refused" -eq 0 ] || log "note: $n refused a half-rotated identity $refused time(s) (then reloaded)"
  grep 'msg="certificates reloaded"' "$(zr_log "$n")" | tail -n1 | grep -q ' refused=0' ||
    fail "1: $n's last reload refused something: $(grep 'msg="certificate' "$(zr_log "$n")")"
done

# A fresh handshake now sees B's new certificate, with A's new client one.
b_handshake_new() {
  b_handshake "$certs" "$certs" --handshake-only --expect handshake | grep -q " serial=$new_server "
}
wait_until 5 b_handshake_new || fail "1: B still presents $(b_handshake "$certs" "$certs" --handshake-only --expect handshake)"
log "ok: B presents its new certificate $new_server to a new handshake (with A's new client certificate)"
# A new connection through A and B while the old one still flows.
client_ok "$NS_C" xfer --host "$S4" --port 8080 --up 100000 --down 100000 --timeout 10
paced_done rot 15
for n in A B; do
  errors="$(zr_access "$n" | grep -vc ' error=-' || true)"
  [ "$errors" -eq 0 ] || fail "1: $n: $errors access lines carry an error: $(zr_access "$n")"
done
zr_stop A
zr_stop B

# --- 2: trust bundle change ----------------------------------------------------------
# A trusts ca1 and ca2 throughout (so that B may present a ca2 certificate);
# its own certificate is ca1's. B starts with ca1's bundle.
adir="$E2E_TMP/a-certs"
bdir="$E2E_TMP/b-certs"
cp -a "$certs" "$adir"
cp -a "$certs" "$bdir"
cat "$ca2/root-cert.pem" >>"$adir/root-cert.pem"
cp "$certs/root-cert.pem" "$E2E_TMP/root-ca1.pem"
zr_start A2 "$NS_C" --config "$E2E_TMP/w.json" --certs "$adir" --hbone-idle-timeout 1s --hbone-max-streams 1
zr_start B2 "$NS_S" --config "$E2E_TMP/w.json" --certs "$bdir"
client_ok "$NS_C" xfer --host "$S4" --port 8080 --up 100000 --down 100000 --timeout 10
paced trust 8

# A's tunnels: its established connections to a :15008.
a_tunnels() { ns_c ss -Htn state established "dport = :15008" | grep -c . || true; }
a_tunnels_at_most() { [ "$(a_tunnels)" -le "$1" ]; }

# set_bundle FILE: B's root-cert.pem becomes FILE's content, atomically.
set_bundle() {
  cp "$1" "$bdir/.root-cert.pem.tmp"
  mv -f "$bdir/.root-cert.pem.tmp" "$bdir/root-cert.pem"
}

# new_refused WHAT: a new connection through A (a new tunnel: one stream per
# tunnel) must be refused, and B must say it refused A's certificate.
new_refused() {
  local before out
  before="$(zr_count B2 'msg="tls handshake failed" side=server .*error="certificate verify failed"')"
  out="$(client "$NS_C" probe --host "$S4" --port 8080 --within 2)" || return 1
  log "ok: $1: new connection: $out"
  wait_until 3 at_least $((before + 1)) zr_count B2 'msg="tls handshake failed" side=server .*error="certificate verify failed"' ||
    fail "$1: B logged no refusal of A's client certificate: $(grep 'handshake failed' "$(zr_log B2)")"
  out="$(b_handshake "$adir" "$adir" --authority "$S4:8080" --expect refused)" ||
    fail "$1: the python client with A's certificate was not refused: $out"
  log "ok: $1: python client with A's certificate: $out"
}

# 2a. B's bundle replaced by ca2's root alone. B's own certificate no longer
# chains to it: refused, the previous one kept while valid
# (docs/security.md). New handshakes must still verify peers against the
# new bundle, so A's ca1 certificate must be refused.
set_bundle "$ca2/root-cert.pem"
t0="$(now)"
wait_until 5 at_least 1 reloads B2 || fail "2a: B did not reload its certificates within 5 s"
log "ok: 2a: B reloaded $(elapsed_since "$t0") s after its trust bundle changed"
grep 'msg="certificate refused"' "$(zr_log B2)" | grep -q "identity=$ID_SERVER .*keeping=\"previous certificate\"" ||
  fail "2a: B did not keep its previous certificate: $(grep 'msg="certificate refused"' "$(zr_log B2)")"
# Only the paced transfer's tunnel is left (idle ones close after 1 s).
wait_until 5 a_tunnels_at_most 1 || fail "2a: A still has $(a_tunnels) tunnels"
new_refused "2a (bundle replaced, own certificate kept)" ||
  soft_fail "2a: B's trust bundle was replaced by ca2's root (B kept its previous ca1 certificate), yet a new tunnel with A's ca1 client certificate was accepted: $(zr_access B2 | tail -n1)"

# 2b. B's server certificate re-issued by ca2 too: B's identity is valid
# again under the new bundle, and the new bundle must refuse A.
certs_sh workload "$bdir" --ns default --sa server --ca "$ca2" >/dev/null
t0="$(now)"
b2_server_reloaded() {
  grep 'msg="certificates reloaded"' "$(zr_log B2)" | tail -n1 | grep -q ' refused=1'
}
wait_until 5 b2_server_reloaded || fail "2b: B did not load its ca2 certificate within 5 s"
log "ok: 2b: B loaded its ca2 certificate $(elapsed_since "$t0") s after it was issued"
wait_until 5 a_tunnels_at_most 1 || fail "2b: A still has $(a_tunnels) tunnels"
new_refused "2b (ca2 bundle and certificate)" ||
  fail "2b: B's trust bundle is ca2's root and its certificate ca2's, yet a new tunnel with A's ca1 client certificate was accepted: $(zr_access B2 | tail -n1)"

paced_done trust 15
log "ok: the transfer open since before the bundle changed finished intact"

# Both roots in B's bundle: A's certificate is trusted again for new tunnels.
cat "$E2E_TMP/root-ca1.pem" "$ca2/root-cert.pem" >"$E2E_TMP/both.pem"
n="$(reloads B2)"
set_bundle "$E2E_TMP/both.pem"
wait_until 5 at_least $((n + 1)) reloads B2 || fail "B did not reload the restored trust bundle"
client_ok "$NS_C" xfer --host "$S4" --port 8080 --up 100000 --down 100000 --timeout 10

hbone_pass "rotation during a transfer, new certificate served; trust bundle change applies to new tunnels only"
