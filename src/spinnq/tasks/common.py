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
import errno
import fcntl
import fnmatch
import hashlib
import io
import json
import os
import random
import shutil
import socket
import stat
import sys
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
MARKER = ".spinnq.json"  # spinnq's own record of a folder it made (see `RunDir`)
MARKER_FORMAT = 1
# What spinnq writes in its folders, by kind (fnmatch patterns on paths relative to the
# folder): `--force` deletes these and nothing else, so a user's own file is never lost.
OWNED: dict[str, tuple[str, ...]] = {
    "run": ("config.json", "stages.json", "summary.json", "report.json", "report.md",
            "report.html", "train.csv", "eval.csv", "float.csv", "qat.csv", "float.nir",
            "ptq.nir", "qat.nir", "psnn_float.nir", "qsnn_qat.nir", "test_counts_qat_chip.npy",
            "checkpoints/*.pt", "plots/*.png", "tensorboard/*/events.out.tfevents.*",
            "cache/gesture-*.npz", ".*.tmp", "*/.*.tmp", "*/*/.*.tmp"),
    "sweep": ("sweep.json", "optuna.json", "trials/*.json", "trials.csv", "pareto.csv",
              "report.json", "report.md", "report.html", "summary.json", "plots/*.png",
              "best.nir", "best_x.npy", "best_data.npz", "best.md", "sweep.log", "ray/*",
              "tasks/*", "cache/gesture-*.npz", ".*.tmp", "*/.*.tmp"),
}
OWNED_DIRS = ("checkpoints", "plots", "tensorboard", "cache", "trials", "ray", "tasks")
_HELD: dict[str, RunDir] = {}  # resolved folder -> the RunDir holding its lock here


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def config_sha256(cfg: Any) -> str:
    """The hash of a config as recorded (canonical JSON: key order does not matter)."""
    return _sha256(json.dumps(cfg, sort_keys=True, allow_nan=True).encode())


def differing_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON objects (nested dicts walked)."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return [] if a == b else [prefix.rstrip(".") or "(whole file)"]
    out = []
    for k in sorted(set(a) | set(b), key=str):
        if k not in a or k not in b:
            out.append(prefix + str(k))
        else:
            out += differing_keys(a[k], b[k], f"{prefix}{k}.")
    return out


def read_marker(folder: Path) -> dict | None:
    """A folder's marker (None when it has none); a damaged one is a `CheckpointError`."""
    p = Path(folder) / MARKER
    if not p.exists() and not p.is_symlink():
        return None
    if p.is_symlink() or not p.is_file():
        raise CheckpointError(f"{MARKER} is not a regular file", file=str(p))
    try:
        m = json.loads(p.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"not a readable spinnq folder record ({type(e).__name__})",
                              file=str(p)) from None
    ok = (isinstance(m, dict) and m.get("spinnq") in OWNED and isinstance(m.get("files"), dict)
          and all(isinstance(v, list) and all(isinstance(h, str) for h in v)
                  for v in m["files"].values())
          and isinstance(m.get("task"), str | None) and isinstance(m.get("config"), dict | None))
    if not ok:
        raise CheckpointError("not a valid spinnq folder record", file=str(p))
    if m["config"] is not None and m.get("config_sha256") != config_sha256(m["config"]):
        raise CheckpointError("the recorded config does not match its recorded hash",
                              file=str(p))
    return m


