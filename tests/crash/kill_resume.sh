#!/usr/bin/env bash
# kill_resume.sh FOCUS WORK [NPROC]: `focus train` killed with SIGKILL, then resumed, ends
# exactly as a run that was never interrupted: byte-identical checkpoint (weights, optimizer,
# schedule, RNG state), the same metrics.jsonl (but for wall-clock times) and report, and no
# temporary file left (compare_runs.py).
#
# One process (NPROC unset): char-gpt with dropout is killed
#   1. before its first checkpoint: --resume says there is nothing to resume, a new run starts;
#   2. between two checkpoints: --resume continues from the last one;
#   3. while it writes a checkpoint (FOCUS_TEST_STOP_IN_CHECKPOINT stops it after 4 KiB of the
#      temporary file): the previous checkpoint is left byte for byte;
# and is then resumed to the end.
# NPROC=2 (`--nproc 2`, under mpirun): rank 1 is killed between two checkpoints, then the
# launcher (the `focus` command itself), then rank 0, which writes the run directory, while
# it writes a checkpoint; each time the whole job must end (no process left behind), and the
# resumed run ends as the uninterrupted --nproc 2 run.
set -uo pipefail
focus=$1 work=$2 nproc=${3:-1}
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAILED: $*"; exit 1; }

# 300 steps, checkpoints at 100 and 200 (and at the end); dropout, so the resumed run must
# restore the generator behind it. One thread: a step takes 10 ms or more, so the kills below
# have 70 steps or more (most of a second) of margin.
args=(char-gpt -q --set dataset=synthetic --set num_layers=2 --set d_model=64 --set block_size=64 --set dropout=0.1
      --set eval_every=50 --set eval_batches=2 --set sample_length=0 --set steps=300 --set checkpoint_every=100
      --set threads=1)
if [ "$nproc" -gt 1 ]; then
  args+=(--set batch_size=8 --nproc "$nproc")
else
  args+=(--set batch_size=16)
fi
run=$work/run

# The newest "step" of a split in a run's metrics.jsonl (0 when none).
last_step() { { grep -o "\"split\":\"$2\",\"step\":[0-9]*" "$1/metrics.jsonl" 2>/dev/null || true; } |
              tail -1 | grep -o '[0-9]*$' || echo 0; }
