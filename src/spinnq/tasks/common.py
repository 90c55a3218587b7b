"""What every training task shares: run folders, seeding, atomic files, checkpoints, logs,
progress bars. Written for reuse (control/RL and DVS-gesture tasks both build on it).

Use it like this::

    from spinnq.tasks.common import (RunDir, seed_everything, save_checkpoint,
                                     load_checkpoint, MetricLogger, progress, write_json)

    run = RunDir.create("cartpole", out=None)          # runs/cartpole-20261122-211500/
    # or, to continue:  run = RunDir.open(path)        # CheckpointError if not a run folder
    run.save_config(cfg)                               # config.json (a dataclass or a dict)
    seed_everything(cfg.seed)                          # python, numpy, torch
    log = MetricLogger(run.path, "train")              # train.csv + tensorboard/ (if present)
    with progress() as bar:                            # rich progress bar
        task = bar.add_task("train", total=n)
        ...; log.log(step, loss=..., ret=...); bar.update(task, advance=1)
    save_checkpoint(run.ckpt("last"), {"model": m.state_dict(), "rng": rng_state(), ...})
    state = load_checkpoint(run.ckpt("last"))          # torch.load(weights_only=True)
    write_json(run.path / "report.json", report)       # temp file + rename: never half-written

Why these rules:
- Every file a run writes goes through `atomic_write` (temp file in the same folder, then
  `os.replace`), so a kill at any moment leaves either the old complete file or the new one.
- Checkpoints hold only tensors and plain Python values (dict/list/int/float/str) so they load
  with `torch.load(weights_only=True)`: a checkpoint can never run code. RNG states are stored
  in that form too (`rng_state` / `set_rng_state`), so a resumed run continues the same
  random streams and ends with the same weights as an uninterrupted one.
- `MetricLogger.truncate(step)` drops log rows written after the checkpoint being resumed, so
  the CSV of a resumed run equals that of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
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

from spinnq.config import RUNS_DIR
from spinnq.errors import CheckpointError, InputError
from spinnq.files import atomic_write  # noqa: F401  (re-exported for the tasks)

CKPT_VERSION = 1


# ------------------------------------------------------------------------------ atomic files
def _jsonable(o: Any) -> Any:
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return _jsonable(dataclasses.asdict(o))
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_jsonable(v) for v in o]
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray | torch.Tensor):
        return np.asarray(o).tolist()
    if isinstance(o, float) and not np.isfinite(o):
        return None  # JSON has no NaN/inf
    return o


def write_json(path: str | Path, obj: Any) -> Path:
    """Atomic, sorted-key JSON (dataclasses, numpy and tensors converted)."""
    return atomic_write(path, json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise CheckpointError("no such file", file=str(p)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"not valid JSON ({e})", file=str(p)) from None


# -------------------------------------------------------------------------------- run folders
@dataclasses.dataclass
class RunDir:
    """A run folder: config.json, checkpoints/, logs (CSV, tensorboard/), NIR files, report."""

    path: Path

    @classmethod
    def create(cls, task: str, out: str | Path | None = None, root: str | Path = RUNS_DIR
               ) -> RunDir:
        """`out` if given (created; may exist but must be empty of checkpoints), else
        `root/<task>-<UTC time>` (a numeric suffix when two runs start in the same second)."""
        if out is not None:
            p = Path(out)
            if p.exists() and not p.is_dir():
                raise InputError("run folder path exists and is not a folder", file=str(p))
        else:
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            p = Path(root) / f"{task}-{stamp}"
            i = 1
            while p.exists():
                p = Path(root) / f"{task}-{stamp}-{i}"
                i += 1
        (p / "checkpoints").mkdir(parents=True, exist_ok=True)
        return cls(p)

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run folder (for --resume): must hold config.json."""
        p = Path(path)
        if not p.is_dir():
            raise CheckpointError("no such run folder", file=str(p))
        if not (p / "config.json").is_file():
            raise CheckpointError("not a spinnq run folder (no config.json)", file=str(p))
        return cls(p)

    def ckpt(self, name: str) -> Path:
        return self.path / "checkpoints" / f"{name}.pt"

    def save_config(self, cfg: Any) -> Path:
        return write_json(self.path / "config.json", cfg)

    def load_config(self) -> dict:
        cfg = read_json(self.path / "config.json")
        if not isinstance(cfg, dict):
            raise CheckpointError("config.json is not an object", file=str(self.path))
        return cfg


def config_from_dict(cls: type, d: dict, *, file: str | None = None) -> Any:
    """Rebuild a (flat or nested) config dataclass from its JSON dict; unknown keys refused."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(names)
    if unknown:
        raise CheckpointError(f"config has unknown keys {sorted(unknown)} for {cls.__name__}",
                              file=file)
    kw = {}
    for k, v in d.items():
        default = getattr(cls, k, None) if not callable(getattr(cls, k, None)) else None
        kw[k] = tuple(v) if isinstance(default, tuple) and isinstance(v, list) else v
    return cls(**kw)


# ---------------------------------------------------------------------------------- seeding
def seed_everything(seed: int) -> np.random.Generator:
    """Seed python, numpy's legacy global RNG and torch; return a fresh numpy Generator."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def rng_state(np_rng: np.random.Generator | None = None) -> dict:
    """All random streams as plain values (loadable with weights_only=True)."""
    st = {"python": _tolist(random.getstate()), "numpy_global": _np_legacy_state(),
          "torch": torch.get_rng_state()}
    if np_rng is not None:
        st["numpy"] = json.dumps(np_rng.bit_generator.state)
    return st


