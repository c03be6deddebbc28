#!/usr/bin/env bash
# conditions.sh FOCUS WORK disk-full|read-only: a run directory that cannot be written fails
# `focus train --resume` with a clear error (it names the file and the system's reason), the
# previous checkpoint stays byte for byte, no temporary file is left, and once the condition
# is gone the same --resume ends exactly as an uninterrupted run (compare_runs.py).
#
# Every method this machine allows is used, and at least one must be (no silent skip):
#   disk-full: a 2 MiB tmpfs filled up (root, where mount works): ENOSPC;
#              RLIMIT_FSIZE (`ulimit -f`, with SIGXFSZ ignored): EFBIG, works everywhere.
#              Each with room for the small files but not the checkpoint (the run trains to
#              its end and fails saving it), then with no room at all (it fails at once).
#   read-only: a read-only bind mount of the run directory (root, where mount works): EROFS;
#              a run directory without write permission (chmod a-w), for a user that is not
#              root, or for root via setpriv to nobody: EACCES (root ignores the permission);
#              where neither works, a file size limit of 0 (every write fails: EFBIG).
set -uo pipefail
focus=$1 work=$2 what=$3
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAILED: $*"; exit 1; }
mounts=()
cleanup() {
  local m
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null; done
  [ -d "$work" ] && chmod -R u+w "$work" 2>/dev/null
  return 0
}
trap cleanup EXIT
# Leftovers of an earlier, interrupted try.
for m in $(awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts 2>/dev/null | sort -r); do umount "$m"; done
[ -d "$work" ] && chmod -R u+w "$work"
rm -rf "$work" && mkdir -p "$work" || fail "cannot make $work"

# A constant learning rate: 20 steps continued to 40 (--resume --set steps=40) are then the
# uninterrupted run of 40 steps. Dropout: the generator behind it must be restored too.
args=(char-gpt -q --set dataset=synthetic --set num_layers=1 --set d_model=32 --set block_size=32 --set batch_size=8
      --set dropout=0.1 --set warmup_steps=0 --set lr=1e-3 --set min_lr=1e-3 --set eval_every=10 --set eval_batches=2
      --set sample_length=0 --set threads=1)
"$focus" train "${args[@]}" --set steps=40 --run-dir "$work/ref" >"$work/ref.log" 2>&1 ||
  { cat "$work/ref.log"; fail "the uninterrupted run failed"; }

temporaries() { ls -A "$1" | grep '\.tmp' || true; }

# Logs and copies go to $work/logs (not beside a run on a full disk), named after the method.
mkdir -p "$work/logs"
log_of() { echo "$work/logs/$(basename "$(dirname "$1")")${2:+.$2}" | tr ' ' _; }
# Trains 20 steps into a run directory and keeps a copy of its checkpoint.
trained_20() {
  local run=$1 log
  log=$(log_of "$run" first.log)
  "$focus" train "${args[@]}" --set steps=20 --run-dir "$run" >"$log" 2>&1 || { cat "$log"; fail "training 20 steps into $run failed"; }
  cp "$run/checkpoint.safetensors" "$(log_of "$run" before.safetensors)"
}
# expect_failure LABEL RUN_DIR REASON_REGEX WHERE_REGEX COMMAND...: COMMAND (a resume) must
# fail with exit status 1 and "focus: error:", naming a file in RUN_DIR (matching WHERE_REGEX)
# and the reason; the checkpoint must be unchanged and no temporary file left.
expect_failure() {
  local label=$1 run=$2 reason=$3 where=$4; shift 4
  local log
  log=$(log_of "$run" "$label.log")
  "$@" 2>&1 | cat >"$log"  # through a pipe: RLIMIT_FSIZE must not stop the error message itself
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 1 ] || { cat "$log"; fail "$label: exit status $rc, expected 1"; }
  local msg
  msg=$(grep "focus: error:" "$log") || { cat "$log"; fail "$label: no 'focus: error:' line"; }
  echo "$msg" | grep -Eq -- "$run/$where" || fail "$label: the error does not name $run/$where: $msg"
  echo "$msg" | grep -Eq -- "$reason" || fail "$label: the error does not give the reason ($reason): $msg"
  cmp -s "$run/checkpoint.safetensors" "$(log_of "$run" before.safetensors)" || fail "$label: the previous checkpoint changed"
  [ -z "$(temporaries "$run")" ] || fail "$label: temporary files left: $(temporaries "$run")"
  echo "  $label: $msg"
}
resume_to_end() {
  local run=$1 log
  log=$(log_of "$run" end.log)
  "$focus" train "${args[@]}" --resume --set steps=40 --run-dir "$run" >"$log" 2>&1 ||
    { cat "$log"; fail "the resume after the condition was removed failed"; }
  /usr/bin/python3 "$here/compare_runs.py" "$work/ref" "$run" >"$log.compare" || { cat "$log.compare"; exit 1; }
  echo "  then resumed to the end: $(cat "$log.compare")"
}
# Runs a command with a file size limit in KiB; SIGXFSZ ignored (inherited), so that a write
# beyond it fails with EFBIG instead of killing the process.
limited() { local kib=$1; shift; (trap '' XFSZ; ulimit -f "$kib" && exec "$@"); }
resume=("$focus" train "${args[@]}" --resume --set steps=40 --run-dir)
methods=0

