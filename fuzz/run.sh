#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600), JOBS at a time (default 2), on
# the nightly toolchain, and prints one summary line per target; fails if any target
# crashed, leaked, ran out of memory or timed out. New inputs go to corpus/<target>/
# (with FUZZ_SCRATCH=1 to target/scratch-corpus/<target>/, the committed corpus only
# read); crashes to artifacts/<target>/. Needs `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
jobs=${JOBS:-2}
logs=logs
[ "${FUZZ_SCRATCH:-}" = 1 ] && logs=target/scratch-logs
mkdir -p "$logs"
cargo +nightly fuzz build -O >/dev/null
targets=$(cargo +nightly fuzz list)
for t in $targets; do
  if [ "${FUZZ_SCRATCH:-}" = 1 ]; then
    mkdir -p "target/scratch-corpus/$t"
    echo "target/scratch-corpus/$t corpus/$t"
  else
    echo "corpus/$t"
  fi > "$logs/$t.dirs"
done
status=0
printf '%s\n' $targets | xargs -P "$jobs" -I{} sh -c \
  "cargo +nightly fuzz run -O {} \$(cat $logs/{}.dirs) -- -max_total_time=$seconds -timeout=10 \
     -rss_limit_mb=2048 -print_final_stats=1 > $logs/{}.log 2>&1" || status=1
for t in $targets; do
  line=$(grep -E '^#[0-9]+.*(DONE|cov:)' "$logs/$t.log" | tail -1 || true)
  runs=$(grep -E 'stat::number_of_executed_units' "$logs/$t.log" | awk '{print $2}' || true)
  crashes=$(ls "artifacts/$t" 2>/dev/null | wc -l)
  printf '%-20s executions %-10s crashes %s  %s\n' "$t" "${runs:-?}" "$crashes" "$line"
  [ "$crashes" = 0 ] || status=1
done
exit $status
