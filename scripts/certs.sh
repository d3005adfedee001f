#!/usr/bin/env bash
# certs.sh: a small test certificate authority for zring's tests and the
# quick-start demo. It makes a root CA and SPIFFE workload certificates laid
# out the way zring reads them (docs/security.md):
#
#   DIR/root-cert.pem                                   trust bundle (the CA)
#   DIR/root-key.pem                                    CA key (tests only!)
#   DIR/<td>/ns/<ns>/sa/<sa>/cert-chain.pem             leaf, then the CA
#   DIR/<td>/ns/<ns>/sa/<sa>/key.pem                    leaf key (0600)
#
# Workload certificates look like the ones istiod issues, so that the
# tests exercise the parsing paths a real mesh would: empty subject,
# critical URI SAN spiffe://<td>/ns/<ns>/sa/<sa>, CA:FALSE, digitalSignature
# (+keyEncipherment for RSA), serverAuth+clientAuth, random 159-bit serial.
#
# It can also make deliberately bad certificates (expired, not yet valid,
# wrong key, wrong or no SAN, signed by another CA) for the refusal tests.
#
# Every file is written to a temporary name in its own directory and renamed
# into place, so a watcher never reads half a file. See `rotate` for the
# order in which the two files of a workload change.
#
# Needs the openssl command line tool (Debian: package `openssl`, 3.0 in
# bookworm). Run `certs.sh help` for the usage.
set -euo pipefail

prog="certs.sh"

usage() {
  cat <<'EOF'
usage:
  certs.sh ca DIR [--trust-domain TD] [--days N] [--key ec|rsa]
      Make a root CA: DIR/root-cert.pem, DIR/root-key.pem. Idempotent: an
      existing CA in DIR is reused as it is (options are then ignored).

  certs.sh workload DIR --ns NS --sa SA [options]
      Issue DIR/<td>/ns/<ns>/sa/<sa>/{cert-chain.pem,key.pem}, signed by the
      CA in DIR (or --ca DIR2). Prints the workload directory on stdout.

  certs.sh rotate DIR --ns NS --sa SA [options]
      Re-issue an existing workload certificate: new key, new serial, same
      key type and SANs as the current certificate unless options say
      otherwise. key.pem is replaced first, cert-chain.pem last.

  certs.sh show FILE|WORKLOAD_DIR
      Print subject, issuer, serial, SANs, validity and key of each
      certificate in FILE; for a workload directory (or a key file), also
      whether key.pem matches the certificate.

workload / rotate options:
  --trust-domain TD     default cluster.local
  --key ec|rsa          ECDSA P-256 (default) or RSA 2048
  --ca DIR2             sign with the CA in DIR2 instead (untrusted-CA tests)
  --days N              valid from a minute ago for N days (default 365)
  --not-before T        validity start; T is YYYYMMDDHHMMSSZ or anything
  --not-after T         `date -d` understands ("2020-01-01", "-2 days")
  --expired             validity entirely in the past
  --not-yet-valid       validity entirely in the future
  --san URI             add a URI SAN (repeatable)
  --no-san              leave out the spiffe:// SAN of the path; with no
                        --san the certificate has no SAN at all (its subject
                        then carries the identity as CN, which must NOT be
                        accepted); with --san, only those SANs (wrong-SAN
                        tests)
  --mismatched-key      key.pem is a fresh key that does not match the cert

Exit status: 0 done, 1 failed, 2 usage error.
EOF
}

die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }
# Usage errors exit 2, as the usage text says, so tests can tell them apart.
bad() { printf '%s: %s\n' "$prog" "$*" >&2; printf "run '%s help' for the usage\n" "$prog" >&2; exit 2; }
note() { printf '%s: %s\n' "$prog" "$*" >&2; }

