#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2317  # helpers with optional args; callbacks run via wait_until
# Scenario: HBONE interop with ztunnel's own library family: rustls (via
# tokio-rustls) and the h2 crate on tokio, with ztunnel's TLS and HTTP/2
# settings (tests/interop/rust-hbone, built offline from Debian's crates).
#   a. the Rust HBONE *client* -> zring B's :15008: 50 concurrent CONNECT
#      streams on one TLS connection, 256 KiB each way per stream, echoed
#      and compared by SHA-256; B logs 50 clean access lines with the
#      client's identity. Key exchange limited to P-256 or P-384 works, and
#      so does a KeyUpdate (B answers one that asks). A client of another
#      trust domain gets a TLS alert (bad_certificate) from B's handshake,
#      not a reset after it.
#   b. zring A -> the Rust HBONE *server* (rustls's defaults: it sends a
#      NewSessionTicket with a 32-byte nonce after every handshake): bytes
#      through A, the Rust server and an echo server come back intact
#      (zr_echocheck.py, SHA-256), and the Rust server's per-stream hashes
#      match each way. (Before wolfSSL got --enable-ticket-nonce-malloc, A
#      closed every tunnel with reason="tls error" right after the ticket.)
#      Key exchange limited to X25519, P-256 or P-384 on either side works
#      (through a HelloRetryRequest where the first key share differs), and
#      so do RSA identities (RSA-PSS) both ways.
#   c. streams refused with REFUSED_STREAM (RFC 9113 8.7: not processed,
#      safe to retry): a server that refuses its first 3 streams, and one
#      that allows 1 stream at a time (the excess is refused before its
#      SETTINGS reach A): every application connection still succeeds.
#   d. a Rust server with the wrong identity: A sends an alert during the
#      handshake (the server sees alert=BadCertificate) and the access line
#      says response_flags=TLS_FAILURE; so does a Rust server that refuses
#      A's certificate (its alert comes after A's side of the TLS 1.3
#      handshake, before any HTTP/2), a server that hangs up at once, a
#      TLS 1.2-only server and one that does not agree to ALPN h2 (openssl
#      s_server).
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_begin hbone-rustls
command -v openssl >/dev/null || skip "openssl not found"
RH="$("$SRCDIR/tests/interop/rust-hbone/build.sh" 2>"$E2E_TMP/rust-build.log")" ||
  fail "cannot build tests/interop/rust-hbone (run scripts/setup.sh): $(tail -n 20 "$E2E_TMP/rust-build.log")"
e2e_topology
# Part a talks to :15008 straight from the client pod; the client pod's
# capture rules (to zring A) come in part b.
install_capture_in "$NS_S"
certs="$E2E_TMP/certs"
hbone_certs "$certs" client server other
certs_sh workload "$certs" --trust-domain other.example --ns default --sa client >/dev/null
hbone_config "$E2E_TMP/w.json"
cdir="$certs/cluster.local/ns/default/sa/client"
sdir="$certs/cluster.local/ns/default/sa/server"
odir="$certs/cluster.local/ns/default/sa/other"
xdir="$certs/other.example/ns/default/sa/client"
start_echo 7000

# --- a: Rust client against zring B -----------------------------------------------------
zr_start B "$NS_S" --config "$E2E_TMP/w.json" --certs "$certs"
rclient() {  # rclient CERTDIR ARGS...
  local dir="$1"
  shift
  ip netns exec "$NS_C" "$RH" client --addr "$S4:15008" --cert "$dir/cert-chain.pem" \
    --key "$dir/key.pem" --ca "$certs/root-cert.pem" --expect-id "$ID_SERVER" "$@" 2>&1
}
out="$(rclient "$cdir" --authority "$S4:7000" --streams 50 --bytes $((256 << 10)))" ||
  fail "Rust client, 50 streams on one connection through B: $out"
