#!/usr/bin/env bash
# nproc_cannot_start.sh FOCUS WORK: `focus train --nproc 2` with an mpirun on the PATH that
# cannot be executed fails with status 1 and says why (the launcher forks and execs mpirun,
# so that mpirun can be told to end the job when the launcher dies; an exec that fails must
# still be reported, not end as a silent exit of the child).
set -uo pipefail
focus=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
printf 'not a program' >"$work/mpirun" && chmod +x "$work/mpirun"
out=$(PATH="$work:$PATH" "$focus" train char-gpt --set dataset=synthetic --nproc 2 --run-dir "$work/run" 2>&1)
status=$?
echo "$out"
[ "$status" -eq 1 ] || { echo "FAILED: exit status $status, expected 1"; exit 1; }
echo "$out" | grep -q "focus: error: \[train\] --nproc: cannot start $work/mpirun: Exec format error" ||
  { echo "FAILED: no clear error"; exit 1; }
