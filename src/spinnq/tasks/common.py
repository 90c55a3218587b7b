"""What every training task shares: run folders, RNG states, atomic files, checkpoints, logs
(the progress bar and seeding are `spinnq.helpers`, shared with every layer). Written for
reuse (control/RL and DVS-gesture tasks both build on it).

Use it like this::

    from spinnq.helpers import progress, seed_everything
    from spinnq.tasks.common import (RunDir, save_checkpoint, load_checkpoint, MetricLogger,
                                     write_json)

    cfg = settings.validate(cfg)                       # spinnq.settings: before any folder
    run = RunDir.create("cartpole", out=None)          # runs/cartpole-20261122-211500/, locked
    # --out D: D must be empty (force=True empties a run folder); to continue a run:
    #   run = RunDir.open(path)                        # CheckpointError if not a run folder
    #   cfg = settings.from_json(MyConfig, run.load_config(), file=...)  # checked like --set
    run.save_config(cfg)                               # config.json (+ "task", checked on resume)
    with run.guard("spinnq run cartpole"):             # Ctrl-C -> "continue with ... --resume"
        ...                                            # the lock is released at the end
    seed_everything(cfg.seed)                          # python, numpy, torch
    log = MetricLogger(run.path, "train")              # train.csv + tensorboard/ (if present)
    with progress() as bar:                            # rich progress bar
        task = bar.add_task("train", total=n)
        ...; log.log(step, loss=..., ret=...); bar.update(task, advance=1)
    save_checkpoint(run.ckpt("last"), {"model": m.state_dict(), "rng": rng_state(), ...})
    state = load_checkpoint(run.ckpt("last"))          # torch.load(weights_only=True)
    write_json(run.path / "report.json", report)       # temp file + rename: never half-written

Why these rules:
- Every file a run writes goes through `spinnq.files` (temp file in the same folder, then
  `os.replace`), so a kill at any moment leaves either the old complete file or the new one.
- One run owns a folder (`run.lock` with its pid; a dead owner's lock is stale and taken
  over), and a new run never writes into a folder holding another: results never mix.
- Checkpoints hold only tensors and plain Python values (dict/list/int/float/str) so they load
  with `torch.load(weights_only=True)`: a checkpoint can never run code. RNG states are stored
  in that form too (`rng_state` / `set_rng_state`), so a resumed run continues the same
  random streams and ends with the same weights as an uninterrupted one.
- `MetricLogger.truncate(step)` drops log rows written after the checkpoint being resumed, so
  the CSV of a resumed run equals that of an uninterrupted one.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import dataclasses
import io
import json
import os
import random
import shutil
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spinnq.config import RUNS_DIR
from spinnq.errors import CheckpointError, InputError, Interrupted, OutputError, RunFolderError
from spinnq.files import (  # noqa: F401  (atomic_write, write_json: re-exported for tasks)
    atomic_write,
    check_output,
    jsonable,
    write_json,
)
from spinnq.helpers import read_json

CKPT_VERSION = 1


# -------------------------------------------------------------------------------- run folders
LOCK_NAME = "run.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


@dataclasses.dataclass
class RunDir:
    """A run folder: config.json, checkpoints/, logs (CSV, tensorboard/), NIR files, report.

    One run owns a folder at a time: `create`/`open` take `run.lock` (the owner's pid and
    host; created with O_EXCL so two starts cannot both win), `release` drops it. A lock whose
    process is gone (SIGKILL, power cut) is stale and taken over; a live one is refused with
    a `RunFolderError`. A lock held by this very process is re-entrant (an in-process resume
    after an exception). `create` never writes into a folder that already holds anything:
    a run is resumed (`open`), started over (`force=True` empties a spinnq run folder), or
    put elsewhere, so results of two configurations can never be mixed."""

    path: Path
    task: str | None = None
    locked: bool = False

    @classmethod
    def create(cls, task: str, out: str | Path | None = None, root: str | Path = RUNS_DIR,
               force: bool = False) -> RunDir:
        """`out` if given (created; must be empty, or a run folder and `force`), else
        `root/<task>-<UTC time>` (a numeric suffix when two runs start in the same second)."""
        if out is not None:
            check_output(out, "dir", flag="--out")
            p = Path(out)
        else:
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            p = Path(root) / f"{task}-{stamp}"
            i = 1
            while p.exists():
                p = Path(root) / f"{task}-{stamp}-{i}"
                i += 1
        made = not p.exists()
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot make the run folder ({(e.strerror or '').lower()})",
                              file=str(p)) from None
        run = cls(p, task)
        run.lock()
        try:
            others = sorted(c.name for c in p.iterdir() if c.name != LOCK_NAME)
            if others:
                is_run = (p / "config.json").exists() or (p / "checkpoints").is_dir()
                if not is_run:
                    raise RunFolderError("not empty and not a spinnq run folder; use another "
                                         "--out", file=str(p))
                if not force:
                    raise RunFolderError(f"holds a run; continue it with --resume {p}, start "
                                         "it over with --force, or use another --out",
                                         file=str(p))
                for name in others:  # --force: empty the run folder (never a foreign one)
                    c = p / name
                    shutil.rmtree(c) if c.is_dir() and not c.is_symlink() else c.unlink()
            (p / "checkpoints").mkdir(exist_ok=True)
        except BaseException:
            run.release()
            if made:
                shutil.rmtree(p, ignore_errors=True)
            raise
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run folder (for --resume): must hold config.json; takes the lock."""
        p = Path(path)
        if not p.is_dir():
            raise CheckpointError("no such run folder", file=str(p))
        if not (p / "config.json").is_file():
            raise CheckpointError("not a spinnq run folder (no config.json)", file=str(p))
        run = cls(p)
        run.lock()
        return run

    # ---- the lock
    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_NAME

    def lock(self) -> None:
        """Take `run.lock` or raise `RunFolderError` naming the live owner."""
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.now(UTC).isoformat(timespec="seconds")}
        for _ in range(3):
            try:
                fd = os.open(self.lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is None:  # unreadable: a lock being written right now, or junk
                    time.sleep(0.05)
                    owner = self._owner() or {}
                pid, host = owner.get("pid"), owner.get("host")
                if pid == me["pid"] and host == me["host"]:
                    self.locked = True
                    return
                if isinstance(pid, int) and host == me["host"] and _pid_alive(pid):
                    raise RunFolderError(f"in use by another run (pid {pid}, started "
                                         f"{owner.get('started', '?')}); wait for it to end "
                                         "or stop it", file=str(self.path)) from None
                if host not in (None, me["host"]):
                    raise RunFolderError(f"locked by a run on host {host} (pid {pid}); if it "
                                         f"is gone, delete {self.lock_path}",
                                         file=str(self.path)) from None
                with contextlib.suppress(FileNotFoundError):  # stale: its process is gone
                    self.lock_path.unlink()
                continue
            except OSError as e:
                raise OutputError(f"cannot lock the run folder ({(e.strerror or '').lower()})",
                                  file=str(self.path)) from None
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            self.locked = True
            atexit.register(self.release)
            return
        raise RunFolderError("could not take the lock (another run keeps taking it)",
                             file=str(self.path))

    def _owner(self) -> dict | None:
        try:
            d = json.loads(self.lock_path.read_text())
        except (OSError, ValueError):
            return None
        return d if isinstance(d, dict) else None

    def release(self) -> None:
        """Drop the lock if this process holds it (idempotent; also run at exit)."""
        if not self.locked:
            return
        owner = self._owner() or {}
        if owner.get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.lock_path.unlink()
        self.locked = False

    @contextlib.contextmanager
    def guard(self, command: str) -> Iterator[RunDir]:
        """Hold the lock for the block; Ctrl-C becomes `Interrupted` saying how to continue
        (`command` is the task's `spinnq run` prefix, e.g. "spinnq run cartpole")."""
        try:
            yield self
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; continue with {command} --resume "
                              f"{self.path}") from None
        finally:
            self.release()

    def ckpt(self, name: str) -> Path:
        return self.path / "checkpoints" / f"{name}.pt"

    def save_config(self, cfg: Any) -> Path:
        """config.json: the settings plus the task they belong to (checked on --resume)."""
        d = jsonable(cfg)
        if self.task is not None and isinstance(d, dict):
            d = {"task": self.task, **d}
        return write_json(self.path / "config.json", d)

    def load_config(self) -> dict:
        """config.json without its "task" key (which goes to `self.task`)."""
        cfg = read_json(self.path / "config.json")
        if not isinstance(cfg, dict):
            raise CheckpointError("config.json is not an object", file=str(self.path))
        task = cfg.pop("task", None)
        if task is not None:
            self.task = str(task)
        return cfg