# Scratch space (CSRs, the openssl ca database) lives outside DIR so a
# watcher of DIR never sees it; staged temporaries inside DIR are tracked so
# a failure halfway leaves no stray files behind.
work=""
staged=()
cleanup() {
  local f
  for f in "${staged[@]+"${staged[@]}"}"; do rm -f -- "$f"; done
  [ -z "$work" ] || rm -rf -- "$work"
}
trap cleanup EXIT

need_openssl() {
  command -v openssl >/dev/null 2>&1 ||
    die "openssl not found (Debian: apt-get install openssl; scripts/setup.sh installs it)"
  [ -n "$work" ] || work="$(mktemp -d "${TMPDIR:-/tmp}/zring-certs.XXXXXX")"
}

# Run openssl quietly; on failure show what it said and stop. openssl is
# chatty on stderr even when it succeeds ("Using configuration from ...").
ossl() {
  if ! openssl "$@" >"$work/ossl.log" 2>&1; then
    cat "$work/ossl.log" >&2
    die "openssl $1 failed"
  fi
}

# --- names and times ---------------------------------------------------------

# Names become path components and config values, so only the characters
# SPIFFE and Kubernetes allow: this also rules out path traversal ("..", "/")
# and openssl config injection ("$", newlines).
check_td() {
  [[ "$1" =~ ^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$ && ${#1} -le 255 ]] ||
    bad "bad trust domain '$1' (lower-case letters, digits, '.', '-', '_')"
}
check_name() {  # check_name WHAT VALUE
  [[ "$2" =~ ^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$ && ${#2} -le 253 ]] ||
    bad "bad $1 '$2' (letters, digits, '.', '-', '_'; not starting or ending with a symbol)"
}
check_uri() {
  # A scheme, then URI characters but for whitespace, quotes, '$', '#' and
  # '\', which mean something to openssl's config parser.
  local re='^[A-Za-z][A-Za-z0-9+.-]*:[][A-Za-z0-9._~:/?@!&()*+,;=%-]+$'
  [[ "$1" =~ $re ]] || bad "bad --san '$1' (want a URI such as spiffe://td/ns/x/sa/y)"
}
check_days() {
  [[ "$1" =~ ^[1-9][0-9]{0,5}$ ]] || bad "bad --days '$1' (a positive whole number)"
}

# Time T (YYYYMMDDHHMMSSZ, or anything `date -d` takes) as epoch seconds.
epoch_of() {
  local t="$1"
  if [[ "$t" =~ ^([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})Z$ ]]; then
    t="${BASH_REMATCH[1]}-${BASH_REMATCH[2]}-${BASH_REMATCH[3]} ${BASH_REMATCH[4]}:${BASH_REMATCH[5]}:${BASH_REMATCH[6]} UTC"
  fi
  date -u -d "$t" +%s 2>/dev/null || bad "bad time '$1'"
}
# Epoch seconds in the form `openssl ca -startdate/-enddate` takes. The
# 4-digit year form is accepted by OpenSSL 3.0 and encoded as UTCTime up to
# 2049 and GeneralizedTime from 2050 on, as RFC 5280 wants.
asn1_of() { date -u -d "@$1" +%Y%m%d%H%M%SZ; }

# --- files -------------------------------------------------------------------

# stage DEST MODE: a new empty temporary file next to DEST (same directory,
# so the later rename is atomic), with MODE, printed on stdout. Its name
# starts with '.' and ends in '.tmp.XXXXXX': watchers should ignore it.
stage() {
  local dest="$1" mode="$2" tmp
  tmp="$(mktemp "$(dirname -- "$dest")/.$(basename -- "$dest").tmp.XXXXXX")"
  chmod "$mode" -- "$tmp"
  printf '%s\n' "$tmp"
}
# commit_pair TMP1 DEST1 TMP2 DEST2: rename(2) TMP1 over DEST1, then TMP2
# over DEST2, from one process so that the two renames are microseconds
# apart rather than a fork+exec of mv (milliseconds): a reader that picks
# the moment between them sees a new DEST1 with the old DEST2. perl-base is
# Essential on Debian, so perl is always there.
commit_pair() {
  perl -e 'for my $i (0, 2) {
             rename($ARGV[$i], $ARGV[$i + 1]) or die "rename $ARGV[$i] -> $ARGV[$i + 1]: $!\n";
           }' -- "$@" || die "could not put $2 and $4 in place"
}

# The public key of a certificate (first in FILE) or of a private key, as
# PEM: equal output means the key matches the certificate.
cert_pub() { openssl x509 -in "$1" -noout -pubkey 2>/dev/null; }
key_pub() { openssl pkey -in "$1" -pubout 2>/dev/null; }

# Split the PEM certificates of FILE into PREFIX.0, PREFIX.1, ...; prints
# how many.
split_pem() {
  awk -v p="$2" '
    /-----BEGIN CERTIFICATE-----/ { f = p "." n++; inside = 1 }
    inside { print > f }
    /-----END CERTIFICATE-----/ { inside = 0; close(f) }
    END { print n + 0 }' "$1"
}

# genkey ec|rsa OUT: a new private key (PKCS#8 PEM), readable by owner only.
genkey() {
  local type="$1" out="$2"
  case "$type" in
    ec) (umask 077; ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
           -pkeyopt ec_param_enc:named_curve -out "$out") ;;
    rsa) (umask 077; ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$out") ;;
  esac
}

# The minimal `openssl ca` configuration. `openssl ca` is used (rather than
# `x509 -req`) because OpenSSL 3.0's x509/req cannot set notBefore, and the
# bad-certificate tests need validity in the past or the future. Its
# database is a throw-away in $work; serials are random (-rand_serial), but
# 3.0 still insists that a serial file be named.
write_config() {  # write_config FILE
  mkdir -p "$work/db/new"
  : >"$work/db/index.txt"
  echo 01 >"$work/db/serial"
  cat >"$1" <<EOF
[ca]
default_ca = testca
[testca]
database = $work/db/index.txt
serial = $work/db/serial
new_certs_dir = $work/db/new
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
[policy_any]
[req]
distinguished_name = req_dn
prompt = no
[req_dn]
[root_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
EOF
}

# Backdate notBefore a little so a certificate made this second is valid
# this second on a peer whose clock is slightly behind.
readonly BACKDATE=60

# Serialize certs.sh runs on one DIR (two `ca DIR` at once would each make
# a CA, and the loser's workloads would not verify). flock(2) on the
# directory itself: no lock file for a watcher of DIR to trip over. The
# lock is released when this process exits.
lock_dir() {
  local fd
  mkdir -p -- "$1"
  exec {fd}<"$1"
  flock "$fd"
}

# --- ca ------------------------------------------------------------------------

# The CA of DIR as "CERT KEY" files in $work: the certificate in
# DIR/root-cert.pem whose public key is DIR/root-key.pem's. The bundle may
# hold several roots (tests add one to change the trust bundle); the
# issuer is the one that matches the key.
find_ca() {  # find_ca DIR -> sets ca_cert, ca_key
  local dir="$1" n i want
  if [ ! -f "$dir/root-cert.pem" ] || [ ! -f "$dir/root-key.pem" ]; then
    die "no CA in $dir (run: $prog ca $dir)"
  fi
  want="$(key_pub "$dir/root-key.pem")" || die "$dir/root-key.pem is not a private key"
  n="$(split_pem "$dir/root-cert.pem" "$work/bundle")"
  for ((i = 0; i < n; i++)); do
    if [ "$(cert_pub "$work/bundle.$i")" = "$want" ]; then
      ca_cert="$work/bundle.$i"
      ca_key="$dir/root-key.pem"
      return 0
    fi
  done
  die "no certificate in $dir/root-cert.pem matches $dir/root-key.pem"
}

cmd_ca() {
  local dir="" td="cluster.local" days=3650 key=ec
  while [ $# -gt 0 ]; do
    case "$1" in
      --trust-domain) [ $# -ge 2 ] || bad "$1 needs a value"; td="$2"; shift 2 ;;
      --days) [ $# -ge 2 ] || bad "$1 needs a value"; days="$2"; shift 2 ;;
      --key) [ $# -ge 2 ] || bad "$1 needs a value"; key="$2"; shift 2 ;;
      -*) bad "ca: unknown option $1" ;;
      *) [ -z "$dir" ] || bad "ca: one DIR only"; dir="$1"; shift ;;
    esac
  done
  [ -n "$dir" ] || bad "ca: DIR missing"
  check_td "$td"
  check_days "$days"
  [[ "$key" = ec || "$key" = rsa ]] || bad "--key: ec or rsa"
  need_openssl

  lock_dir "$dir"
  # Idempotent: tests and the demo call this before every run; re-making
  # the CA would invalidate every workload certificate already issued.
  # Half a CA (a bundle without its key, say) is not ours to overwrite.
  if [ -e "$dir/root-cert.pem" ] || [ -e "$dir/root-key.pem" ]; then
    [ -e "$dir/root-cert.pem" ] || die "$dir has root-key.pem but no root-cert.pem; not overwriting"
    [ -e "$dir/root-key.pem" ] || die "$dir has root-cert.pem but no root-key.pem; not overwriting"
    find_ca "$dir"
    note "reusing the CA in $dir"
    return 0
  fi

  local now subj ktmp ctmp
  now="$(date -u +%s)"
  # O=<td> as istiod's self-signed root has; an X.520 O is at most 64 chars.
  subj="/CN=zring test root CA"
  [ "${#td}" -gt 64 ] || subj="/O=$td$subj"
  write_config "$work/ca.cnf"
  genkey "$key" "$work/root.key"
  ossl req -new -config "$work/ca.cnf" -key "$work/root.key" -subj "$subj" -out "$work/root.csr"
  # Self-signed through `openssl ca` too, for the backdated notBefore.
  # -preserveDN: the empty policy would otherwise drop every subject field.
  ossl ca -batch -notext -config "$work/ca.cnf" -selfsign -keyfile "$work/root.key" \
    -in "$work/root.csr" -out "$work/root.pem" -rand_serial -preserveDN -extensions root_ext \
    -startdate "$(asn1_of $((now - BACKDATE)))" -enddate "$(asn1_of $((now + days * 86400)))"

  # Key first, certificate last: the certificate's arrival is what says
  # "the CA is complete".
  ktmp="$(stage "$dir/root-key.pem" 600)"; staged+=("$ktmp")
  ctmp="$(stage "$dir/root-cert.pem" 644)"; staged+=("$ctmp")
  cat "$work/root.key" >"$ktmp"
  openssl x509 -in "$work/root.pem" >"$ctmp"
  commit_pair "$ktmp" "$dir/root-key.pem" "$ctmp" "$dir/root-cert.pem"
  staged=()
  note "made a CA in $dir"
}

# --- workload / rotate -------------------------------------------------------------

# The URI SANs of the first certificate in FILE, one a line.
uri_sans() {
  openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null |
    tr ',' '\n' | sed -n 's/^[[:space:]]*URI://p'
}

cmd_issue() {  # cmd_issue workload|rotate ARGS...
  local mode="$1"; shift
  local dir="" ns="" sa="" td="cluster.local" key="" ca_dir=""
  local days="" nb="" na="" expired=0 future=0 no_san=0 mismatched=0
  local -a extra=()
  local san_given=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --ns|--sa|--trust-domain|--key|--ca|--days|--not-before|--not-after|--san)
        [ $# -ge 2 ] || bad "$1 needs a value"
        case "$1" in
          --ns) ns="$2" ;;
          --sa) sa="$2" ;;
          --trust-domain) td="$2" ;;
          --key) key="$2" ;;
          --ca) ca_dir="$2" ;;
          --days) days="$2" ;;
          --not-before) nb="$2" ;;
          --not-after) na="$2" ;;
          --san) check_uri "$2"; extra+=("$2"); san_given=1 ;;
        esac
        shift 2 ;;
      --expired) expired=1; shift ;;
      --not-yet-valid) future=1; shift ;;
      --no-san) no_san=1; san_given=1; shift ;;
      --mismatched-key) mismatched=1; shift ;;
      -*) bad "$mode: unknown option $1" ;;
      *) [ -z "$dir" ] || bad "$mode: one DIR only"; dir="$1"; shift ;;
    esac
  done
  [ -n "$dir" ] || bad "$mode: DIR missing"
  [ -n "$ns" ] || bad "$mode: --ns missing"
  [ -n "$sa" ] || bad "$mode: --sa missing"
  check_td "$td"
  check_name namespace "$ns"
  check_name "service account" "$sa"
  [ -z "$key" ] || [[ "$key" = ec || "$key" = rsa ]] || bad "--key: ec or rsa"
  [ -z "$days" ] || check_days "$days"
  # One way to say the validity, or none (365 days from now).
  local ways=0
  [ -z "$days" ] || ways=$((ways + 1))
  [ -z "$nb$na" ] || ways=$((ways + 1))
  ways=$((ways + expired + future))
  [ "$ways" -le 1 ] ||
    bad "$mode: choose one of --days, --not-before/--not-after, --expired, --not-yet-valid"
  need_openssl

  local id="spiffe://$td/ns/$ns/sa/$sa"
  local wdir="$dir/$td/ns/$ns/sa/$sa"
  local chain="$wdir/cert-chain.pem" keyf="$wdir/key.pem" old_serial=""

  if [ "$mode" = rotate ]; then
    [ -f "$chain" ] || die "rotate: no certificate at $chain (issue one with: $prog workload ...)"
    old_serial="$(openssl x509 -in "$chain" -noout -serial)" || die "rotate: $chain does not parse"
    # Keep what the current certificate is, unless told otherwise.
    if [ -z "$key" ]; then
      if openssl x509 -in "$chain" -noout -text | grep -q 'Public Key Algorithm: rsaEncryption'; then
        key=rsa
      else
        key=ec
      fi
    fi
    if [ "$san_given" = 0 ]; then
      local -a cur=()
      mapfile -t cur < <(uri_sans "$chain")
      no_san=1
      extra=("${cur[@]+"${cur[@]}"}")
    fi
  fi
  key="${key:-ec}"

  # Validity, as epoch seconds.
  local now start end
  now="$(date -u +%s)"
  if [ "$expired" = 1 ]; then        # ended yesterday
    start=$((now - 2 * 86400)); end=$((now - 86400))
  elif [ "$future" = 1 ]; then       # starts tomorrow
    start=$((now + 86400)); end=$((now + 2 * 86400))
  elif [ -n "$nb$na" ]; then
    if [ -n "$nb" ]; then start="$(epoch_of "$nb")"; else start=$((now - BACKDATE)); fi
    if [ -n "$na" ]; then end="$(epoch_of "$na")"; else end=$((start + 365 * 86400)); fi
    [ "$start" -lt "$end" ] || bad "$mode: --not-before must be before --not-after"
  else
    start=$((now - BACKDATE)); end=$((now + ${days:-365} * 86400))
  fi

  # The SANs: the path's identity first (zring takes the first spiffe://
  # URI SAN as the identity), then extras, without repeats.
  local -a sans=()
  [ "$no_san" = 1 ] || sans+=("$id")
  local s t dup
  for s in "${extra[@]+"${extra[@]}"}"; do
    dup=0
    for t in "${sans[@]+"${sans[@]}"}"; do [ "$s" != "$t" ] || dup=1; done
    [ "$dup" = 1 ] || sans+=("$s")
  done

  # Checks done; from here on DIR is ours until exit.
  [ -d "${ca_dir:-$dir}" ] || die "no CA in ${ca_dir:-$dir} (run: $prog ca ${ca_dir:-$dir})"
  lock_dir "$dir"
  find_ca "${ca_dir:-$dir}"
  write_config "$work/ca.cnf"
  {
    echo "[leaf_ext]"
    echo "basicConstraints = critical,CA:FALSE"
    if [ "$key" = rsa ]; then
      echo "keyUsage = critical,digitalSignature,keyEncipherment"
    else
      echo "keyUsage = critical,digitalSignature"
    fi
    echo "extendedKeyUsage = serverAuth,clientAuth"
    echo "subjectKeyIdentifier = hash"
    echo "authorityKeyIdentifier = keyid:always"
    if [ "${#sans[@]}" -gt 0 ]; then
      # Critical because the subject is empty (RFC 5280 4.2.1.6), as in
      # istiod's certificates.
      echo "subjectAltName = critical,@leaf_san"
      echo "[leaf_san]"
      local i=0
      for s in "${sans[@]}"; do echo "URI.$i = $s"; i=$((i + 1)); done
    fi
  } >>"$work/ca.cnf"

  # Empty subject, like istiod's workload certificates. A certificate with
  # no SAN at all gets the identity as CN instead (when it fits in 64
  # characters), so that tests can check it is not taken from there.
  local subj="/"
  if [ "${#sans[@]}" -eq 0 ]; then
    # -subj separates fields with '/', so the ID's own slashes are escaped.
    if [ "${#id}" -le 64 ]; then subj="/CN=${id//\//\\/}"; else subj="/CN=$sa"; fi
  fi

  genkey "$key" "$work/leaf.key"
  ossl req -new -config "$work/ca.cnf" -key "$work/leaf.key" -subj "$subj" -out "$work/leaf.csr"
  local tries=0
  while :; do
    ossl ca -batch -notext -config "$work/ca.cnf" -cert "$ca_cert" -keyfile "$ca_key" \
      -in "$work/leaf.csr" -out "$work/leaf.pem" -rand_serial -preserveDN \
      -extensions leaf_ext -startdate "$(asn1_of "$start")" -enddate "$(asn1_of "$end")"
    # A rotation must change the serial; with 159 random bits a repeat is
    # all but impossible, but it costs nothing to be sure.
    [ "$(openssl x509 -in "$work/leaf.pem" -noout -serial)" = "$old_serial" ] || break
    tries=$((tries + 1))
    [ "$tries" -lt 3 ] || die "could not get a new serial"
  done

  # --mismatched-key: the certificate is fine, key.pem is someone else's.
  if [ "$mismatched" = 1 ]; then
    genkey "$key" "$work/leaf.key"
  fi

  mkdir -p -- "$wdir"
  local ktmp ctmp
  ktmp="$(stage "$keyf" 600)"; staged+=("$ktmp")
  ctmp="$(stage "$chain" 644)"; staged+=("$ctmp")
  cat "$work/leaf.key" >"$ktmp"
  { openssl x509 -in "$work/leaf.pem"; cat "$ca_cert"; } >"$ctmp"
  # Both files are complete before either is renamed. Then key.pem first,
  # cert-chain.pem last: cert-chain.pem's rename is the commit point, the
  # moment the pair is consistent again (docs/security.md, "Rotation").
  commit_pair "$ktmp" "$keyf" "$ctmp" "$chain"
  staged=()

  note "$mode: $id $(openssl x509 -in "$chain" -noout -serial) $(asn1_of "$start") .. $(asn1_of "$end")"
  printf '%s\n' "$wdir"
}

