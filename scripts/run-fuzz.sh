#!/usr/bin/env bash
# Runs each libFuzzer target for a bounded time: scripts/run-fuzz.sh BUILD_DIR SECONDS TARGET...
# New coverage goes to BUILD_DIR/fuzz-corpus/<target> (the committed seeds in tests/fuzz/corpus/<target>
# are only read). A crash or a violated property leaves BUILD_DIR/fuzz-crashes/<target>-crash-*: commit it
# to tests/fuzz/corpus/<target>/ with the fix, so the normal build replays it as a regression test.
set -euo pipefail
build_dir=$1
seconds=$2
shift 2
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
failed=()
for target in "$@"; do
  work="$build_dir/fuzz-corpus/$target"
  crashes="$build_dir/fuzz-crashes"
  mkdir -p "$work" "$crashes"
  echo "fuzz: $target for ${seconds}s"
  # -rss_limit_mb: ASan needs headroom; -timeout: a single input taking >10 s is a hang worth reporting.
  if ! "$build_dir/tests/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix="$crashes/$target-" "$work" "$repo/tests/fuzz/corpus/$target" \
       > "$build_dir/fuzz-$target.log" 2>&1; then
    failed+=("$target")
    tail -n 60 "$build_dir/fuzz-$target.log"
  fi
  grep -E "^stat::number_of_executed_units|^stat::new_units_added|^#[0-9]+.*DONE" "$build_dir/fuzz-$target.log" || true
done
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $build_dir/fuzz-crashes/)" >&2
  exit 1
fi
echo "fuzz: all targets ran ${seconds}s without a finding"