@dataclasses.dataclass
class RunDir:
    """A folder spinnq made and owns: a run (config.json, checkpoints/, logs, NIR files,
    report) or a sweep (`kind="sweep"`).

    Ownership: `create` writes the marker `.spinnq.json` (kind, task, spinnq version, the
    config and its hash, and the hash of every graph/checkpoint/result spinnq wrote and reads
    back). Only a folder with a marker is resumed (`open`) or started over (`force`), and
    `force` deletes only the files spinnq writes (`OWNED`): a user's notes stay. A resumed
    run's config.json must equal the recorded config (`load_config` names the settings that
    differ), and every file read back must hash to its record (`verify`): a swapped graph or
    checkpoint is refused, never reported on.

    One run at a time: `run.lock` is held with `flock` for the life of the run; the kernel
    drops it when the process dies, so a killed run's lock is free at once and there is no
    window between finding it stale and taking it. The file holds the owner's pid for the
    message only. Re-entrant within one process (an in-process resume after an exception)."""

    path: Path
    task: str | None = None
    locked: bool = False
    kind: str = "run"
    made: bool = False  # `create` made the folder (so `discard` may remove it)
    _fd: int | None = dataclasses.field(default=None, repr=False)
    _marker: dict | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def create(cls, task: str, out: str | Path | None = None, root: str | Path = RUNS_DIR,
               force: bool = False, kind: str = "run") -> RunDir:
        """`out` if given (created; must be empty, or a spinnq folder of this kind and
        `force`), else `root/<task>-<UTC time>` (a numeric suffix when two runs start in the
        same second). Writes the marker."""
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
        if not made:
            _refuse_foreign(p, kind, force)  # before the lock file is put into it
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot make the run folder ({(e.strerror or '').lower()})",
                              file=str(p)) from None
        run = cls(p, task, kind=kind, made=made)
        try:
            run.lock()
            if not made:
                _refuse_foreign(p, kind, force, held=True)  # again, now that it is ours
                if force:
                    run.empty()
            run._marker = {"spinnq": kind, "format": MARKER_FORMAT, "version": _version(),
                           "task": task, "created": datetime.now(UTC).isoformat(
                               timespec="seconds"), "config": None, "config_sha256": None,
                           "files": {}}
            run._save_marker()
            if kind == "run":
                (p / "checkpoints").mkdir(exist_ok=True)
        except BaseException:
            run.release()
            if made:
                shutil.rmtree(p, ignore_errors=True)
            raise
        return run

    @classmethod
    def open(cls, path: str | Path, kind: str = "run") -> RunDir:
        """An existing folder spinnq made (for --resume): takes the lock, reads the marker."""
        p = Path(path)
        if not p.is_dir():
            raise CheckpointError(f"no such {kind} folder", file=str(p))
        if read_marker(p) is None:
            raise CheckpointError(f"not a spinnq {kind} folder (no {MARKER}: spinnq did not "
                                  "make it, or an older version did)", file=str(p))
        run = cls(p, kind=kind)
        run.lock()
        try:
            m = read_marker(p)
            if m is None or m["spinnq"] != kind:
                got = "nothing" if m is None else f"a spinnq {m['spinnq']}"
                raise RunFolderError(f"holds {got}, not a {kind}", file=str(p))
            run._marker, run.task = m, m["task"]
            if kind == "run" and not (p / "config.json").is_file():
                raise CheckpointError("the run has no config.json (its start was cut off); "
                                      "start it over with --force", file=str(p))
        except BaseException:
            run.release()
            raise
        return run

    def empty(self) -> None:
        """Delete the files spinnq writes here (`OWNED`), then its folders left empty;
        everything else stays."""
        pats = OWNED[self.kind]
        for f in sorted(self.path.rglob("*"), reverse=True):
            rel = f.relative_to(self.path).as_posix()
            if rel in (LOCK_NAME, MARKER):
                continue
            if (f.is_file() or f.is_symlink()) and any(fnmatch.fnmatch(rel, q) for q in pats):
                f.unlink()
            elif f.is_dir() and not f.is_symlink() and rel.split("/")[0] in OWNED_DIRS:
                with contextlib.suppress(OSError):
                    f.rmdir()  # only when empty: a user's file inside keeps its folder

    def discard(self) -> None:
        """Undo a start refused before any work (a bad data folder): spinnq's files, its
        marker and (if `create` made it) the folder go; the lock is released."""
        self.empty()
        with contextlib.suppress(OSError):
            (self.path / MARKER).unlink()
        self.release()
        if self.made:
            with contextlib.suppress(OSError):
                self.path.rmdir()

    # ---- the marker: what spinnq wrote here
    def _save_marker(self) -> None:
        write_json(self.path / MARKER, self._marker)

    def _rel(self, path: str | Path) -> str:
        p = Path(path)
        try:
            return p.resolve().relative_to(self.path.resolve()).as_posix()
        except ValueError:
            raise CheckpointError("outside the run folder", file=str(p)) from None

    def write_bytes(self, path: str | Path, data: bytes) -> Path:
        """Write a file spinnq reads back, its hash recorded: the new hash is recorded
        (beside the old) before the write and alone after it, so a kill at any point
        leaves a file that matches the record."""
        rel, h = self._rel(path), _sha256(data)
        if self._marker is not None:
            self._marker["files"][rel] = [h, *self._marker["files"].get(rel, [])[:1]]
            self._save_marker()
        out = atomic_write(path, data)
        if self._marker is not None:
            self._marker["files"][rel] = [h]
            self._save_marker()
        return out

    def write_json(self, path: str | Path, obj: Any) -> Path:
        """`files.write_json`, its hash recorded (see `write_bytes`)."""
        return self.write_bytes(path, (json.dumps(jsonable(obj), indent=2, sort_keys=True,
                                                  allow_nan=False) + "\n").encode())

    def record(self, path: str | Path) -> None:
        """Record the hash of a file just written by a library (NIR graphs)."""
        if self._marker is not None:
            self._marker["files"][self._rel(path)] = [_file_sha256(Path(path))]
            self._save_marker()

    def verify(self, path: str | Path) -> Path:
        """`path` is the file this run wrote (its hash matches the record), else a
        `CheckpointError` naming it: a swapped or edited graph, checkpoint or result is
        never used."""
        p = Path(path)
        if self._marker is None:
            return p
        want = self._marker["files"].get(self._rel(p))
        if not p.is_file() or p.is_symlink():
            raise CheckpointError("not a regular file", file=str(p))
        fix = ("start the run over with --force" if self.kind == "run" else
               "delete it to run that trial again")
        if want is None:
            raise CheckpointError(f"not written by this {self.kind} (no record in {MARKER}); "
                                  f"{fix}", file=str(p))
        if _file_sha256(p) not in want:
            raise CheckpointError(f"changed since this {self.kind} wrote it (its hash differs "
                                  f"from the record in {MARKER}); {fix}", file=str(p))
        return p

    # ---- the lock
    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_NAME

    def lock(self) -> None:
        """Take `run.lock` (flock, non-blocking) or raise `RunFolderError` naming the owner."""
        key = str(self.path.resolve())
        held = _HELD.get(key)
        if held is not None:  # this process holds it already: hand it over (re-entrant)
            if held is not self:
                self._fd, held._fd, held.locked = held._fd, None, False
            self.locked, _HELD[key] = True, self
            return
        for _ in range(50):
            fd = self._open_lock()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _lock_owner(fd)
                os.close(fd)
                who = (f"pid {owner['pid']}, started {owner.get('started', '?')}"
                       if owner else "starting now")
                raise RunFolderError(f"in use by another {self.kind} ({who}); wait for it to "
                                     "end or stop it", file=str(self.path)) from None
            if not _same_file(fd, self.lock_path):  # the holder removed it as we opened it
                os.close(fd)
                continue
            me = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.now(UTC).isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
            self._fd, self.locked, _HELD[key] = fd, True, self
            atexit.register(self.release)
            return
        raise RunFolderError("could not take the lock (other runs keep taking it)",
                             file=str(self.path))

    def _open_lock(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC
        try:
            fd = os.open(self.lock_path, flags | os.O_NONBLOCK, 0o644)
        except OSError as e:
            if e.errno in (errno.EISDIR, errno.ELOOP, errno.ENXIO):
                raise RunFolderError(f"{LOCK_NAME} is not a regular file (a folder, link or "
                                     "device); remove it if no run uses this folder",
                                     file=str(self.path)) from None
            raise OutputError(f"cannot lock the folder ({(e.strerror or '').lower()})",
                              file=str(self.path)) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise RunFolderError(f"{LOCK_NAME} is not a regular file; remove it if no run uses "
                                 "this folder", file=str(self.path))
        return fd

    def release(self) -> None:
        """Drop the lock if this object holds it (idempotent; also run at exit). The file is
        removed while still locked, so a process that opened it meanwhile sees it is gone."""
        if not self.locked:
            return
        if self._fd is not None:
            if _same_file(self._fd, self.lock_path):
                with contextlib.suppress(OSError):
                    self.lock_path.unlink()
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        for k in [k for k, v in _HELD.items() if v is self]:
            _HELD.pop(k, None)
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
        """config.json: the settings plus the task they belong to; the same object and its
        hash go into the marker (a resume refuses a config.json edited since)."""
        d = jsonable(cfg)
        if self.task is not None and isinstance(d, dict):
            d = {"task": self.task, **d}
        out = write_json(self.path / "config.json", d)
        if self._marker is not None:
            d = json.loads(json.dumps(d))  # as read back (tuples -> lists)
            self._marker.update(config=d, config_sha256=config_sha256(d))
            self._save_marker()
        return out

    def record_config(self, d: dict) -> None:
        """Record `d` (JSON-able) as the folder's config in the marker only (a sweep's
        identity: what must not change between a sweep and its --resume)."""
        d = json.loads(json.dumps(jsonable(d)))
        self._marker.update(config=d, config_sha256=config_sha256(d))
        self._save_marker()

    def recorded_config(self) -> dict | None:
        return None if self._marker is None else self._marker["config"]

    def load_config(self) -> dict:
        """config.json without its "task" key, checked against the recorded config: an
        edited one is refused naming the settings that differ."""
        p = self.path / "config.json"
        cfg = read_json(p)
        if not isinstance(cfg, dict):
            raise CheckpointError("config.json is not an object", file=str(p))
        if self._marker is not None:
            rec = self._marker["config"]
            if rec is None:
                raise CheckpointError(f"the run's record ({MARKER}) holds no config: its start "
                                      "was cut off; start it over with --force", file=str(p))
            if config_sha256(cfg) != self._marker["config_sha256"]:
                keys = differing_keys(rec, cfg)
                shown = ", ".join(keys[:8]) + (" ..." if len(keys) > 8 else "")
                raise CheckpointError(f"differs from the config this run recorded at its "
                                      f"start ({shown}); a resumed run keeps its settings: "
                                      "restore it, or start over with --force", file=str(p))
            if cfg.get("task") != self._marker["task"]:
                raise CheckpointError(f"says task {cfg.get('task')!r}, the run's record "
                                      f"{self._marker['task']!r}", file=str(p))
        task = cfg.pop("task", None)
        if task is not None:
            self.task = str(task)
        return cfg


def _refuse_foreign(p: Path, kind: str, force: bool, held: bool = False) -> None:
    """A non-empty folder without spinnq's marker is never written into; with the lock
    held (`held`), a spinnq folder needs `force` (a run) to be started over."""
    if not p.is_dir():
        return
    others = [c.name for c in p.iterdir() if c.name not in (LOCK_NAME, MARKER)]
    m = read_marker(p)
    if m is None:
        if others:
            raise RunFolderError(f"not empty and not a spinnq {kind} folder; use another "
                                 "--out", file=str(p))
        return
    if m["spinnq"] != kind:
        raise RunFolderError(f"holds a spinnq {m['spinnq']}, not a {kind}; use another --out",
                             file=str(p))
    if held and others and not force:
        raise RunFolderError(f"holds a run; continue it with --resume {p}, start it over with "
                             "--force, or use another --out", file=str(p))


def _version() -> str:
    """spinnq's version (the package is imported before any of its modules; read from
    there, not imported: the tasks layer imports nothing above it)."""
    return str(getattr(sys.modules.get("spinnq"), "__version__", "unknown"))


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)


