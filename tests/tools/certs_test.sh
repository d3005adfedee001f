#!/usr/bin/env bash
# Checks scripts/certs.sh with the openssl command line tool alone (no
# Criterion, no root, no zring): it makes a CA and workload certificates of
# every kind in a temporary directory and checks that each is what it
# claims to be. The bad ones (expired, not yet valid, mismatched key,
# untrusted CA, wrong or no SAN) must be bad in exactly the intended way,
# or the zring tests that use them would pass for the wrong reason.
#
#   tests/tools/certs_test.sh            (CERTS_SH overrides the script)
#
# Prints one "ok"/"not ok" line per check (TAP-like); exits 0 if all pass,
# 1 otherwise.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
certs="${CERTS_SH:-$root/scripts/certs.sh}"

if ! command -v openssl >/dev/null 2>&1; then
  echo "not ok - openssl is not installed (scripts/setup.sh installs it)"
  exit 1
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/zring-certs-test.XXXXXX")"
trap 'rm -rf -- "$tmp"' EXIT

total=0
failed=0
pass() { total=$((total + 1)); echo "ok $total - $1"; }
fail() { total=$((total + 1)); failed=$((failed + 1)); echo "not ok $total - $1"; }
# check DESC CMD...: CMD must succeed. refute DESC CMD...: CMD must fail.
check() { local d="$1"; shift; if "$@" >/dev/null 2>&1; then pass "$d"; else fail "$d"; fi; }
refute() { local d="$1"; shift; if "$@" >/dev/null 2>&1; then fail "$d"; else pass "$d"; fi; }
# same DESC GOT WANT
same() {
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1"; printf '#   got:  %s\n#   want: %s\n' "$2" "$3"; fi
}
# exit_is DESC CODE CMD...: CMD exits with CODE.
exit_is() {
  local d="$1" want="$2" rc=0; shift 2
  "$@" >/dev/null 2>&1 || rc=$?
  same "$d (exit $want)" "$rc" "$want"
}

cs() { "$certs" "$@" 2>>"$tmp/certs.log"; }
wl() { echo "$1/${4:-cluster.local}/ns/$2/sa/$3"; }   # wl DIR NS SA [TD]

# --- what a certificate says ---------------------------------------------------
uri_sans() {
  openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null |
    tr ',' '\n' | sed -n 's/^[[:space:]]*URI://p' | paste -sd' ' -
}
ext() { openssl x509 -in "$1" -noout -ext "$2" 2>/dev/null | sed 1d | sed 's/^ *//' | paste -sd' ' -; }
ext_head() { openssl x509 -in "$1" -noout -ext "$2" 2>/dev/null | head -n1; }
serial() { openssl x509 -in "$1" -noout -serial; }
cert_pub() { openssl x509 -in "$1" -noout -pubkey; }
key_pub() { openssl pkey -in "$1" -pubout; }
# shellcheck disable=SC2317 # called through check/refute
key_matches() { [ "$(cert_pub "$1/cert-chain.pem")" = "$(key_pub "$1/key.pem")" ]; }
epoch() { date -u -d "$(openssl x509 -in "$1" -noout "-$2" | cut -d= -f2)" +%s; }
key_alg() {
  openssl x509 -in "$1" -noout -text |
    sed -n 's/^ *Public Key Algorithm: //p; s/^ *Public-Key: (\(.*\))/\1/p; s/^ *NIST CURVE: //p' |
    paste -sd' ' -
}
fingerprint() { openssl x509 -in "$1" -noout -fingerprint -sha256; }
ncerts() { grep -c -- '-----BEGIN CERTIFICATE-----' "$1"; }
second_cert() { awk '/BEGIN CERT/{n++} n==2' "$1"; }
# The number openssl verify reports ("error 10 at 0 depth ..."), or "ok".
verify_code() {  # verify_code CAFILE CERT [openssl verify options]
  local ca="$1" cert="$2" out; shift 2
  if out="$(openssl verify "$@" -CAfile "$ca" "$cert" 2>&1)"; then echo ok; return; fi
  sed -n 's/^error \([0-9]*\) at 0 depth.*/\1/p' <<<"$out" | head -n1
}
mode_of() { stat -c %a "$1"; }

now="$(date -u +%s)"
D="$tmp/certs"       # the CA and the workloads zring would read
O="$tmp/other"       # another CA, for untrusted-CA certificates

