#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: who may talk to whom over HBONE. Each case is a client pod
# connection through zring A to the server pod, whose :15008 is zring B; in
# every refusal the client's connection must end (reset or EOF) within 3 s,
# nothing reaches the server, and the zring that refused says why.
#   1. wrong server identity: A's config says the server workload's service
#      account is "other", B's says "server": A refuses the tunnel
#      (msg="tls handshake failed" ... error="server identity mismatch").
#   2. untrusted CA: B's root and certificate from another CA (B loads them:
#      they chain to its own root): A refuses B's certificate.
#   3. untrusted client: B trusts only that other CA, A trusts both: B
#      refuses A's client certificate.
#   4. expired server certificate: B refuses to load it (msg="certificate
#      refused" ... error="certificate expired"); the connection fails.
#   5. source certificate absent, expired, not yet valid, or with the wrong
#      key: A refuses to load the bad ones and resets the client with
#      error="no certificate for the source workload".
#   6. RSA (2048) identities on both sides work.
#   7. a client of another trust domain (same CA: its chain verifies) gets a
#      bad_certificate alert from B's handshake (openssl s_client), not an
#      EOF after it; in 1, B hears A's alert inside the handshake too.
# Each zring must exit 0 on SIGTERM afterwards.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin hbone-identity
hbone_topology
start_server "$NS_S" 8080 "$S4"
hbone_config "$E2E_TMP/w.json"
hbone_config "$E2E_TMP/w-other.json" client other
readonly ID_OTHER="spiffe://cluster.local/ns/default/sa/other"

# ca1: the mesh's CA, with both identities. ca2: another CA, whose own
# "server" identity B can load (it chains to ca2's root).
ca1="$E2E_TMP/ca1"
ca2="$E2E_TMP/ca2"
hbone_certs "$ca1"
hbone_certs "$ca2" server

# certs_copy SRC DST: a certificate directory like SRC, to spoil one way.
certs_copy() { cp -a "$1" "$2"; }

# refused NAME: a client connection through A must end within 3 s, with no
# data, and the server must never see it.
refused() {
  local out before
  before="$(server_conns 8080)"
  out="$(client "$NS_C" probe --host "$S4" --port 8080 --within 3)" ||
    fail "$1: the connection was not ended within 3 s: $out"
  log "ok: $1: client $out"
  [ "$(server_conns 8080)" = "$before" ] || fail "$1: the server saw a connection"
}

# works NAME: a checked transfer through A and B.
works() {
  client_ok "$NS_C" xfer --host "$S4" --port 8080 --up 65536 --down 65536 --timeout 10
}

# last_access NAME: zring NAME's last access line.
last_access() { zr_access "$1" | tail -n1; }

# --- 1: wrong server identity ---------------------------------------------------
zr_start B1 "$NS_S" --config "$E2E_TMP/w.json" --certs "$ca1"
zr_start A1 "$NS_C" --config "$E2E_TMP/w-other.json" --certs "$ca1"
refused "wrong server identity"
wait_until 5 at_least 1 zr_count A1 'msg="tls handshake failed"' ||
  fail "1: A logged no tls handshake failure"
line="$(grep 'msg="tls handshake failed"' "$(zr_log A1)" | head -n1)"
log "A1: $line"
grep -q 'level=warn .*side=client .*error="server identity mismatch"' <<<"$line" ||
  fail "1: A's handshake failure is not a server identity mismatch at warn: $line"
[ "$(access_field "$line" want_identity)" = "$ID_OTHER" ] || fail "1: want_identity is not $ID_OTHER: $line"
[ "$(access_field "$line" peer_identity)" = "$ID_SERVER" ] || fail "1: peer_identity is not $ID_SERVER: $line"
wait_until 5 at_least 1 zr_count A1 'msg=access' || fail "1: A logged no access line"
a="$(last_access A1)"
log "A1: $a"
[ "$(access_field "$a" error)" != - ] || fail "1: A's access line has no error: $a"
[ "$(zr_count B1 'msg=access')" -eq 0 ] || fail "1: B proxied something: $(zr_access B1)"
# A refused B inside the handshake, with an alert (not a reset after it).
wait_until 5 at_least 1 zr_count B1 'msg="tls handshake failed" side=server .*error="received alert fatal error"' ||
  fail "1: B did not hear A's alert during the handshake: $(grep -E 'handshake failed|tunnel closed' "$(zr_log B1)")"