# Waits (at most 120 s) until the command succeeds; fails the test if the run ended first.
wait_until() {
  local pid=$1; shift
  for _ in $(seq 1200); do
    "$@" && return 0
    kill -0 "$pid" 2>/dev/null || fail "the run ended before: $*"
    sleep 0.1
  done
  fail "timed out waiting for: $*"
}
# The processes of this test's run (the launcher, mpirun's ranks): their command line names $run.
run_pids() {
  local p
  for p in /proc/[0-9]*; do
    tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q -- "--run-dir $run " && echo "${p#/proc/}"
  done
  return 0
}
# The run's process of the given rank (OMPI_COMM_WORLD_RANK), or nothing.
rank_pid() {
  local p
  for p in $(run_pids); do
    tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -qx "OMPI_COMM_WORLD_RANK=$1" && { echo "$p"; return 0; }
  done
  return 0
}
# The run's process that is stopped (state T), or nothing.
stopped_pid() {
  local p
  for p in $(run_pids); do
    [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" = T ] && { echo "$p"; return 0; }
  done
  return 0
}
has_stopped() { [ -n "$(stopped_pid)" ]; }
has_rank() { [ -n "$(rank_pid "$1")" ]; }
trained_past() { [ "$(last_step "$run" train)" -ge "$1" ]; }
resumed_in() { grep -q "resuming char-gpt from" "$1"; }
checkpointed() { [ -f "$run/checkpoint.safetensors" ]; }
# Waits for the launched command (pid $1) to end; its exit status in $status. The whole job
# must end: no process of the run may be left.
wait_end() {
  for _ in $(seq 600); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$1" 2>/dev/null && fail "the run did not end within 60 s of the kill"
  { wait "$1"; status=$?; } 2>/dev/null  # (without bash's "Killed" notice)
  for _ in $(seq 200); do [ -z "$(run_pids)" ] && return 0; sleep 0.1; done
  fail "processes of the run are left 30 s after it ended: $(run_pids)"
}
# The checkpoint step a resumed run said it resumes from.
resumed_from() { grep -o "resuming char-gpt from .* at step [0-9]*" "$1" | head -1 | grep -o '[0-9]*$'; }

start=$SECONDS
"$focus" train "${args[@]}" --run-dir "$work/ref" >"$work/ref.log" 2>&1 || { cat "$work/ref.log"; fail "the uninterrupted run failed"; }
echo "uninterrupted run: $((SECONDS - start)) s"

if [ "$nproc" -eq 1 ]; then
  # 1. Killed before the first checkpoint (as soon as it logs step 10).
  "$focus" train "${args[@]}" --run-dir "$run" >"$work/1.log" 2>&1 &
  pid=$!
  wait_until "$pid" trained_past 10
  kill -KILL "$pid"
  wait_end "$pid"
  [ "$status" -eq 137 ] || fail "killed before the first checkpoint: exit status $status, expected 137"
  checkpointed && fail "the kill came after the first checkpoint (step 100): the machine is too slow for this test"
  "$focus" train "${args[@]}" --resume --run-dir "$run" >"$work/1r.log" 2>&1 && fail "--resume without a checkpoint succeeded"
  grep -q "there is no checkpoint to resume in $run" "$work/1r.log" || { cat "$work/1r.log"; fail "--resume without a checkpoint: no clear error"; }
  echo "1. killed at step $(last_step "$run" train) (no checkpoint yet): --resume says there is none; a new run starts"

  # 2. The same command again (nothing to resume), killed between the checkpoints of steps 100 and 200.
  "$focus" train "${args[@]}" --run-dir "$run" >"$work/2.log" 2>&1 &
  pid=$!
  wait_until "$pid" checkpointed
  wait_until "$pid" trained_past 130
  kill -KILL "$pid"
  wait_end "$pid"
  [ "$status" -eq 137 ] || fail "killed between checkpoints: exit status $status, expected 137"
  echo "2. killed at step $(last_step "$run" train) (between checkpoints)"
else
  # 2. Rank 1 killed between the checkpoints of steps 100 and 200: the job ends.
  "$focus" train "${args[@]}" --run-dir "$run" >"$work/2.log" 2>&1 &
  pid=$!
  wait_until "$pid" checkpointed
  wait_until "$pid" trained_past 130
  wait_until "$pid" has_rank 1
  kill -KILL "$(rank_pid 1)"
  wait_end "$pid"
  [ "$status" -ne 0 ] || { cat "$work/2.log"; fail "rank 1 was killed, yet the command exited with 0"; }
  grep -q "rank 1 .* exited on signal 9" "$work/2.log" || { cat "$work/2.log"; fail "mpirun did not say that rank 1 was killed"; }
  echo "2. rank 1 killed at step $(last_step "$run" train) (between checkpoints): the job ended with status $status"

  # 2b. Resumed, and the launcher (`focus train --nproc 2` itself) killed: mpirun and the ranks
  # must not train on, orphaned, into the run directory.
  "$focus" train "${args[@]}" --resume --run-dir "$run" >"$work/2b.log" 2>&1 &
  pid=$!
  wait_until "$pid" resumed_in "$work/2b.log"  # (metrics.jsonl is cut back to step 100 by then)
  wait_until "$pid" trained_past 120
  kill -KILL "$pid"
  wait_end "$pid"
  [ "$(resumed_from "$work/2b.log")" = 100 ] || { cat "$work/2b.log"; fail "the resumed run did not start from step 100"; }
  echo "2b. resumed, the launcher killed at step $(last_step "$run" train): mpirun and the ranks ended with it"
fi

# 3. Resumed (from step 100), and killed while it writes the checkpoint of step 200: the hook
# stops the writer after 4096 bytes of the temporary file.
FOCUS_TEST_STOP_IN_CHECKPOINT=200:4096 "$focus" train "${args[@]}" --resume --run-dir "$run" >"$work/3.log" 2>&1 &
pid=$!
wait_until "$pid" has_stopped
writer=$(stopped_pid)
[ "$(resumed_from "$work/3.log")" = 100 ] || { cat "$work/3.log"; fail "the resumed run did not start from the checkpoint of step 100"; }
cp "$run/checkpoint.safetensors" "$work/previous.safetensors"
tmp=$(ls -A "$run" | grep '^\.checkpoint\.safetensors\.tmp\.' || true)
[ "$(echo "$tmp" | wc -w)" -eq 1 ] || fail "expected one temporary checkpoint file while it is written, found: '$tmp'"
[ "$(stat -c %s "$run/$tmp")" -eq 4096 ] || fail "the temporary checkpoint holds $(stat -c %s "$run/$tmp") bytes, not 4096"
kill -KILL "$writer"
wait_end "$pid"
[ "$status" -ne 0 ] || fail "killed while writing a checkpoint, yet the command exited with 0"
cmp "$run/checkpoint.safetensors" "$work/previous.safetensors" || fail "the previous checkpoint changed"
echo "3. killed at step 200 with 4096 bytes of the checkpoint written (exit status $status): the previous checkpoint is intact"

# 4. Resumed to the end.
"$focus" train "${args[@]}" --resume --run-dir "$run" >"$work/4.log" 2>&1 || { cat "$work/4.log"; fail "the last resume failed"; }
[ "$(resumed_from "$work/4.log")" = 100 ] || { cat "$work/4.log"; fail "the last resume did not start from step 100"; }
grep -q "removed $run/$tmp, left by an interrupted write" "$work/4.log" ||
  { cat "$work/4.log"; fail "the resume did not say that it removed the half-written $tmp"; }
/usr/bin/python3 "$here/compare_runs.py" "$work/ref" "$run" || exit 1
echo "4. resumed from step 100 to the end: $((SECONDS - start)) s in all"