# --- usage ---------------------------------------------------------------------
exit_is "no arguments" 2 "$certs"
exit_is "unknown subcommand" 2 "$certs" frobnicate
exit_is "ca without DIR" 2 "$certs" ca
exit_is "workload without --ns/--sa" 2 "$certs" workload "$D"
exit_is "workload without --sa" 2 "$certs" workload "$D" --ns a
exit_is "path traversal in --ns" 2 "$certs" workload "$D" --ns ../x --sa b
exit_is "slash in --sa" 2 "$certs" workload "$D" --ns a --sa b/c
exit_is "bad trust domain" 2 "$certs" workload "$D" --ns a --sa b --trust-domain 'Bad TD'
exit_is "two validity choices" 2 "$certs" workload "$D" --ns a --sa b --expired --days 3
exit_is "--days 0" 2 "$certs" workload "$D" --ns a --sa b --days 0
exit_is "--key dsa" 2 "$certs" workload "$D" --ns a --sa b --key dsa
exit_is "--san with a space" 2 "$certs" workload "$D" --ns a --sa b --san 'spiffe://x y'
# shellcheck disable=SC2016 # a literal '$' is the point
exit_is "--san with a \$" 2 "$certs" workload "$D" --ns a --sa b --san 'spiffe://x/$HOME'
exit_is "unparsable --not-before" 2 "$certs" workload "$D" --ns a --sa b --not-before garbage
exit_is "--not-before after --not-after" 2 "$certs" workload "$D" --ns a --sa b \
  --not-before 2030-01-01 --not-after 2029-01-01
exit_is "unknown option" 2 "$certs" workload "$D" --ns a --sa b --bogus
check "help exits 0" "$certs" help
exit_is "workload before any CA" 1 "$certs" workload "$D" --ns a --sa b
exit_is "rotate of a missing workload" 1 "$certs" rotate "$D" --ns a --sa b
refute "nothing written by the failed calls" test -e "$D/cluster.local"

# --- the CA --------------------------------------------------------------------
check "ca makes a CA" cs ca "$D"
check "ca makes another CA (RSA)" cs ca "$O" --key rsa --trust-domain other.example
check "root-cert.pem exists" test -s "$D/root-cert.pem"
same "root-key.pem is 0600" "$(mode_of "$D/root-key.pem")" 600
same "CA basicConstraints" "$(ext_head "$D/root-cert.pem" basicConstraints) $(ext "$D/root-cert.pem" basicConstraints)" \
  "X509v3 Basic Constraints: critical CA:TRUE"
same "CA keyUsage" "$(ext_head "$D/root-cert.pem" keyUsage) $(ext "$D/root-cert.pem" keyUsage)" \
  "X509v3 Key Usage: critical Certificate Sign, CRL Sign"
same "CA key is P-256" "$(key_alg "$D/root-cert.pem")" "id-ecPublicKey 256 bit P-256"
same "--key rsa CA is RSA 2048" "$(key_alg "$O/root-cert.pem")" "rsaEncryption 2048 bit"
same "CA is self-signed" "$(verify_code "$D/root-cert.pem" "$D/root-cert.pem")" ok
same "CA subject names the trust domain" \
  "$(openssl x509 -in "$O/root-cert.pem" -noout -subject -nameopt RFC2253)" \
  "subject=CN=zring test root CA,O=other.example"
check "CA key matches CA cert" test "$(cert_pub "$D/root-cert.pem")" = "$(key_pub "$D/root-key.pem")"
before="$(fingerprint "$D/root-cert.pem")"
check "ca again succeeds" cs ca "$D" --key rsa
same "ca again reuses the CA" "$(fingerprint "$D/root-cert.pem")" "$before"
same "CA valid for ~10 years" "$((($(epoch "$D/root-cert.pem" enddate) - now) / 86400))" 3650