zr_stop A1
# The same B with the right expectations: it works (the refusal was A's).
zr_start A1ok "$NS_C" --config "$E2E_TMP/w.json" --certs "$ca1"
works
zr_stop A1ok
zr_stop B1

# --- 2: server certificate from an untrusted CA -------------------------------------
zr_start B2 "$NS_S" --config "$E2E_TMP/w.json" --certs "$ca2"
grep -q "msg=identity identity=$ID_SERVER" "$(zr_log B2)" || fail "2: B did not load ca2's server identity"
zr_start A2 "$NS_C" --config "$E2E_TMP/w.json" --certs "$ca1"
refused "untrusted server CA"
wait_until 5 at_least 1 zr_count A2 'msg="tls handshake failed".*side=client' ||
  fail "2: A logged no client-side tls handshake failure"
log "A2: $(grep 'msg="tls handshake failed"' "$(zr_log A2)" | head -n1)"
[ "$(zr_count B2 'msg=access')" -eq 0 ] || fail "2: B proxied something"
zr_stop A2

# --- 3: client certificate from a CA the server does not trust ----------------------
# A trusts ca1 and ca2 (so B's ca2 certificate is fine for A), its own
# certificate is ca1's; B trusts ca2 only.
certs_copy "$ca1" "$E2E_TMP/a3"
cat "$ca2/root-cert.pem" >>"$E2E_TMP/a3/root-cert.pem"
zr_start A3 "$NS_C" --config "$E2E_TMP/w.json" --certs "$E2E_TMP/a3"
refused "untrusted client CA"
wait_until 5 at_least 1 zr_count B2 'msg="tls handshake failed" side=server .*error="certificate verify failed"' ||
  fail "3: B logged no server-side certificate verification failure: $(grep 'handshake failed' "$(zr_log B2)")"
log "B2: $(grep 'msg="tls handshake failed".*verify failed' "$(zr_log B2)" | head -n1)"
[ "$(zr_count B2 'msg=access')" -eq 0 ] || fail "3: B proxied something"
zr_stop A3
zr_stop B2

# --- 4: expired server certificate ----------------------------------------------
certs_copy "$ca1" "$E2E_TMP/b4"
certs_sh workload "$E2E_TMP/b4" --ns default --sa server --expired >/dev/null
zr_start B4 "$NS_S" --config "$E2E_TMP/w.json" --certs "$E2E_TMP/b4"
line="$(grep 'msg="certificate refused"' "$(zr_log B4)" | head -n1)"
log "B4: $line"
grep -q "identity=$ID_SERVER .*error=\"certificate expired\"" <<<"$line" ||
  fail "4: B did not refuse its expired certificate with error=\"certificate expired\": $line"
zr_start A4 "$NS_C" --config "$E2E_TMP/w.json" --certs "$ca1"
refused "expired server certificate"
wait_until 5 at_least 1 zr_count A4 'msg=access' || fail "4: A logged no access line"
a="$(last_access A4)"
log "A4: $a"
[ "$(access_field "$a" error)" != - ] || fail "4: A's access line has no error: $a"
[ "$(zr_count B4 'msg=access')" -eq 0 ] || fail "4: B proxied something"
wait_until 5 at_least 1 zr_count B4 'msg="tunnel closed" side=server .*reason="no certificate for the local workload"' ||
  fail "4: B did not say it has no certificate for its workload: $(grep 'tunnel closed' "$(zr_log B4)")"
zr_stop A4
zr_stop B4