log "ok: Rust client: $out"
grep -q '^tls version=TLSv1_3 suite=TLS13_AES_[0-9]*_GCM_SHA[0-9]* alpn=h2 ' <<<"$out" ||
  fail "Rust client: not TLS 1.3 / AES-GCM / h2: $out"
grep -q '^result=ok streams=50 bytes=13107200$' <<<"$out" || fail "Rust client: not 50 intact streams: $out"
wait_until 5 at_least 50 zr_count B 'msg=access' || fail "B: $(zr_count B msg=access) access lines, want 50"
bad="$(zr_access B | grep -vc "src_identity=$ID_CLIENT .*up_bytes=262144 down_bytes=262144 .*error=-" || true)"
[ "$bad" -eq 0 ] || fail "B: $bad access lines not as expected: $(zr_access B | head -n2)"

# Key exchange limited to one group: whatever the client's key share, the
# handshake ends on that group (through a HelloRetryRequest when needed).
for kx in secp256r1 secp384r1; do
  out="$(rclient "$cdir" --authority "$S4:7000" --streams 2 --bytes 65536 --kx "$kx")" ||
    fail "Rust client offering only $kx: $out"
  log "ok: Rust client, $kx only: ${out##*$'\n'}"
done

# A post-handshake KeyUpdate that asks for one back (rustls sends one when
# a key nears its AES-GCM limit; openssl s_client's "K"): B answers with
# its own and the tunnel carries on.
out="$({ sleep 0.5; echo K; sleep 0.3; printf 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'; sleep 0.5; } |
  timeout 10 ip netns exec "$NS_C" openssl s_client -connect "$S4:15008" -tls1_3 -alpn h2 -msg \
    -cert "$cdir/cert-chain.pem" -key "$cdir/key.pem" -CAfile "$certs/root-cert.pem" 2>&1 |
  grep -a 'KeyUpdate' || true)"
grep -q '^<<< TLS 1.3, Handshake .*KeyUpdate' <<<"$out" || fail "B did not answer a KeyUpdate request: $out"
log "ok: KeyUpdate: $(tr '\n' ' ' <<<"$out")"
[ "$(zr_count B 'tls error')" -eq 0 ] || fail "B: tls error after a KeyUpdate: $(grep 'tls error' "$(zr_log B)")"

# Another trust domain (same CA, so the chain verifies): B refuses it inside
# the handshake with an alert.
out="$(rclient "$xdir" --authority "$S4:7000" --streams 1 --bytes 10)" &&
  fail "a client of trust domain other.example got through B: $out"
log "other trust domain: $out"
grep -qE 'alert(=|: )BadCertificate' <<<"$out" ||
  fail "a client of another trust domain saw no bad_certificate alert from B: $out"
wait_until 5 at_least 1 zr_count B 'msg="tls handshake failed" side=server .*error="client identity outside the trust domain"' ||
  fail "B did not log the trust-domain refusal: $(grep 'handshake failed' "$(zr_log B)")"
[ "$(zr_count B 'msg=access')" -eq 54 ] || fail "B proxied something for the other trust domain"
zr_stop B

# RSA identities (TLS 1.3 signs with RSA-PSS) on both sides.
rsa="$E2E_TMP/rsa"
cp -a "$certs" "$rsa"
certs_sh rotate "$rsa" --ns default --sa client --key rsa >/dev/null
certs_sh rotate "$rsa" --ns default --sa server --key rsa >/dev/null
rcdir="$rsa/cluster.local/ns/default/sa/client"
rsdir="$rsa/cluster.local/ns/default/sa/server"
zr_start Brsa "$NS_S" --config "$E2E_TMP/w.json" --certs "$rsa"
out="$(ip netns exec "$NS_C" "$RH" client --addr "$S4:15008" --cert "$rcdir/cert-chain.pem" \
  --key "$rcdir/key.pem" --ca "$rsa/root-cert.pem" --expect-id "$ID_SERVER" \
  --authority "$S4:7000" --streams 2 --bytes 65536 2>&1)" || fail "Rust client, RSA identities: $out"
