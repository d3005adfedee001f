#!/usr/bin/env bash
# Build zr-hbone (tests/interop/rust-hbone) offline from Debian's packaged
# crates and print the binary's path. Cargo's own freshness check makes a
# second run cost a fraction of a second; the first takes about two minutes
# on two cores (scripts/setup.sh runs it, so tests find it built).
#
# Debian's cargo and rustc (/usr/bin), not a rustup toolchain: the crates in
# /usr/share/cargo/registry are the versions Debian 12 tested with its own
# compiler. Environment: ZRING_CACHE (default <source root>/.cache) holds the
# target folder, rust-hbone/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
target="${ZRING_CACHE:-$root/.cache}/rust-hbone"
cargo=/usr/bin/cargo
[ -x "$cargo" ] || { echo "build.sh: $cargo not found (Debian: apt-get install cargo)" >&2; exit 1; }
[ -d /usr/share/cargo/registry ] ||
  { echo "build.sh: /usr/share/cargo/registry missing (scripts/setup.sh installs the crates)" >&2; exit 1; }
mkdir -p "$target"
# .cargo/config.toml (source replacement, offline) is read from the
# working directory: build from the crate's own folder.
cd "$here"
RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$target" "$cargo" build --offline --release --quiet >&2
echo "$target/release/zr-hbone"