# ------------------------------------------------------------------------------ RNG states
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
        # torch's own text suggests weights_only=False, which would run a pickled payload:
        # say what is wrong in plain words instead (and never pass its hint on)
        why = ("holds Python objects beyond tensors and plain values (refused: loading them "
               "could run code)" if "weights_only" in str(e) or "Unsupported global" in str(e)
               else "truncated, corrupt or not a torch file")
        raise CheckpointError(f"not a usable spinnq checkpoint: {why}", file=str(p)) from None
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
        keep = [rows[0]] + [r for r in rows[1:]
                            if len(r) == len(rows[0]) and _number(r[0]) <= step]
        buf = io.StringIO()
        csv.writer(buf).writerows(keep)
        atomic_write(self.path, buf.getvalue())

    def log(self, step: int, **scalars: float) -> None:
        """One row. The header is written atomically; rows are appended (rewriting the file
        per row would cost O(rows^2)); a row cut by a kill is dropped by `truncate`."""
        if self.fields is None:
            self.fields = ["step", *scalars]
            buf = io.StringIO()
            csv.writer(buf).writerow(self.fields)
            atomic_write(self.path, buf.getvalue())
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


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # a row cut by a kill mid-append
        return float("inf")


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float | np.floating):
        return f"{float(v):.6g}"
    return str(v)


@contextlib.contextmanager
def stopwatch() -> Iterator[dict]:
    """`with stopwatch() as t: ...` then `t["s"]` holds the wall seconds (measured)."""
    d: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        yield d
    finally:
        d["s"] = time.perf_counter() - t0