log "ok: Rust client, RSA identities: ${out##*$'\n'}"
zr_stop Brsa

# --- b: zring A against the Rust server -------------------------------------------------
install_capture_in "$NS_C"
start_echo 9000
RS_N=0
# start_rserver ARGS...: the Rust HBONE server on the server pod's :15008
# (certificate of default/server unless --cert/--key follow); its log is
# $RS_LOG; a running one is stopped first.
start_rserver() {
  [ -z "${RS_PID:-}" ] || { kill "$RS_PID"; wait_gone "$RS_PID" 50 || fail "Rust server did not stop"; }
  RS_N=$((RS_N + 1))
  RS_LOG="$E2E_TMP/rserver-$RS_N.log"
  ip netns exec "$NS_S" "$RH" server --listen "$S4:15008" --ca "$certs/root-cert.pem" \
    --cert "$sdir/cert-chain.pem" --key "$sdir/key.pem" "$@" \
    >"$E2E_TMP/rserver-$RS_N.out" 2>"$RS_LOG" &
  RS_PID=$!
  track "$RS_PID"
  wait_until 10 grep -qs READY "$E2E_TMP/rserver-$RS_N.out" ||
    fail "Rust server did not start: $(cat "$E2E_TMP/rserver-$RS_N.out" "$RS_LOG")"
}
echocheck() {  # echocheck WHAT ARGS...
  local what="$1" out
  shift
  out="$(ns_c "$PY" "$TOOLS/zr_echocheck.py" --host "$S4" --port 9000 "$@")" || fail "$what: $out"
  log "ok: $what: $out"
}
# no_tunnel_errors NAME: zring NAME closed no tunnel with an error.
no_tunnel_errors() {
  local n
  n="$(zr_count "$1" 'msg="tunnel closed".*(reason="tls error"|error=)')"
  [ "$n" -eq 0 ] || fail "$1 closed tunnels with errors: $(grep 'tunnel closed' "$(zr_log "$1")" | head -n3)"
}

start_rserver
zr_start A "$NS_C" --config "$E2E_TMP/w.json" --certs "$certs"
echocheck "one connection, 8 MiB, through A and the Rust server" --bytes $((8 << 20)) --timeout 30
echocheck "20 connections at once, 256 KiB each" --bytes $((256 << 10)) --conns 20
wait_until 5 at_least 21 grep -c '^stream .*result=' "$RS_LOG" ||
  fail "Rust server: $(grep -c '^stream ' "$RS_LOG") stream lines, want 21"
tls="$(grep '^tls ' "$RS_LOG" | head -n1)"
log "Rust server: $tls"
grep -q "version=TLSv1_3 suite=TLS13_AES_[0-9]*_GCM_SHA[0-9]* peer_id=$ID_CLIENT alpn=h2$" <<<"$tls" ||
  fail "Rust server: handshake not as expected: $tls"
# The echo came back through the server: what it carried up, it carried down.
bad="$(grep '^stream ' "$RS_LOG" |
  awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
         if (f["status"] != 200 || f["result"] != "ended" || f["up_sha256"] != f["down_sha256"] ||
             f["up_bytes"] != f["down_bytes"] || f["authority"] != "'"$S4"':9000") print }')"
[ -z "$bad" ] || fail "Rust server: streams not intact: $bad"
grep -q "^stream .* up_bytes=$((8 << 20)) " "$RS_LOG" || fail "Rust server: no 8 MiB stream"
wait_until 5 at_least 21 zr_count A 'msg=access' || fail "A: want 21 access lines"
errors="$(zr_access A | grep -vc ' error=-$' || true)"
[ "$errors" -eq 0 ] || fail "A: $errors access lines carry an error: $(zr_access A | grep -v ' error=-$' | head -n2)"
no_tunnel_errors A
zr_stop A

