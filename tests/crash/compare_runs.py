#!/usr/bin/env python3
"""compare_runs.py REF RUN: a run that was killed and resumed ended as the uninterrupted one.

Byte-identical checkpoint.safetensors (weights, optimizer, schedule, step, RNG state and
metadata) and config.json; metrics.jsonl line for line with the same splits, steps and
values (only "time", wall-clock seconds, and the "items_per_s" measured with it may differ); report.json with the same metrics (but
train_seconds); and no temporary file left in RUN. Exits 1 and says what differs."""
import json
import os
import sys


def fail(msg):
    print(f"FAILED: {msg}")
    sys.exit(1)


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


ref, run = sys.argv[1], sys.argv[2]
for name in ("checkpoint.safetensors", "config.json"):
    a, b = read(os.path.join(ref, name)), read(os.path.join(run, name))
    if a != b:
        diff = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
        fail(f"{run}/{name} differs from {ref}/{name} ({len(b)} vs {len(a)} bytes, first difference at byte {diff})")


def metrics(d):
    out = []
    for i, line in enumerate(read(os.path.join(d, "metrics.jsonl"), "r").splitlines()):
        j = json.loads(line)  # a torn line must not survive a resume
        if "time" not in j:
            fail(f"{d}/metrics.jsonl line {i + 1} has no time: {line}")
        del j["time"]
        j.pop("items_per_s", None)  # a rate of wall-clock time
        out.append(j)
    return out


a, b = metrics(ref), metrics(run)
for i, (x, y) in enumerate(zip(a, b)):
    if x != y:
        fail(f"metrics.jsonl line {i + 1} differs:\n  uninterrupted {x}\n  resumed       {y}")
if len(a) != len(b):
    fail(f"metrics.jsonl has {len(b)} lines, the uninterrupted run's {len(a)}")

ra, rb = (json.loads(read(os.path.join(d, "report.json"), "r"))["metrics"] for d in (ref, run))
for r in (ra, rb):
    r.pop("train_seconds", None)
if ra != rb:
    fail(f"report.json metrics differ:\n  uninterrupted {ra}\n  resumed       {rb}")

left = [f for f in os.listdir(run) if ".tmp" in f]
if left:
    fail(f"temporary files left in {run}: {left}")
print(f"{run} ends as {ref}: checkpoint and config byte-identical, {len(a)} metrics lines and the report equal")