if [ "$what" = disk-full ]; then
  # tmpfs, filled up with a file.
  mnt=$work/tmpfs
  mkdir -p "$mnt"
  if mount -t tmpfs -o size=2m tmpfs "$mnt" 2>"$work/mount.err"; then
    mounts+=("$mnt")
    methods=$((methods + 1))
    echo "disk full: a 2 MiB tmpfs"
    run=$mnt/run
    trained_20 "$run"
    fill() {  # leaves $1 bytes free
      rm -f "$mnt/filler"
      local avail
      avail=$(df -B1 --output=avail "$mnt" | tail -1)
      head -c $((avail - $1)) /dev/zero >"$mnt/filler" || fail "cannot fill the tmpfs"
    }
    fill $((64 * 1024))
    expect_failure "64 KiB free" "$run" "No space left on device" "(\.)?checkpoint\.safetensors" "${resume[@]}" "$run"
    fill 0
    expect_failure "nothing free" "$run" "No space left on device" "" "${resume[@]}" "$run"
    rm -f "$mnt/filler"
    resume_to_end "$run"
  else
    echo "disk full: no tmpfs ($(tr "\n" " " <"$work/mount.err" | tr -s " ")); RLIMIT_FSIZE only"
  fi
  # RLIMIT_FSIZE: writes beyond the limit fail with EFBIG (SIGXFSZ ignored, as it is inherited).
  methods=$((methods + 1))
  echo "disk full: RLIMIT_FSIZE"
  run=$work/fsize/run
  mkdir -p "$work/fsize"
  trained_20 "$run"
  expect_failure "files up to 64 KiB" "$run" "File too large" "(\.)?checkpoint\.safetensors" limited 64 "${resume[@]}" "$run"
  expect_failure "files up to 0 bytes" "$run" "File too large" "" limited 0 "${resume[@]}" "$run"
  resume_to_end "$run"
elif [ "$what" = read-only ]; then
  # A read-only bind mount of the run directory.
  run=$work/bind/run
  mkdir -p "$work/bind"
  trained_20 "$run"
  if mount --bind "$run" "$run" 2>"$work/mount.err"; then
    mounts+=("$run")
    if mount -o remount,bind,ro "$run" 2>>"$work/mount.err"; then
      methods=$((methods + 1))
      echo "read-only: a read-only bind mount"
      expect_failure "read-only mount" "$run" "Read-only file system" "" "${resume[@]}" "$run"
    fi
    umount "$run" || fail "cannot unmount $run"
    mounts=()
  fi
  if [ "$methods" -eq 1 ]; then
    resume_to_end "$run"
  else
    echo "read-only: no read-only bind mount ($(tr "\n" " " <"$work/mount.err" | tr -s " "))"
  fi
  # No write permission (root ignores it: as root the resume runs as nobody).
  as=()
  if [ "$(id -u)" -eq 0 ]; then
    if command -v setpriv >/dev/null && setpriv --reuid=nobody --regid=nogroup --clear-groups true 2>/dev/null; then
      as=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
    elif command -v setpriv >/dev/null && setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null; then
      as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    fi
  fi
  if [ "$(id -u)" -ne 0 ] || [ ${#as[@]} -gt 0 ]; then
    run=$work/perm/run
    mkdir -p "$work/perm"
    chmod 755 "$work" "$work/perm"
    trained_20 "$run"
    chmod a-w "$run"
    if [ ${#as[@]} -gt 0 ] && ! "${as[@]}" test -r "$run/checkpoint.safetensors" -a -x "$focus"; then
      echo "read-only: nobody cannot reach $run or $focus: no run without write permission"
    else
      methods=$((methods + 1))
      echo "read-only: no write permission (chmod a-w)${as[*]:+, run as nobody (${as[*]})}"
      expect_failure "no write permission" "$run" "Permission denied" "" "${as[@]}" "${resume[@]}" "$run"
      chmod u+w "$run"
      resume_to_end "$run"
    fi
  else
    echo "read-only: root without setpriv: no run without write permission"
  fi
  if [ "$methods" -eq 0 ]; then
    # The last resort, so that the test never passes untested: a file size limit of 0 fails
    # every write in the directory, as a read-only one would (with EFBIG instead).
    methods=1
    echo "read-only: neither way works here; a file size limit of 0 stands in (every write fails)"
    run=$work/fsize/run
    mkdir -p "$work/fsize"
    trained_20 "$run"
    expect_failure "no write succeeds" "$run" "File too large" "" limited 0 "${resume[@]}" "$run"
    resume_to_end "$run"
  fi
else
  fail "unknown condition '$what' (disk-full or read-only)"
fi
[ "$methods" -gt 0 ] || fail "no way to make the run directory unwritable on this machine (see above)"
echo "$what: $methods method(s), each failed clearly, kept the checkpoint and resumed to the end"
