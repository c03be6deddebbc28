#!/usr/bin/env bash
# Ctrl-C on `focus train --nproc 2`: every rank stops at the same step with a checkpoint, the
# command exits with 130 and says how to resume, and the resumed run (2 processes) finishes.
# The Ctrl-C is a SIGINT to the command's whole process group, as a terminal sends it.
set -uo pipefail
focus=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
common=(char-gpt --set dataset=synthetic --set num_layers=1 --set d_model=32 --set block_size=16 --set eval_every=100000
        --set sample_length=0 --set checkpoint_every=100000 --run-dir "$work/run")
setsid "$focus" train "${common[@]}" --set steps=100000 --nproc 2 >"$work/out.log" 2>&1 &
pid=$!
for _ in $(seq 600); do  # until training runs (a train line in metrics.jsonl), at most 60 s
  grep -q '"train"' "$work/run/metrics.jsonl" 2>/dev/null && break
  sleep 0.1
done
kill -INT -- "-$pid"
for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
wait "$pid"; status=$?
cat "$work/out.log"
fail() { echo "FAILED: $*"; exit 1; }
[ "$status" -eq 130 ] || fail "exit status $status, expected 130"
[ -f "$work/run/checkpoint.safetensors" ] || fail "no checkpoint after the interrupt"
grep -q -- "--resume --run-dir $work/run --nproc 2" "$work/out.log" || fail "no resume hint with --nproc 2"
step=$(grep -o '"step":[0-9]*' "$work/run/metrics.jsonl" | tail -1 | cut -d: -f2)
"$focus" train "${common[@]}" --resume --set steps=$((step + 20)) --nproc 2 -q >"$work/resume.log" 2>&1 \
  || { cat "$work/resume.log"; fail "the resumed run failed"; }
grep -q '"steps"' "$work/run/report.json" || fail "the resumed run wrote no report"
echo "interrupted after step >= $step with a checkpoint; resumed and finished at step $((step + 20))"
