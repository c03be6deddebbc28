"""Runs every gen_*.py next to this file with this interpreter: `generate.py OUTDIR`.

Each script writes OUTDIR/<area>_<case>.safetensors. Needs PyTorch (Debian: python3-torch,
which works with /usr/bin/python3). Any failure fails the whole run, loudly.
"""
import glob
import os
import subprocess
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: generate.py OUTDIR")
    out = sys.argv[1]
    try:
        import numpy  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        sys.exit(f"generate.py: {e} with {sys.executable}; the parity tests need PyTorch and numpy: "
                 "apt-get install python3-torch python3-numpy (Debian's torch works with /usr/bin/python3)")
    os.makedirs(out, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))
    scripts = sorted(glob.glob(os.path.join(here, "gen_*.py")))
    failed = []
    for script in scripts:
        r = subprocess.run([sys.executable, script, out], cwd=here)
        status = "ok" if r.returncode == 0 else f"FAILED (exit {r.returncode})"
        print(f"generate.py: {os.path.basename(script)} {status}", flush=True)
        if r.returncode != 0:
            failed.append(os.path.basename(script))
    if failed:
        sys.exit(f"generate.py: failed: {', '.join(failed)}")
    print(f"generate.py: {len(scripts)} scripts wrote {len(glob.glob(os.path.join(out, '*.safetensors')))} files to {out}")


if __name__ == "__main__":
    main()