# --- a good workload (ECDSA) ---------------------------------------------------------
W="$(wl "$D" default web)"
check "workload (ec)" cs workload "$D" --ns default --sa web
same "workload prints its directory" "$("$certs" workload "$D" --ns default --sa web 2>/dev/null)" "$W"
C="$W/cert-chain.pem"
same "chain verifies" "$(verify_code "$D/root-cert.pem" "$C")" ok
same "chain verifies strictly" "$(verify_code "$D/root-cert.pem" "$C" -x509_strict)" ok
same "good for TLS servers" "$(verify_code "$D/root-cert.pem" "$C" -purpose sslserver)" ok
same "good for TLS clients" "$(verify_code "$D/root-cert.pem" "$C" -purpose sslclient)" ok
check "valid for another day at least" openssl x509 -in "$C" -noout -checkend 86400
same "valid for ~365 days" "$((($(epoch "$C" enddate) - now) / 86400))" 365
check "notBefore is not in the future" test "$(epoch "$C" startdate)" -le "$now"
same "URI SAN is the identity" "$(uri_sans "$C")" "spiffe://cluster.local/ns/default/sa/web"
same "SAN is critical (empty subject)" "$(ext_head "$C" subjectAltName)" "X509v3 Subject Alternative Name: critical"
same "subject is empty" "$(openssl x509 -in "$C" -noout -subject)" "subject="
check "key matches certificate" key_matches "$W"
same "leaf key is P-256" "$(key_alg "$C")" "id-ecPublicKey 256 bit P-256"
same "leaf basicConstraints" "$(ext "$C" basicConstraints)" "CA:FALSE"
same "leaf keyUsage (ec)" "$(ext "$C" keyUsage)" "Digital Signature"
same "leaf extendedKeyUsage" "$(ext "$C" extendedKeyUsage)" \
  "TLS Web Server Authentication, TLS Web Client Authentication"
same "chain holds two certificates" "$(ncerts "$C")" 2
same "chain's second certificate is the CA" \
  "$(second_cert "$C" | openssl x509 -noout -fingerprint -sha256)" "$(fingerprint "$D/root-cert.pem")"
same "key.pem is 0600" "$(mode_of "$W/key.pem")" 600
same "cert-chain.pem is 0644" "$(mode_of "$C")" 644
s1="$(serial "$C")"
cs workload "$D" --ns default --sa web2 >/dev/null
check "serials are random" test "$s1" != "$(serial "$(wl "$D" default web2)/cert-chain.pem")"
check "serial is long (random, >= 64 bits)" test "$(serial "$C" | cut -d= -f2 | wc -c)" -ge 17

# --- RSA, trust domain, extra SANs -----------------------------------------------------
R="$(wl "$D" default rsa)"
check "workload --key rsa" cs workload "$D" --ns default --sa rsa --key rsa
same "rsa verifies" "$(verify_code "$D/root-cert.pem" "$R/cert-chain.pem")" ok
same "rsa key is RSA 2048" "$(key_alg "$R/cert-chain.pem")" "rsaEncryption 2048 bit"
same "rsa keyUsage" "$(ext "$R/cert-chain.pem" keyUsage)" "Digital Signature, Key Encipherment"
check "rsa key matches" key_matches "$R"

T="$(wl "$D" prod api example.org)"
check "workload --trust-domain" cs workload "$D" --ns prod --sa api --trust-domain example.org
same "trust domain in the SAN" "$(uri_sans "$T/cert-chain.pem")" "spiffe://example.org/ns/prod/sa/api"

X="$(wl "$D" default multi)"
check "workload --san (extra)" cs workload "$D" --ns default --sa multi \
  --san spiffe://cluster.local/ns/default/sa/svc --san spiffe://cluster.local/ns/default/sa/multi
same "identity first, then extras, no repeats" "$(uri_sans "$X/cert-chain.pem")" \
  "spiffe://cluster.local/ns/default/sa/multi spiffe://cluster.local/ns/default/sa/svc"

# --- deliberately bad certificates ------------------------------------------------------
E="$(wl "$D" bad expired)"
check "workload --expired" cs workload "$D" --ns bad --sa expired --expired
same "expired: verify says expired (10)" "$(verify_code "$D/root-cert.pem" "$E/cert-chain.pem")" 10
refute "expired: checkend 0 fails" openssl x509 -in "$E/cert-chain.pem" -noout -checkend 0
check "expired: notBefore in the past too" test "$(epoch "$E/cert-chain.pem" startdate)" -lt "$now"
check "expired: otherwise fine (key matches)" key_matches "$E"
same "expired: SAN still right" "$(uri_sans "$E/cert-chain.pem")" "spiffe://cluster.local/ns/bad/sa/expired"

F="$(wl "$D" bad future)"
check "workload --not-yet-valid" cs workload "$D" --ns bad --sa future --not-yet-valid
same "not yet valid: verify says so (9)" "$(verify_code "$D/root-cert.pem" "$F/cert-chain.pem")" 9
check "not yet valid: notBefore in the future" test "$(epoch "$F/cert-chain.pem" startdate)" -gt "$now"
check "not yet valid: notAfter in the future (checkend 0 passes)" \
  openssl x509 -in "$F/cert-chain.pem" -noout -checkend 0
check "not yet valid: otherwise fine (key matches)" key_matches "$F"

