"""Where a benchmark's numbers come from: the commit they were measured on, recorded in every
results JSON so a README line can say which code produced it."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commit() -> str:
    """The short hash of the checked-out commit, or 'unknown' outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


CODE = ("import sys; from spinnq.cli import main; sys.argv = ['spinnq'] + sys.argv[1:]; "
        "main()")


def spinnq_cli(*args: str) -> dict:
    """`spinnq ARGS` as a user runs it (a subprocess of the entry point, this checkout's
    sources, output discarded): its wall and CPU seconds and the children's peak RSS."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", CODE, *args], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": time.perf_counter() - t0,
            "cpu_s": c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime,
            "max_rss_mb_children": c1.ru_maxrss / 1024}
