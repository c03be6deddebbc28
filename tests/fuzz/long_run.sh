#!/usr/bin/env bash
# Long fuzzing runs (docs/RELIABILITY.md, "Fuzzing"): every target named runs in the
# background until SECONDS have passed, from its seeds plus what earlier runs in OUT found.
# A finding (crash, leak, timeout, out-of-memory) is saved as OUT/TARGET/crash-... (leak-,
# timeout-, oom-) and the target starts again, so one finding does not end the run.
#
#   tests/fuzz/long_run.sh run BUILD_DIR OUT SECONDS TARGET...   # e.g. build/fuzz build/longrun 3600 idx vocab
#   tests/fuzz/long_run.sh summary OUT                          # executions, cov, ft, corpus, findings
#
# The targets are copied to OUT/bin first, so rebuilding meanwhile does not disturb them (copy
# a rebuilt one there to use it from its next start). Run it under `nice -n 19`.
set -euo pipefail
cmd=${1:?usage: long_run.sh run BUILD_DIR OUT SECONDS TARGET... | summary OUT}
src=$(cd "$(dirname "$0")" && pwd)
if [ "$cmd" = summary ]; then
  out=${2:?OUT}
  printf '%-20s %8s %12s %7s %7s %12s %8s\n' target wall_s executions cov ft corpus findings
  for d in "$out"/*/; do
    t=$(basename "$d")
    [ "$t" = bin ] && continue
    [ -f "$d/log" ] || continue
    # Per start: the final count when it has ended, else the latest "#N" progress line.
    execs=$(awk '/^=== start/ {n += (st ? st : last); st = 0; last = 0}
                 /^#[0-9]+/ {last = substr($1, 2) + 0}
                 /stat::number_of_executed_units/ {st = $2}
                 END {print n + (st ? st : last)}' "$d/log")
    last=$(grep -E '^#[0-9]+.*cov: ' "$d/log" | tail -1 || true)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9A-Za-z]+).*/\1/p' <<<"$last")
    wall=$(( $(cat "$d/end" 2>/dev/null || date +%s) - $(cat "$d/start") ))
    findings=$(find "$d" -maxdepth 1 -regex '.*/\(crash\|leak\|timeout\|oom\)-.*' | wc -l)
    printf '%-20s %8s %12s %7s %7s %12s %8s\n' "$t" "$wall" "$execs" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$findings"
  done
  exit 0
fi
[ "$cmd" = run ] || { echo "unknown command $cmd" >&2; exit 2; }
build=${2:?BUILD_DIR}; out=${3:?OUT}; seconds=${4:?SECONDS}; shift 4
mkdir -p "$out/bin"
deadline=$(( $(date +%s) + seconds ))
for t in "$@"; do
  cp "$build/tests/fuzz/fuzz_$t" "$out/bin/"
  mkdir -p "$out/$t/corpus"
  date +%s > "$out/$t/start"
  (
    cd "$out/$t"
    while :; do
      left=$(( deadline - $(date +%s) ))
      ((left > 5)) || break
      echo "=== start $(date -u +%FT%TZ), ${left}s left" >> log
      "../bin/fuzz_$t" corpus "$src/corpus/$t" -dict="$src/$t.dict" -max_total_time="$left" -timeout=25 \
        -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$PWD/" >> log 2>&1 || true
    done
    date +%s > end
  ) &
done
wait