# --- 5: bad or missing source certificate -----------------------------------------
zr_start B5 "$NS_S" --config "$E2E_TMP/w.json" --certs "$ca1"
for variant in absent expired not-yet-valid mismatched-key; do
  dir="$E2E_TMP/a5-$variant"
  certs_copy "$ca1" "$dir"
  case "$variant" in
    absent) rm -r "$dir/cluster.local/ns/default/sa/client"; reason="" ;;
    expired) reason="certificate expired" ;;
    not-yet-valid) reason="certificate not yet valid" ;;
    mismatched-key) reason="private key does not match the certificate" ;;
  esac
  [ "$variant" = absent ] ||
    certs_sh workload "$dir" --ns default --sa client "--$variant" >/dev/null
  name="A5-$variant"
  zr_start "$name" "$NS_C" --config "$E2E_TMP/w.json" --certs "$dir"
  if [ -n "$reason" ]; then
    line="$(grep 'msg="certificate refused"' "$(zr_log "$name")" | head -n1)"
    grep -q "identity=$ID_CLIENT .*error=\"$reason\"" <<<"$line" ||
      fail "5 $variant: A did not refuse the client certificate with error=\"$reason\": $line"
    log "ok: 5 $variant: $line"
  fi
  refused "source certificate $variant"
  wait_until 5 at_least 1 zr_count "$name" 'msg=access' || fail "5 $variant: A logged no access line"
  a="$(last_access "$name")"
  grep -q 'error="no certificate for the source workload' <<<"$a" ||
    fail "5 $variant: A's access line does not say there is no source certificate: $a"
  log "ok: 5 $variant: $a"
  zr_stop "$name"
done
[ "$(zr_count B5 'msg=access')" -eq 0 ] || fail "5: B proxied something"
# And with the good certificate, the same B serves A.
zr_start A5ok "$NS_C" --config "$E2E_TMP/w.json" --certs "$ca1"
works
zr_stop A5ok
zr_stop B5

# --- 6: RSA identities work too ------------------------------------------------
certs_copy "$ca1" "$E2E_TMP/rsa"
certs_sh rotate "$E2E_TMP/rsa" --ns default --sa client --key rsa >/dev/null
certs_sh rotate "$E2E_TMP/rsa" --ns default --sa server --key rsa >/dev/null
zr_start B6 "$NS_S" --config "$E2E_TMP/w.json" --certs "$E2E_TMP/rsa"
zr_start A6 "$NS_C" --config "$E2E_TMP/w.json" --certs "$E2E_TMP/rsa"
grep -q 'msg="certificates loaded" .* refused=0' "$(zr_log A6)" || fail "6: A refused an RSA identity"
works
zr_stop A6
zr_stop B6

# --- 7: a client of another trust domain: an alert inside the handshake ------------
certs_sh workload "$ca1" --trust-domain other.example --ns default --sa client >/dev/null
xdir="$ca1/other.example/ns/default/sa/client"
zr_start B7 "$NS_S" --config "$E2E_TMP/w.json" --certs "$ca1"
# s_client straight to :15008: marked like zring's own sockets, so the
# client pod's capture rules let it through.
ns_c iptables -w 10 -t mangle -A OUTPUT -p tcp -d "$S4" --dport 15008 -j MARK --set-mark 0x539
out="$(echo Q | timeout 10 ip netns exec "$NS_C" openssl s_client -connect "$S4:15008" -tls1_3 -alpn h2 \
  -cert "$xdir/cert-chain.pem" -key "$xdir/key.pem" -CAfile "$ca1/root-cert.pem" -ign_eof 2>&1 || true)"
grep -q 'alert bad certificate' <<<"$out" ||
  fail "7: openssl s_client of trust domain other.example saw no bad_certificate alert: $(grep -iE 'alert|error|eof' <<<"$out")"
log "ok: 7: $(grep 'alert bad certificate' <<<"$out" | head -n1)"
wait_until 5 at_least 1 zr_count B7 'msg="tls handshake failed" side=server .*error="client identity outside the trust domain"' ||
  fail "7: B did not log the trust-domain refusal: $(grep 'handshake failed' "$(zr_log B7)")"
[ "$(zr_count B7 'msg=access')" -eq 0 ] || fail "7: B proxied something"

hbone_pass "wrong identity, untrusted CAs (both sides), expired server and bad/absent client certificates refused; RSA works; other trust domain gets an alert"
