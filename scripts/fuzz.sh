#!/usr/bin/env bash
# Fuzz zring's parsers: build the libFuzzer targets with clang, ASan and UBSan
# in build-fuzz/, then run each for a while:
#   fuzz_connect      inbound HBONE request handling (nghttp2 + CONNECT parser);
#   fuzz_config       the workload config parser (JSON, or YAML by content),
#                     seeded from tests/data/config and examples/;
#   fuzz_config_yaml  the same through the YAML reader (libyaml), same seeds.
#
#   scripts/fuzz.sh [SECONDS]      default 60, or $ZRING_FUZZ_SECONDS: that long
#                                  for fuzz_connect, half of it for each config
#                                  target (the total is 2 x SECONDS, as before
#                                  the YAML target)
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
meson compile -C "$dir" fuzz_config fuzz_config_yaml fuzz_connect
half=$(((seconds + 1) / 2))

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

# The first directory is the writable corpus; the others are read-only seeds.
seeds=("$root/tests/data/config/good" "$root/tests/data/config/bad"
       "$root/tests/data/config/warn" "$root/examples")

echo "== fuzzing the config parser for ${half}s =="
"$dir/tests/fuzz/fuzz_config" \
  -max_total_time="$half" \
  -max_len=65536 \
  -timeout=10 \
  -rss_limit_mb=2048 \
  -dict="$root/tests/fuzz/config.dict" \
  -artifact_prefix="$dir/fuzz-artifacts/" \
  -print_final_stats=1 \
  "$dir/fuzz-corpus" "${seeds[@]}"

echo "== fuzzing the config parser's YAML reader for ${half}s =="
mkdir -p "$dir/fuzz-corpus-yaml"
exec "$dir/tests/fuzz/fuzz_config_yaml" \
  -max_total_time="$half" \
  -max_len=65536 \
  -timeout=10 \
  -rss_limit_mb=2048 \
  -dict="$root/tests/fuzz/config_yaml.dict" \
  -artifact_prefix="$dir/fuzz-artifacts/" \
  -print_final_stats=1 \
  "$dir/fuzz-corpus-yaml" "${seeds[@]}"