M="$(wl "$D" bad mismatched)"
check "workload --mismatched-key" cs workload "$D" --ns bad --sa mismatched --mismatched-key
refute "mismatched: key does not match" key_matches "$M"
same "mismatched: the certificate itself verifies" "$(verify_code "$D/root-cert.pem" "$M/cert-chain.pem")" ok
check "mismatched: key.pem is a usable key" openssl pkey -in "$M/key.pem" -noout
same "mismatched: same key type" "$(openssl pkey -in "$M/key.pem" -noout -text_pub | head -n1)" "Public-Key: (256 bit)"

U="$(wl "$D" bad untrusted)"
check "workload --ca OTHER" cs workload "$D" --ns bad --sa untrusted --ca "$O"
same "untrusted: no issuer in the bundle (20)" "$(verify_code "$D/root-cert.pem" "$U/cert-chain.pem")" 20
same "untrusted: verifies against the other CA" "$(verify_code "$O/root-cert.pem" "$U/cert-chain.pem")" ok
same "untrusted: chain carries the other CA" \
  "$(second_cert "$U/cert-chain.pem" | openssl x509 -noout -fingerprint -sha256)" "$(fingerprint "$O/root-cert.pem")"
check "untrusted: key matches" key_matches "$U"
same "untrusted: SAN right" "$(uri_sans "$U/cert-chain.pem")" "spiffe://cluster.local/ns/bad/sa/untrusted"

N="$(wl "$D" bad nosan)"
check "workload --no-san" cs workload "$D" --ns bad --sa nosan --no-san
same "no SAN: no SAN extension" "$(uri_sans "$N/cert-chain.pem")" ""
same "no SAN: identity only as CN" "$(openssl x509 -in "$N/cert-chain.pem" -noout -subject -nameopt RFC2253)" \
  "subject=CN=spiffe://cluster.local/ns/bad/sa/nosan"
same "no SAN: verifies" "$(verify_code "$D/root-cert.pem" "$N/cert-chain.pem")" ok

S="$(wl "$D" bad wrongsan)"
check "workload --no-san --san OTHER" cs workload "$D" --ns bad --sa wrongsan \
  --no-san --san spiffe://cluster.local/ns/other/sa/someone
same "wrong SAN: only the given SAN" "$(uri_sans "$S/cert-chain.pem")" "spiffe://cluster.local/ns/other/sa/someone"
same "wrong SAN: verifies" "$(verify_code "$D/root-cert.pem" "$S/cert-chain.pem")" ok

P="$(wl "$D" bad explicit)"
check "workload --not-before/--not-after" cs workload "$D" --ns bad --sa explicit \
  --not-before 20200101000000Z --not-after '2070-06-30 12:00:00 UTC'
same "explicit notBefore" "$(openssl x509 -in "$P/cert-chain.pem" -noout -startdate)" "notBefore=Jan  1 00:00:00 2020 GMT"
same "explicit notAfter (after 2049)" "$(openssl x509 -in "$P/cert-chain.pem" -noout -enddate)" "notAfter=Jun 30 12:00:00 2070 GMT"
# RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
same "UTCTime then GeneralizedTime" \
  "$(openssl asn1parse -in "$P/cert-chain.pem" | grep -oE '(UTC|GENERALIZED)TIME' | head -n2 | paste -sd' ' -)" \
  "UTCTIME GENERALIZEDTIME"
same "explicit: verifies" "$(verify_code "$D/root-cert.pem" "$P/cert-chain.pem")" ok

# --- rotation ------------------------------------------------------------------
cs workload "$D" --ns default --sa rsa --key rsa --san spiffe://cluster.local/ns/default/sa/alias >/dev/null
old_serial="$(serial "$R/cert-chain.pem")"
old_pub="$(cert_pub "$R/cert-chain.pem")"
check "rotate" cs rotate "$D" --ns default --sa rsa
check "rotate: new serial" test "$(serial "$R/cert-chain.pem")" != "$old_serial"
check "rotate: new key" test "$(cert_pub "$R/cert-chain.pem")" != "$old_pub"
check "rotate: key matches" key_matches "$R"
same "rotate: keeps the key type" "$(key_alg "$R/cert-chain.pem")" "rsaEncryption 2048 bit"
same "rotate: keeps the SANs" "$(uri_sans "$R/cert-chain.pem")" \
  "spiffe://cluster.local/ns/default/sa/rsa spiffe://cluster.local/ns/default/sa/alias"
