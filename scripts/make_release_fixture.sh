#!/usr/bin/env bash
# Makes a database with a released recon binary, with the reports its runs published, for the
# test that a later release migrates it in place and re-renders its past runs unchanged
# (tests/cli/release.rs). Run once per release whose schema is to be kept readable:
#
#   scripts/make_release_fixture.sh target/release/recon fixtures/releases/NAME
#
# Everything is generated from the repository's own fixtures: no bank's file is copied, and the
# statements are not kept (the database holds what the runs read).
set -euo pipefail
bin=$(realpath "$1") out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$out" && mkdir -p "$out"
cd "$out"
mkdir statements
cp "$root/fixtures/demo/2026-11-20.camt053.xml" "$root/fixtures/demo/2026-11-21.camt053.xml" \
  "$root/fixtures/mt940/2026-11-21-german.sta" statements/
"$bin" -q bench-data --topups 30 --transactions 24 --seed 3 --out night >/dev/null
cp night/statement.xml statements/bench.camt053.xml
cp night/statement.csv statements/bench.csv
r() { "$bin" -q "$@" || [ $? = 65 ]; }
r topups import --db recon.sqlite "$root/fixtures/demo/topups.csv"
r topups import --db recon.sqlite night/topups.csv
r run --db recon.sqlite --out reports/1 statements/2026-11-20.camt053.xml
r run --db recon.sqlite --out reports/2 statements/2026-11-21.camt053.xml statements/2026-11-21-german.sta
r run --db recon.sqlite --out reports/3 statements/2026-11-21.camt053.xml
r run --db recon.sqlite --out reports/4 statements/bench.camt053.xml statements/bench.csv
rm -rf night statements
"$bin" --version >VERSION