def _lock_owner(fd: int) -> dict | None:
    try:
        d = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) and isinstance(d.get("pid"), int) else None


def held_run(path: str | Path) -> RunDir | None:
    """The spinnq folder this process holds (locked) that contains `path`, if any: the
    nearest folder with a marker (a task's run folder inside a sweep folder is its own)."""
    p = Path(path).resolve()
    for parent in p.parents:
        run = _HELD.get(str(parent))
        if run is not None:
            return run
        if (parent / MARKER).exists():
            return None
    return None


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
    run = held_run(path)  # inside a run folder: its hash recorded (checked on --resume)
    return run.write_bytes(path, buf.getvalue()) if run else atomic_write(path, buf.getvalue())


def load_checkpoint(path: str | Path, required: tuple[str, ...] = ()) -> dict:
    """Load with `weights_only=True`; any unreadable, foreign or incomplete file is a
    `CheckpointError` naming it."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError("no such checkpoint", file=str(p))
    run = held_run(p)
    if run is not None:  # a run's own checkpoint: the very file it wrote, or refused
        run.verify(p)
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
            rows = _read_csv(self.path)
            self.fields = rows[0] if rows and rows[0] else None
        self.tb = None
        if tensorboard:
            with contextlib.suppress(Exception):
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(Path(folder) / "tensorboard" / name))

    def truncate(self, step: int) -> None:
        """Drop rows logged after `step` (they are replayed by a resumed run)."""
        if not self.path.exists():
            return
        rows = _read_csv(self.path)
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
        rows = _read_csv(self.path)
        if len(rows) < 2:
            return {f: np.zeros(0) for f in (rows[0] if rows else [])}
        cols = list(zip(*rows[1:], strict=False))
        return {f: np.array([_number(x) if x != "" else np.nan for x in c])
                for f, c in zip(rows[0], cols, strict=False)}

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _read_csv(path: Path) -> list[list[str]]:
    """A log spinnq wrote, read back like user input: a binary, foreign or unreadable file
    is a `CheckpointError` naming it (never a UnicodeDecodeError)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CheckpointError(f"not a readable log ({type(e).__name__})", file=str(path)) from None
    if rows and (not rows[0] or rows[0][0] != "step"):
        raise CheckpointError("not a spinnq log (its first column is not 'step')",
                              file=str(path))
    return rows


def check_log(path: str | Path) -> Path:
    """A run's log CSV, checked before a report plots it."""
    if Path(path).exists():
        for i, row in enumerate(_read_csv(Path(path))[1:], start=2):
            try:
                [float(x) for x in row if x != ""]
            except ValueError:
                raise CheckpointError(f"line {i} is not numbers", file=str(path)) from None
    return Path(path)


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
