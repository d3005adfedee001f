#!/usr/bin/env bash
# Fuzz zring's parsers: build the libFuzzer targets with clang, ASan and UBSan
# in build-fuzz/, then run each for a while:
#   fuzz_config   the workload config parser, seeded from tests/data/config
#                 and examples/;
#   fuzz_connect  inbound HBONE request handling (nghttp2 + CONNECT parser).
#
#   scripts/fuzz.sh [SECONDS]      per target; default 60, or $ZRING_FUZZ_SECONDS
#
# Exit 0 when nothing was found. Otherwise libFuzzer's exit status, with the
# input that failed in build-fuzz/fuzz-artifacts/ (replay it with
# build-fuzz/tests/fuzz/fuzz_config FILE). New interesting inputs accumulate
# in build-fuzz/fuzz-corpus/ across runs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-${ZRING_FUZZ_SECONDS:-60}}"
dir="$root/build-fuzz"

if ! command -v clang >/dev/null; then
  echo "fuzz: clang is needed (apt-get install clang)" >&2
  exit 1
fi

opts=(-Dfuzz=true -Dtests=false -Db_sanitize=address,undefined -Db_lundef=false
      -Dbuildtype=debugoptimized)
if [ -f "$dir/build.ninja" ]; then
  meson configure "$dir" "${opts[@]}" >/dev/null
else
  CC=clang meson setup "$dir" "${opts[@]}" >/dev/null
fi
meson compile -C "$dir" fuzz_config fuzz_connect

mkdir -p "$dir/fuzz-corpus" "$dir/fuzz-artifacts"
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"

echo "== fuzzing inbound HBONE requests for ${seconds}s =="
mkdir -p "$dir/fuzz-corpus-connect"
"$dir/tests/fuzz/fuzz_connect" \
  -max_total_time="$seconds" \
  -max_len=4096 \
  -timeout=10 \
  -rss_limit_mb=2048 \
  -artifact_prefix="$dir/fuzz-artifacts/" \
  -print_final_stats=1 \
  "$dir/fuzz-corpus-connect"

echo "== fuzzing the config parser for ${seconds}s =="
# The first directory is the writable corpus; the others are read-only seeds.
exec "$dir/tests/fuzz/fuzz_config" \
  -max_total_time="$seconds" \
  -max_len=65536 \
  -timeout=10 \
  -rss_limit_mb=2048 \
  -dict="$root/tests/fuzz/config.dict" \
  -artifact_prefix="$dir/fuzz-artifacts/" \
  -print_final_stats=1 \
  "$dir/fuzz-corpus" \
  "$root/tests/data/config/good" \
  "$root/tests/data/config/bad" \
  "$root/examples"
