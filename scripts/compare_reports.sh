#!/usr/bin/env bash
# Runs the same generated night with two recon binaries and compares every report file,
# apart from what differs by nature (run id, timestamps, paths). Used to show that a change
# to the code leaves a night's outputs as they were.
#
#   scripts/compare_reports.sh OLD_BINARY NEW_BINARY [TRANSACTIONS] [SEED]
#
# e.g. build the old commit in a worktree, then
#   scripts/compare_reports.sh /tmp/recon-old target/release/recon 100000
set -euo pipefail
old=$1 new=$2 n=${3:-10000} seed=${4:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$new" bench-data --topups $((n * 6 / 5)) --transactions "$n" --seed "$seed" --out "$work/night" >/dev/null

# Masks what a run stamps: uuid v7 run ids and times. Both run in the same directory, so
# paths agree.
mask() {
  sed -E -e 's/[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}/RUN-ID/g' \
    -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z/TIME/g' \
    -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}(:[0-9]{2})? UTC/TIME/g'
}

for side in old new; do
  bin=${!side}
  rm -rf "$work/run" && mkdir -p "$work/run"
  cp "$work/night/topups.csv" "$work/night/statement.xml" "$work/run/"
  "$bin" -q topups import --db "$work/run/db.sqlite" "$work/run/topups.csv" >/dev/null
  "$bin" -q run --db "$work/run/db.sqlite" --out "$work/run/report" "$work/run/statement.xml" >/dev/null || true
  mv "$work/run/report" "$work/$side"
  (cd "$work/$side" && mkdir -p xlsx && cd xlsx && unzip -q -o ../report.xlsx)
done

status=0
for f in matched.csv unmatched.csv ignored.csv open_topups.csv summary.json report.html \
  $(cd "$work/old/xlsx" && find . -name '*.xml' | sort); do
  case $f in ./docProps/*) continue ;; esac
  for side in old new; do
    path="$work/$side/$f"
    [[ $f == ./* ]] && path="$work/$side/xlsx/${f#./}"
    mask <"$path" >"$work/$side.masked"
  done
  if cmp -s "$work/old.masked" "$work/new.masked"; then
    echo "same       $f"
  else
    echo "DIFFERENT  $f"
    diff "$work/old.masked" "$work/new.masked" | head -5
    status=1
  fi
done
exit $status