# The same with the server limited to one group, each on a new tunnel.
for kx in x25519 secp256r1 secp384r1; do
  start_rserver --kx "$kx"
  zr_start "A-$kx" "$NS_C" --config "$E2E_TMP/w.json" --certs "$certs"
  echocheck "A to a Rust server offering only $kx" --bytes 65536
  grep -q '^tls .*alpn=h2$' "$RS_LOG" || fail "Rust server ($kx only): no handshake: $(cat "$RS_LOG")"
  no_tunnel_errors "A-$kx"
  zr_stop "A-$kx"
done

start_rserver --cert "$rsdir/cert-chain.pem" --key "$rsdir/key.pem" --ca "$rsa/root-cert.pem"
zr_start A-rsa "$NS_C" --config "$E2E_TMP/w.json" --certs "$rsa"
echocheck "A to the Rust server, RSA identities" --bytes 65536
no_tunnel_errors A-rsa
zr_stop A-rsa

# --- c: REFUSED_STREAM is retried ----------------------------------------------------
start_rserver --refuse-first 3
zr_start A2 "$NS_C" --config "$E2E_TMP/w.json" --certs "$certs"
echocheck "5 connections, the server refuses its first 3 streams" --bytes 65536 --conns 5
[ "$(grep -c '^refused ' "$RS_LOG")" -eq 3 ] || fail "Rust server refused $(grep -c '^refused ' "$RS_LOG") streams, want 3"
wait_until 5 at_least 5 zr_count A2 'msg=access' || fail "A2: want 5 access lines"
errors="$(zr_access A2 | grep -vc ' error=-$' || true)"
[ "$errors" -eq 0 ] || fail "A2: $errors access lines carry an error: $(zr_access A2 | grep -v ' error=-$' | head -n2)"
zr_stop A2

start_rserver --max-streams 1
zr_start A3 "$NS_C" --config "$E2E_TMP/w.json" --certs "$certs"
echocheck "6 connections at once, the server allows 1 stream per connection" --bytes 65536 --conns 6
log "Rust server: $(grep -c '^tls ' "$RS_LOG") TLS connections, $(grep -c '^stream ' "$RS_LOG") streams"
wait_until 5 at_least 6 zr_count A3 'msg=access' || fail "A3: want 6 access lines"
errors="$(zr_access A3 | grep -vc ' error=-$' || true)"
[ "$errors" -eq 0 ] || fail "A3: $errors access lines carry an error: $(zr_access A3 | grep -v ' error=-$' | head -n2)"
zr_stop A3

# --- d: handshakes that fail are TLS_FAILURE ------------------------------------------
# tls_refused NAME: a client connection through zring NAME ends within 3 s
# and its access line says TLS_FAILURE.
tls_refused() {
  local out a
  out="$(client "$NS_C" probe --host "$S4" --port 9000 --within 3)" ||
    fail "$1: the connection was not ended within 3 s: $out"
  wait_until 5 at_least 1 zr_count "$1" 'msg=access' || fail "$1: no access line"
  a="$(zr_access "$1" | tail -n1)"
  log "$1: $a"
  [ "$(access_field "$a" response_flags)" = TLS_FAILURE ] || fail "$1: response_flags is not TLS_FAILURE: $a"
}

# The wrong identity: A's verification fails inside the handshake, and the
# Rust server hears why.
start_rserver --cert "$odir/cert-chain.pem" --key "$odir/key.pem"
zr_start A4 "$NS_C" --config "$E2E_TMP/w.json" --certs "$certs"
tls_refused A4
wait_until 5 grep -q '^handshake .*result=fail' "$RS_LOG" || fail "Rust server logged no failed handshake"
line="$(grep '^handshake ' "$RS_LOG" | head -n1)"
log "Rust server: $line"
grep -q 'alert=BadCertificate' <<<"$line" || fail "Rust server: no bad_certificate alert from A: $line"
grep -q 'msg="tls handshake failed" .*side=client .*error="server identity mismatch"' "$(zr_log A4)" ||
  fail "A4 did not log the identity mismatch: $(grep 'handshake failed' "$(zr_log A4)")"
