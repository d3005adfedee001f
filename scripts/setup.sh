#!/usr/bin/env bash
# Prepare this machine to build, test and benchmark zring.
#
# Idempotent: re-running it installs nothing twice and reuses the cached
# wolfSSL build. What it does:
#   1. installs the Debian packages zring builds, tests and benchmarks with,
#      and the npm packages tests/deploy checks the manifests with (into
#      .cache/npm);
#   2. builds wolfSSL 5.5.4 from Debian's own source package with AES-NI and
#      the Intel assembly enabled, into .cache/wolfssl (git-ignored), which the
#      meson build prefers over the system library. If that build fails, the
#      system libwolfssl is used and a loud warning says so;
#   3. builds tests/interop/rust-hbone (an HBONE client and server on rustls
#      and h2, ztunnel's libraries) offline from Debian's packaged crates into
#      .cache/rust-hbone, for the e2e scenario hbone-rustls.
#
# Environment: ZRING_CACHE overrides the cache folder; ZRING_SKIP_WOLFSSL=1
# skips step 2 (the system wolfSSL is used).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${ZRING_CACHE:-$root/.cache}"
prefix="$cache/wolfssl"

packages=(
  build-essential pkg-config meson ninja-build clang libclang-rt-14-dev openssl
  liburing-dev libwolfssl-dev libcjson-dev libyaml-dev libnghttp2-dev libhttp-parser-dev libcriterion-dev
  libprotobuf-c-dev protobuf-c-compiler
  dpkg-dev autoconf automake libtool
  iproute2 iptables procps psmisc python3 python3-h2 curl
  haproxy iperf3 wrk nginx
  python3-yaml systemd
  protobuf-compiler python3-protobuf python3-grpcio python3-cryptography
)
# Installed without their recommends: prometheus is here for promtool (the
# metrics page must pass `promtool check metrics`), not for node-exporter.
packages_bare=(prometheus)

# tests/deploy validates the Kubernetes manifests and the Dockerfile with npm
# packages (pinned in tests/deploy/package-lock.json), installed into
# $cache/npm. Node.js comes from Debian unless one is installed already.
# The container image build has no tests/deploy and so skips all of this.
deploy_tools="$root/tests/deploy"
if [ -f "$deploy_tools/package-lock.json" ] && ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi

# tests/interop/rust-hbone: Debian's Rust toolchain and the crates ztunnel is
# built on (the image build has no tests/interop and skips this too).
rust_hbone="$root/tests/interop/rust-hbone"
if [ -f "$rust_hbone/Cargo.toml" ]; then
  packages+=(cargo rustc librust-h2-dev librust-tokio-rustls-dev librust-rustls-dev
             librust-rustls-pemfile-dev librust-webpki-dev librust-tokio-dev
             librust-sha2-dev librust-http-dev librust-bytes-dev librust-futures-util-dev)
fi

say() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