# --- show ------------------------------------------------------------------

# Human-readable date of the first certificate in FILE's FIELD as epoch.
cert_epoch() {  # cert_epoch FILE startdate|enddate
  local v
  v="$(openssl x509 -in "$1" -noout "-$2")"
  date -u -d "${v#*=}" +%s
}

show_cert() {  # show_cert FILE INDEX
  local f="$1" now nb na state
  now="$(date -u +%s)"
  nb="$(cert_epoch "$f" startdate)"
  na="$(cert_epoch "$f" enddate)"
  if [ "$now" -lt "$nb" ]; then state="NOT YET VALID"
  elif [ "$now" -ge "$na" ]; then state="EXPIRED"
  else state="valid now"; fi
  echo "certificate $2:"
  openssl x509 -in "$f" -noout -nameopt RFC2253 -subject -issuer -serial |
    sed 's/^subject=/subject: /; s/^issuer=/issuer: /; s/^serial=/serial: /; s/^/  /'
  printf '  validity: %s .. %s (%s)\n' "$(asn1_of "$nb")" "$(asn1_of "$na")" "$state"
  # The key, and the extensions that matter for the mesh, from -text.
  openssl x509 -in "$f" -noout -text | awk '
    /Public Key Algorithm:/ { sub(/^ */, ""); print "  " $0 }
    /Public-Key:/ { sub(/^ */, ""); print "  " $0 }
    /NIST CURVE:/ { sub(/^ */, ""); print "  " $0 }
    /X509v3 (Subject Alternative Name|Basic Constraints|Key Usage|Extended Key Usage):/ {
      name = $0; sub(/^ */, "", name); getline v; sub(/^ */, "", v); print "  " name " " v }'
  if ! openssl x509 -in "$f" -noout -ext subjectAltName 2>/dev/null | grep -q .; then
    echo "  X509v3 Subject Alternative Name: (none)"
  fi
}