same "rotate: verifies" "$(verify_code "$D/root-cert.pem" "$R/cert-chain.pem")" ok
check "rotate of an expired cert makes a valid one" cs rotate "$D" --ns bad --sa expired
same "... which verifies" "$(verify_code "$D/root-cert.pem" "$E/cert-chain.pem")" ok
check "rotate --expired" cs rotate "$D" --ns default --sa web2 --expired
same "... gives an expired one" "$(verify_code "$D/root-cert.pem" "$(wl "$D" default web2)/cert-chain.pem")" 10
check "rotate of the no-SAN cert" cs rotate "$D" --ns bad --sa nosan
same "... keeps it without SAN" "$(uri_sans "$N/cert-chain.pem")" ""

# A reader racing rotations only ever sees whole files (each is renamed
# into place). The pair may be inconsistent between the two renames; that
# is documented (docs/security.md) and not checked here.
(
  for _ in 1 2 3 4 5 6 7 8; do "$certs" rotate "$D" --ns default --sa web >/dev/null 2>&1; done
) &
rot=$!
reads=0 torn=0
while kill -0 "$rot" 2>/dev/null; do
  if ! cp "$C" "$tmp/snap.pem" 2>/dev/null || ! cp "$W/key.pem" "$tmp/snap.key" 2>/dev/null; then
    continue
  fi
  reads=$((reads + 1))
  if [ "$(ncerts "$tmp/snap.pem")" != 2 ] || ! openssl x509 -in "$tmp/snap.pem" -noout 2>/dev/null ||
     ! openssl pkey -in "$tmp/snap.key" -noout 2>/dev/null; then
    torn=$((torn + 1))
  fi
done
if wait "$rot"; then pass "8 rotations in a row"; else fail "8 rotations in a row"; fi
check "a reader ran during the rotations" test "$reads" -gt 0
same "no torn file in $reads reads during rotation" "$torn" 0
check "after rotations: key matches" key_matches "$W"
same "no temporary files left behind" "$(find "$D" -name '.*.tmp.*' | wc -l)" 0

# --- a trust bundle with two roots ------------------------------------------------------
# Tests change the trust bundle by appending a root; the CA must still find
# its own certificate in it.
cat "$O/root-cert.pem" >>"$D/root-cert.pem"
check "workload with a two-root bundle" cs workload "$D" --ns default --sa bundle
B="$(wl "$D" default bundle)"
same "... verifies" "$(verify_code "$D/root-cert.pem" "$B/cert-chain.pem")" ok
same "... chain carries the signing root only" "$(ncerts "$B/cert-chain.pem")" 2
check "ca with a two-root bundle still reuses it" cs ca "$D"

# Concurrent `ca` on a fresh directory: one CA, and both runs agree on it.
"$certs" ca "$tmp/race" >/dev/null 2>&1 & r1=$!
"$certs" ca "$tmp/race" >/dev/null 2>&1 & r2=$!
if wait "$r1" && wait "$r2"; then pass "two concurrent ca runs"; else fail "two concurrent ca runs"; fi
same "... left exactly one CA" "$(ncerts "$tmp/race/root-cert.pem")" 1
check "... whose key matches" test "$(cert_pub "$tmp/race/root-cert.pem")" = "$(key_pub "$tmp/race/root-key.pem")"

# --- show ----------------------------------------------------------------------
out="$("$certs" show "$W" 2>&1)"
check "show: the SAN" grep -q 'URI:spiffe://cluster.local/ns/default/sa/web' <<<"$out"
check "show: valid now" grep -q '(valid now)' <<<"$out"
check "show: two certificates" grep -q '^certificate 1:' <<<"$out"
check "show: key matches" grep -q 'matches certificate 0: yes' <<<"$out"
check "show: expired" grep -q '(EXPIRED)' <<<"$("$certs" show "$(wl "$D" default web2)/cert-chain.pem" 2>&1)"
check "show: not yet valid" grep -q '(NOT YET VALID)' <<<"$("$certs" show "$F/cert-chain.pem" 2>&1)"
check "show: mismatched key" grep -q 'matches certificate 0: NO' <<<"$("$certs" show "$M/key.pem" 2>&1)"
check "show: no SAN" grep -q 'Subject Alternative Name: (none)' <<<"$("$certs" show "$N" 2>&1)"
exit_is "show of a missing file" 1 "$certs" show "$tmp/nope.pem"

echo "# $((total - failed))/$total passed"
if [ "$failed" -gt 0 ]; then
  echo "# certs.sh said:"; sed 's/^/#   /' "$tmp/certs.log" | tail -n 40
  exit 1
fi
exit 0
