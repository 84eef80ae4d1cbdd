#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang-14, ASan + UBSan, CPU only) in BUILD (default
# build-fuzz) and runs each for SECONDS (default 60) from its seeds; fails on any crash, leak,
# sanitizer report, or an input over 2 GB of memory or 10 s. Findings land in BUILD/findings/.
#
#   bash tests/fuzz/run.sh [SECONDS] [BUILD]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
build=${2:-build-fuzz}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
  -DATTNSCOPE_FUZZ=ON -DATTNSCOPE_CUDA=OFF -DATTNSCOPE_BUILD_GUI=OFF -DATTNSCOPE_BUILD_TESTS=OFF \
  -DATTNSCOPE_NATIVE=OFF -DCMAKE_CXX_FLAGS=-Wno-pass-failed >/dev/null
cmake --build "$build" --target fuzz_safetensors fuzz_wav fuzz_image
declare -A seeds=(
  [safetensors]="tests/data/safetensors tests/data/malformed"
  [wav]="tests/fuzz/corpus/wav"
  [image]="tests/fuzz/corpus/image"
)
status=0
for h in safetensors wav image; do
  work="$build/corpus/$h" findings="$build/findings/$h"
  mkdir -p "$work" "$findings"
  echo "fuzz_$h: ${secs} s from ${seeds[$h]}"
  # shellcheck disable=SC2086  # the seed folders are separate arguments
  if ! "$build/tests/fuzz/fuzz_$h" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 -artifact_prefix="$findings/" "$work" ${seeds[$h]} \
      >"$build/fuzz_$h.log" 2>&1; then
    echo "FAIL: fuzz_$h found a problem; the input is in $findings/, the report in $build/fuzz_$h.log"
    grep -E "ERROR|SUMMARY|==[0-9]+==" "$build/fuzz_$h.log" | head -20 || true
    status=1
  fi
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)" \
    "$build/fuzz_$h.log" | sed "s/^/  fuzz_$h /" || true
done
exit $status
