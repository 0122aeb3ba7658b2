#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600), seeded from the fixtures.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); works on the stable toolchain via RUSTC_BOOTSTRAP.
set -uo pipefail
cd "$(dirname "$0")"
seconds="${1:-600}"
mkdir -p corpus/camt corpus/csv corpus/reference
cp ../fixtures/camt/*.xml ../fixtures/demo/*.xml corpus/camt/
cp ../fixtures/csv/*.csv ../fixtures/mt940/*.sta ../fixtures/demo/topups.csv corpus/csv/
printf 'topup 1AB4FEF9A0974C6F9345647025D5FDE6' > corpus/reference/seed1
printf 'EREF+NOTPROVIDEDSVWZ+TOPUP1ab4fef9-a097-4c6f-93\n45-647025d5fde6ABWA+x' > corpus/reference/seed2
status=0
for target in camt csv reference; do
  echo "== fuzzing $target for ${seconds}s"
  RUSTC_BOOTSTRAP=1 cargo fuzz build --release "$target" >/dev/null 2>&1 || { echo "build failed"; status=1; continue; }
  RUSTC_BOOTSTRAP=1 cargo fuzz run --release "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 > "fuzz-$target.log" 2>&1 || status=1
  grep -E "^Done|ERROR|panicked|SUMMARY|crash-|oom-|timeout-" "fuzz-$target.log" | head -n 20
done
exit "$status"