cmd_show() {
  [ $# -eq 1 ] || bad "show: one FILE or workload directory"
  need_openssl
  local target="$1" certs="" keyf="" n i
  if [ -d "$target" ]; then
    certs="$target/cert-chain.pem"; keyf="$target/key.pem"
    [ -f "$certs" ] || die "no cert-chain.pem in $target"
  elif [ -f "$target" ] && grep -q 'PRIVATE KEY-----' "$target"; then
    # A key.pem: show it, and its certificate if it sits beside it.
    keyf="$target"
    [ ! -f "$(dirname -- "$target")/cert-chain.pem" ] || certs="$(dirname -- "$target")/cert-chain.pem"
    echo "key: $target"
    openssl pkey -in "$target" -noout -text_pub | sed -n '1p;/NIST CURVE/p' | sed 's/^ */  /'
  elif [ -f "$target" ]; then
    certs="$target"
  else
    die "no such file: $target"
  fi
  if [ -n "$certs" ]; then
    echo "file: $certs"
    n="$(split_pem "$certs" "$work/show")"
    [ "$n" -gt 0 ] || die "no PEM certificate in $certs"
    for ((i = 0; i < n; i++)); do show_cert "$work/show.$i" "$i"; done
  fi
  if [ -n "$keyf" ] && [ -n "$certs" ]; then
    if [ -f "$keyf" ] && [ -n "$(key_pub "$keyf")" ] && [ "$(key_pub "$keyf")" = "$(cert_pub "$certs")" ]; then
      echo "key.pem matches certificate 0: yes"
    else
      echo "key.pem matches certificate 0: NO"
    fi
  fi
}

# --- main ------------------------------------------------------------------

[ $# -ge 1 ] || { usage >&2; exit 2; }
cmd="$1"; shift
case "$cmd" in
  ca) cmd_ca "$@" ;;
  workload) cmd_issue workload "$@" ;;
  rotate) cmd_issue rotate "$@" ;;
  show) cmd_show "$@" ;;
  help|-h|--help) usage ;;
  *) usage >&2; exit 2 ;;
esac