def set_rng_state(st: dict, np_rng: np.random.Generator | None = None) -> None:
    try:
        py = st["python"]
        random.setstate((py[0], tuple(py[1]), py[2]))
        kind, keys, pos, has_gauss, gauss = st["numpy_global"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(st["torch"])
        if np_rng is not None:
            np_rng.bit_generator.state = json.loads(st["numpy"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint has an unreadable RNG state ({e})") from None


def _tolist(o):
    return [_tolist(v) for v in o] if isinstance(o, tuple | list) else o


def _np_legacy_state() -> list:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)]


# ------------------------------------------------------------------------------ checkpoints
def save_checkpoint(path: str | Path, state: dict) -> Path:
    """torch.save to a temp file, then rename: a kill mid-write never corrupts `path`."""
    buf = io.BytesIO()
    torch.save({"spinnq_checkpoint": CKPT_VERSION, **state}, buf)
    return atomic_write(path, buf.getvalue())


def load_checkpoint(path: str | Path, required: tuple[str, ...] = ()) -> dict:
    """Load with `weights_only=True`; any unreadable, foreign or incomplete file is a
    `CheckpointError` naming it."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError("no such checkpoint", file=str(p))
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated/foreign files
        msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise CheckpointError(f"corrupt or not a spinnq checkpoint ({msg})",
                              file=str(p)) from None
    if not isinstance(state, dict) or state.get("spinnq_checkpoint") != CKPT_VERSION:
        raise CheckpointError(f"not a spinnq checkpoint (version {CKPT_VERSION} expected)",
                              file=str(p))
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint lacks {missing}", file=str(p))
    return state


def load_state_dict(module: torch.nn.Module, sd: Any, *, file: str | None = None) -> None:
    """`module.load_state_dict` with a CheckpointError when the shapes/keys do not fit."""
    try:
        module.load_state_dict(sd)
    except (RuntimeError, TypeError, KeyError, AttributeError) as e:
        first = str(e).splitlines()[0][:200]
        raise CheckpointError(f"checkpoint does not fit the model ({first})",
                              file=file) from None


# --------------------------------------------------------------------------------- logging
class MetricLogger:
    """Scalars per step into `<name>.csv` (always) and TensorBoard (when importable).

    Columns are fixed by the first row; later rows may omit columns (left empty)."""

    def __init__(self, folder: str | Path, name: str, tensorboard: bool = True):
        self.path = Path(folder) / f"{name}.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fields: list[str] | None = None
        if self.path.exists():
            with open(self.path, newline="") as fh:
                header = fh.readline().strip()
            self.fields = header.split(",") if header else None
        self.tb = None
        if tensorboard:
            with contextlib.suppress(Exception):
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(Path(folder) / "tensorboard" / name))

    def truncate(self, step: int) -> None:
        """Drop rows logged after `step` (they are replayed by a resumed run)."""
        if not self.path.exists():
            return
        with open(self.path, newline="") as fh:
            rows = list(csv.reader(fh))
        if not rows:
            return
        keep = [rows[0]] + [r for r in rows[1:] if r and float(r[0]) <= step]
        buf = io.StringIO()
        csv.writer(buf).writerows(keep)
        atomic_write(self.path, buf.getvalue())

    def log(self, step: int, **scalars: float) -> None:
        if self.fields is None:
            self.fields = ["step", *scalars]
            with open(self.path, "w", newline="") as fh:
                csv.writer(fh).writerow(self.fields)
        unknown = set(scalars) - set(self.fields)
        if unknown:
            raise InputError(f"log columns {sorted(unknown)} not in {self.path.name}'s header")
        row = [step] + [_fmt(scalars.get(f)) for f in self.fields[1:]]
        with open(self.path, "a", newline="") as fh:
            csv.writer(fh).writerow(row)
        if self.tb is not None:
            for k, v in scalars.items():
                if v is not None:
                    self.tb.add_scalar(k, float(v), step)

    def read(self) -> dict[str, np.ndarray]:
        """The CSV as columns of floats (NaN where empty)."""
        if not self.path.exists():
            return {}
        with open(self.path, newline="") as fh:
            rows = list(csv.reader(fh))
        if len(rows) < 2:
            return {f: np.zeros(0) for f in (rows[0] if rows else [])}
        cols = list(zip(*rows[1:], strict=False))
        return {f: np.array([float(x) if x != "" else np.nan for x in c])
                for f, c in zip(rows[0], cols, strict=False)}

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float | np.floating):
        return f"{float(v):.6g}"
    return str(v)


# ------------------------------------------------------------------------------- progress
class _Progress(Progress):
    def add_task(self, description: str, *args, info: str = "", **kwargs):  # type: ignore[override]
        return super().add_task(description, *args, info=info, **kwargs)


def progress(disable: bool = False) -> Progress:
    """The house progress bar: description, bar, n/total, elapsed, remaining, and a free
    `info` field (e.g. the last episode return: `bar.update(t, info="return 200")`)."""
    return _Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                     MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                     TextColumn("{task.fields[info]}"), disable=disable, transient=False)


@contextlib.contextmanager
def stopwatch() -> Iterator[dict]:
    """`with stopwatch() as t: ...` then `t["s"]` holds the wall seconds (measured)."""
    d: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        yield d
    finally:
        d["s"] = time.perf_counter() - t0


def set_threads(n: int | None) -> None:
    """Torch intra-op threads: small nets train fastest on 1 thread (no sync overhead)."""
    if n:
        torch.set_num_threads(int(n))
