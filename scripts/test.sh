#!/usr/bin/env bash
# Set up, build and run the whole test suite: unit and e2e tests on a normal
# build, then again on an ASan+UBSan build. This is the README's test command
# and what CI runs (.ci/run).
#
# e2e tests need root (network namespaces, iptables). Outside CI they skip
# (exit 77) without it; with CI=true they fail instead.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

"$root/scripts/setup.sh"

build() {  # build DIR [meson options...]
  local dir="$1"; shift
  if [ -f "$dir/build.ninja" ]; then
    meson configure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@"
  fi
  meson compile -C "$dir"
}

run_suites() {  # run_suites DIR
  meson test -C "$1" --print-errorlogs --suite unit --suite e2e
}

echo "== release build: unit + e2e =="
build build
run_suites build

echo "== ASan + UBSan build: unit + e2e =="
build build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
# Leaks at exit fail the run; UBSan findings abort.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
run_suites build-asan

echo "== fuzzing (config parser: JSON and YAML; HBONE requests) =="
ZRING_FUZZ_SECONDS="${ZRING_FUZZ_SECONDS:-30}" "$root/scripts/fuzz.sh"

echo "== all tests passed =="
