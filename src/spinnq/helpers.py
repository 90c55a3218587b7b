"""Helpers every layer shares: the progress bar, reading JSON, seeding, thread counts.

They sit below every stage (they import only `errors`), so the quant stage, the sweep and
the commands use them without importing the task pipelines (`spinnq.tasks`) above them.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from spinnq.errors import CheckpointError


def read_json(path: str | Path) -> Any:
    """A JSON file's content; `CheckpointError` naming the file if it is missing or not JSON."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise CheckpointError("no such file", file=str(p)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"not valid JSON ({e})", file=str(p)) from None


def seed_everything(seed: int) -> np.random.Generator:
    """Seed python, numpy's legacy global RNG and torch; return a fresh numpy Generator."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def set_threads(n: int | None) -> None:
    """Torch's (and numba's, where installed) threads in this process: small networks run
    fastest on one thread, and concurrent sweep trials share the cores. None or 0: unchanged."""
    if not n:
        return
    torch.set_num_threads(int(n))
    try:
        import numba
    except ImportError:
        return
    numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))


class HouseProgress(Progress):
    """A rich `Progress` whose tasks all have the free `info` field (empty by default)."""

    def add_task(self, description: str, *args, info: str = "", **kwargs):  # type: ignore[override]
        return super().add_task(description, *args, info=info, **kwargs)


def progress(disable: bool = False) -> Progress:
    """The house progress bar: description, bar, n/total, elapsed, remaining, and a free
    `info` field (e.g. the last episode return: `bar.update(t, info="return 200")`)."""
    return HouseProgress(TextColumn("[bold]{task.description}"), BarColumn(),
                         MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                         TextColumn("{task.fields[info]}"), disable=disable, transient=False)