install_packages() {
  local missing=() bare=()
  for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
  for p in "${packages_bare[@]}"; do installed "$p" || bare+=("$p"); done
  if [ "${#missing[@]}" -eq 0 ] && [ "${#bare[@]}" -eq 0 ]; then
    say "Debian packages: all present"
    return
  fi
  say "installing: ${missing[*]} ${bare[*]}"
  as_root apt-get update -qq
  # nginx, haproxy and prometheus start services on install; we only want
  # the binaries.
  if [ "${#missing[@]}" -gt 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
  fi
  if [ "${#bare[@]}" -gt 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      -o Dpkg::Options::=--force-confold "${bare[@]}" >/dev/null
  fi
  for svc in nginx haproxy prometheus; do
    as_root systemctl disable --now "$svc" >/dev/null 2>&1 || true
    as_root service "$svc" stop >/dev/null 2>&1 || true
  done
}

# The configure flags of the local wolfSSL. Debian's own (--enable-distro)
# plus AES-NI and Intel assembly, and SP math in x86-64 assembly for P-256
# and RSA (--enable-sp --enable-sp-asm: a full mutual TLS 1.3 handshake
# costs the server 1.1 ms of CPU instead of 2.7); the stamp records them so
# a change rebuilds.
# --enable-ticket-nonce-malloc: rustls (ztunnel) sends TLS 1.3
# NewSessionTicket nonces of 32 bytes; without it wolfSSL takes at most 8
# and fails the connection on the first ticket ("Protocol error").
# LARGE_STATIC_BUFFERS gives each session full-record static I/O buffers:
# without it wolfSSL allocates, zeroes and frees a buffer for every 16 KiB
# record it reads (measured: ~11% of an HBONE server's CPU in ForceZero).
wolfssl_flags=(
  CPPFLAGS=-DLARGE_STATIC_BUFFERS
  --enable-distro --enable-aesni --enable-intelasm --enable-sp --enable-sp-asm
  --enable-tls13 --enable-alpn --enable-sni --enable-ticket-nonce-malloc
  --enable-certgen --enable-certreq --enable-certext --enable-keygen
  --disable-examples --disable-crypttests --disable-shared --enable-static
)

add_deb_src() {
  if grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ ||
     grep -qs '^deb-src' /etc/apt/sources.list; then
    return
  fi
  say "adding a deb-src entry for Debian's wolfssl source package"
  as_root tee /etc/apt/sources.list.d/zring-deb-src.sources >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  as_root apt-get update -qq
}

build_wolfssl() {
  local stamp="$prefix/.zring-stamp" want
  want="5.5.4 ${wolfssl_flags[*]}"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "wolfSSL (AES-NI): cached in $prefix"
    return 0
  fi
  add_deb_src
  local work="$cache/wolfssl-src"
  rm -rf "$work" "$prefix"
  mkdir -p "$work"
  say "fetching Debian's wolfssl source package"
  (cd "$work" && apt-get source -qq wolfssl=5.5.4-* >/dev/null 2>&1 ||
                 apt-get source -qq wolfssl >/dev/null 2>&1)
  local src
  src="$(find "$work" -maxdepth 1 -type d -name 'wolfssl-5.5.4*' | head -n1)"
  [ -n "$src" ] || { say "no wolfssl-5.5.4 source found"; return 1; }
  say "building wolfSSL with AES-NI into $prefix (a few minutes, once)"
  (
    cd "$src"
    ./autogen.sh >"$work/autogen.log" 2>&1
    ./configure --prefix="$prefix" "${wolfssl_flags[@]}" >"$work/configure.log" 2>&1
    make -j"$(nproc)" >"$work/make.log" 2>&1
    make install >"$work/install.log" 2>&1
    # --enable-distro leaves options.h out of the install; we need it.
    install -m 0644 wolfssl/options.h "$prefix/include/wolfssl/options.h"
  ) || { say "wolfSSL build failed; logs in $work"; return 1; }
  grep -q 'define WOLFSSL_AESNI' "$prefix/include/wolfssl/options.h" || {
    say "local wolfSSL has no AES-NI"; return 1; }
  grep -q 'define WOLFSSL_TICKET_NONCE_MALLOC' "$prefix/include/wolfssl/options.h" || {
    say "local wolfSSL cannot take rustls's session tickets"; return 1; }
  echo "$want" >"$stamp"
  rm -rf "$work"
  say "wolfSSL (AES-NI) ready in $prefix"
}

install_deploy_tools() {
  local dir="$cache/npm"
  [ -f "$deploy_tools/package-lock.json" ] || return 0
  # The stamp is written last, so an interrupted install is redone.
  if cmp -s "$deploy_tools/package-lock.json" "$dir/.zring-stamp"; then
    say "npm tools for tests/deploy: cached in $dir"
    return 0
  fi
  say "installing npm tools for tests/deploy into $dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$deploy_tools/package.json" "$deploy_tools/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$deploy_tools/package-lock.json" "$dir/.zring-stamp"
}

build_rust_hbone() {
  [ -f "$rust_hbone/Cargo.toml" ] || return 0
  say "building tests/interop/rust-hbone (offline, Debian's crates; ~2 minutes once)"
  ZRING_CACHE="$cache" "$rust_hbone/build.sh" >/dev/null
}

install_packages
install_deploy_tools
build_rust_hbone
if [ "${ZRING_SKIP_WOLFSSL:-0}" = 1 ]; then
  say "ZRING_SKIP_WOLFSSL=1: using the system wolfSSL"
elif ! build_wolfssl; then
  rm -rf "$prefix"
  cat >&2 <<'WARN'
[setup] ************************************************************
[setup] WARNING: could not build the AES-NI wolfSSL. Falling back to
[setup] Debian's libwolfssl, which has no AES-NI: TLS will be ~30x
[setup] slower, and it fails every tunnel to a rustls (ztunnel) server
[setup] at its first session ticket. See the logs above and re-run
[setup] scripts/setup.sh.
[setup] ************************************************************
WARN
fi