zr_stop A4

# A server that does not trust A's CA: TLS 1.3 lets A finish its side of
# the handshake first; the server's alert comes before any HTTP/2, and that
# is still a failed handshake, not a failed upstream connection.
hbone_certs "$E2E_TMP/ca2" server
start_rserver --ca "$E2E_TMP/ca2/root-cert.pem"
zr_start A7 "$NS_C" --config "$E2E_TMP/w.json" --certs "$certs"
tls_refused A7
wait_until 5 grep -q '^handshake .*result=fail' "$RS_LOG" || fail "Rust server logged no failed handshake"
log "Rust server: $(grep '^handshake ' "$RS_LOG" | head -n1)"
zr_stop A7
kill "$RS_PID"
wait_gone "$RS_PID" 50 || fail "Rust server did not stop"
RS_PID=""

# A server that hangs up at once, before any TLS.
ip netns exec "$NS_S" "$PY" -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 15008))
s.listen(16)
print("READY", flush=True)
while True:
    s.accept()[0].close()
' "$S4" >"$E2E_TMP/hangup.out" 2>&1 &
HU_PID=$!
track "$HU_PID"
wait_until 10 grep -qs READY "$E2E_TMP/hangup.out" || fail "hang-up server did not start"
zr_start A8 "$NS_C" --config "$E2E_TMP/w.json" --certs "$certs"
tls_refused A8
zr_stop A8
kill "$HU_PID"
wait_gone "$HU_PID" 50 || fail "hang-up server did not stop"

# openssl s_server NAME ARGS...: on the server pod's :15008.
start_sserver() {
  local name="$1"
  shift
  ip netns exec "$NS_S" openssl s_server -quiet -accept "$S4:15008" -naccept 1 \
    -cert "$sdir/cert-chain.pem" -key "$sdir/key.pem" -CAfile "$certs/root-cert.pem" "$@" \
    </dev/null >"$E2E_TMP/$name.out" 2>"$E2E_TMP/$name.log" &
  SS_PID=$!
  track "$SS_PID"
  wait_until 10 ss_listening || fail "openssl s_server ($name) did not start"
}
ss_listening() { ip netns exec "$NS_S" ss -Htln "sport = :15008" | grep -q .; }

start_sserver tls12 -tls1_2
zr_start A5 "$NS_C" --config "$E2E_TMP/w.json" --certs "$certs"
tls_refused A5
# The metrics say the same: one connection closed with TLS_FAILURE.
metrics_get "$NS_C"
v="$(metric_value istio_tcp_connections_closed_total 'reporter="source",response_flags="TLS_FAILURE"')"
[ "$v" = 1 ] || fail "A5: istio_tcp_connections_closed_total{response_flags=\"TLS_FAILURE\"} is '$v', want 1: $(grep connections_closed "$METRICS_FILE")"
zr_stop A5
kill "$SS_PID" 2>/dev/null || true
wait_gone "$SS_PID" 50 || fail "openssl s_server did not stop"

start_sserver noalpn -tls1_3 -Verify 1
zr_start A6 "$NS_C" --config "$E2E_TMP/w.json" --certs "$certs"
tls_refused A6
grep -q 'msg="tls handshake failed" .*error="peer did not agree to ALPN h2"' "$(zr_log A6)" ||
  fail "A6 did not log the missing ALPN: $(grep 'handshake failed' "$(zr_log A6)")"
zr_stop A6

hbone_pass "rustls + h2 (ztunnel's stacks) both ways: 50 streams on one tunnel, session tickets, REFUSED_STREAM retried, identity alerts, TLS_FAILURE"
