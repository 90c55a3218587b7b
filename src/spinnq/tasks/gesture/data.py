"""Gesture data as frames: the synthetic default, or DVS128 Gesture read through tonic.

Frames are made once and cached on disk (bit-packed .npz, written atomically), keyed by
everything that shapes them (source, split, sizes, seeds, generator and frame settings), so
the second run of a pipeline, QAT after PTQ, or a resumed run never recomputes them.

Real data: tonic (GPL-3.0) is an optional extra (`pip install spinnq[dvs]`) imported only here.
Its `DVSGesture` downloads when files are missing; spinnq never downloads, so the folder is
checked first and every missing piece is named. Layout (tonic 1.7, `save_to=DIR`):

    DIR/DVSGesture/ibmGestureTrain/user01_fluorescent/0.npy ... 10.npy
    DIR/DVSGesture/ibmGestureTest/user24_led/...
    each .npy: (N, 4) numbers, columns x, y, p, t (t in ms; tonic multiplies it by 1000)
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinnq.errors import InputError
from spinnq.files import atomic_write, check_input, save_npy
from spinnq.limits import check_memory
from spinnq.tasks.gesture.synthetic import (
    CLASSES,
    GENERATOR_VERSION,
    SynthConfig,
    synthetic_split,
)
from spinnq.tasks.gesture.transforms import FrameConfig, events_to_frames

SPLIT_FOLDERS = {"train": "ibmGestureTrain", "test": "ibmGestureTest"}
DATASET_FOLDER = "DVSGesture"


@dataclass
class Frames:
    """One split: x (N, T, 2, H, W) uint8 spikes, y (N,) labels."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, n: int | None) -> Frames:
        return self if n is None or n >= len(self) else Frames(self.x[:n], self.y[:n])


# ------------------------------------------------------------------------------- the cache
def _key(parts: dict) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _load_cached(path: Path, shape_tail: tuple) -> Frames | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            n, t = int(z["n"]), int(z["t"])
            bits = np.unpackbits(z["bits"])[: n * t * int(np.prod(shape_tail))]
            return Frames(bits.reshape(n, t, *shape_tail).astype(np.uint8), z["y"].copy())
    except Exception:  # a foreign or damaged cache file is rebuilt, never trusted
        return None


def _save_cached(path: Path, f: Frames) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, bits=np.packbits(f.x.astype(bool)), y=f.y, n=len(f),
                        t=f.x.shape[1])
    atomic_write(path, buf.getvalue())


FRAME_COPIES = 2  # the frames and the copy the cache or a training batch makes of them


def check_frames(n: int, fcfg: FrameConfig) -> None:
    """`n` recordings as frames against the memory budget, before any is generated or read
    (steps and size at their maxima ask for many GiB at once)."""
    check_memory(n * fcfg.steps * 2 * fcfg.size * fcfg.size * FRAME_COPIES,
                 f"{n:,} recordings as {fcfg.steps} frames of 2x{fcfg.size}x{fcfg.size}",
                 hint="lower the steps, the frame size or the number of samples")


def _frames(events: list[np.ndarray], fcfg: FrameConfig, progress_cb=None) -> np.ndarray:
    out = np.zeros((len(events), fcfg.steps, 2, fcfg.size, fcfg.size), dtype=np.uint8)
    for i, ev in enumerate(events):
        out[i] = events_to_frames(ev, fcfg)
        if progress_cb:
            progress_cb()
    return out


# ------------------------------------------------------------------------------- synthetic
def synthetic_frames(split: str, n: int, seed: int, fcfg: FrameConfig, scfg: SynthConfig,
                     cache_dir: Path | None) -> Frames:
    """Synthetic recordings of one split as frames (cached when `cache_dir` is given)."""
    if not fcfg.binary:
        raise InputError("the frame cache stores spikes: binary frames only")
    key = _key({"src": "synthetic", "version": GENERATOR_VERSION, "split": split, "n": n,
                "seed": seed, "frames": dataclasses.asdict(fcfg),
                "synth": dataclasses.asdict(scfg)})
    path = cache_dir / f"gesture-synth-{split}-{key}.npz" if cache_dir else None
    tail = (2, fcfg.size, fcfg.size)
    if path and (hit := _load_cached(path, tail)) is not None:
        return hit
    check_frames(n, fcfg)
    events, labels = synthetic_split(split, n, seed, scfg)
    f = Frames(_frames(events, fcfg), labels.astype(np.int64))
    if path:
        _save_cached(path, f)
    return f


# ------------------------------------------------------------------------------ real data
def dataset_root(data_dir: str | Path) -> Path:
    """The `DVSGesture` folder: `data_dir` itself or `data_dir/DVSGesture`, with both split
    folders holding user folders of .npy recordings; otherwise an InputError naming what is
    missing and where it should be."""
    d = Path(data_dir).expanduser()
    if not d.exists():
        raise InputError("no such folder (expected the folder holding DVSGesture/, as "
                         "tonic's save_to, or the DVSGesture folder itself)", file=str(d))
    root = d if d.name == DATASET_FOLDER or (d / SPLIT_FOLDERS["train"]).exists() \
        else d / DATASET_FOLDER
    if not root.is_dir():
        raise InputError(f"no {DATASET_FOLDER}/ folder inside (expected "
                         f"{root}/{SPLIT_FOLDERS['train']}/userNN_<lighting>/<label>.npy; "
                         f"spinnq never downloads: fetch ibmGestureTrain.tar.gz and "
                         f"ibmGestureTest.tar.gz and extract them there)", file=str(d))
    missing = []
    for split, folder in SPLIT_FOLDERS.items():
        sub = root / folder
        if not sub.is_dir():
            missing.append(f"{sub} (the {split} split)")
            continue
        users = [u for u in sub.iterdir() if u.is_dir()]
        if not users:
            missing.append(f"{sub}/userNN_<lighting>/ folders")
            continue
        bad = [u.name for u in users if not _user_ok(u.name)]
        if bad:
            raise InputError(f"folder names {bad[:3]} are not 'userNN_<lighting>' as tonic "
                             f"expects", file=str(sub))
        if not any(p.suffix == ".npy" for u in users for p in u.iterdir()):
            missing.append(f"{sub}/userNN_<lighting>/<label>.npy files")
    if missing:
        raise InputError("DVS128 Gesture is incomplete, missing: " + "; ".join(missing),
                         file=str(root))
    return root


def _user_ok(name: str) -> bool:
    head, sep, _ = name.partition("_")
    return bool(sep) and head.startswith("user") and head[4:].isdigit()


def _tonic_dataset(root: Path, split: str):
    """tonic's own DVSGesture reader, with its download switched off (the folder is checked
    by `dataset_root`; tonic's check also wants the .tar.gz archives, which may be gone)."""
    try:
        import tonic
    except ImportError:
        raise InputError("real DVS128 Gesture data needs tonic (GPL-3.0, optional): "
                         "pip install 'spinnq[dvs]'") from None

    class _LocalDVSGesture(tonic.datasets.DVSGesture):
        def _check_exists(self) -> bool:
            return True

        def download(self) -> None:  # never reached: _check_exists is True
            raise InputError("spinnq never downloads data", file=str(root))

    _LocalDVSGesture.__name__ = "DVSGesture"  # tonic finds its folder by the class name
    return _LocalDVSGesture(save_to=str(root.parent), train=(split == "train"))


def real_frames(data_dir: str | Path, split: str, fcfg: FrameConfig,
                cache_dir: Path | None, limit: int | None = None,
                val_fraction: float = 0.1) -> Frames:
    """Frames of DVS128 Gesture; 'val' is held-out users of the train split (the last
    ~`val_fraction` of user numbers), 'train' the rest, 'test' tonic's test split."""
    root = dataset_root(data_dir)
    ds = _tonic_dataset(root, "test" if split == "test" else "train")
    if len(ds) == 0:
        raise InputError("no recordings found", file=str(root))
    idx = np.arange(len(ds))
    if split != "test":
        users = np.asarray(ds.users)
        uniq = np.unique(users)
        if len(uniq) >= 2:
            n_val = max(1, int(round(len(uniq) * val_fraction)))
            val_users = set(uniq[-n_val:].tolist())
            is_val = np.array([u in val_users for u in users])
        else:  # one user only: every 10th recording
            is_val = (idx % 10) == 9
        idx = idx[is_val] if split == "val" else idx[~is_val]
    if limit is not None:
        idx = idx[:limit]
    files = [str(Path(ds.data[i]).relative_to(root)) for i in idx]
    key = _key({"src": "dvs128", "root": str(root.resolve()), "split": split, "files": files,
                "frames": dataclasses.asdict(fcfg)})
    path = cache_dir / f"gesture-dvs-{split}-{key}.npz" if cache_dir else None
    tail = (2, fcfg.size, fcfg.size)
    if path and (hit := _load_cached(path, tail)) is not None:
        return hit
    check_frames(len(idx), fcfg)
    events, labels = [], []
    sensor = tuple(getattr(ds, "sensor_size", (128, 128, 2)))
    for i in idx:
        check_recording(ds.data[i], sensor)  # the file as stored, before tonic casts it
        try:
            ev, y = ds[int(i)]
        except Exception as e:
            raise InputError(f"cannot read recording ({type(e).__name__}: {e}); expected an "
                             f"(N, 4) array x, y, p, t", file=str(ds.data[i])) from None
        if not 0 <= int(y) < len(CLASSES):
            raise InputError(f"label {y} outside 0..{len(CLASSES) - 1}", file=str(ds.data[i]))
        check_events(ev, sensor, str(ds.data[i]))
        events.append(ev)
        labels.append(int(y))
    f = Frames(_frames(events, fcfg), np.asarray(labels, dtype=np.int64))
    if path:
        _save_cached(path, f)
    return f


def check_events(ev: np.ndarray, sensor: tuple = (128, 128, 2), file: str | None = None
                 ) -> None:
    """A recording as the frame transforms need it: fields x, y, p, t; finite; x, y on the
    sensor (W, H); polarity 0 or 1; timestamps >= 0 and non-decreasing. Anything else would
    index out of the frame (an IndexError) or train on garbage: InputError naming the file."""
    names = getattr(ev.dtype, "names", None) or ()
    if not {"x", "y", "p", "t"} <= set(names):
        raise InputError(f"events need fields x, y, p, t; got {list(names) or ev.dtype}",
                         file=file)
    if len(ev) == 0:
        return
    w, h = int(sensor[0]), int(sensor[1])
    for f, hi in (("x", w), ("y", h), ("p", 2), ("t", None)):
        a = ev[f]
        if a.dtype.kind not in "biuf":
            raise InputError(f"event field '{f}' must be numbers, got {a.dtype}", file=file)
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise InputError(f"event field '{f}' has NaN or infinite values", file=file)
        lo_v, hi_v = a.min(), a.max()
        if lo_v < 0 or (hi is not None and hi_v >= hi):
            bad = lo_v if lo_v < 0 else hi_v
            rng = f"0..{hi - 1}" if hi is not None else ">= 0"
            raise InputError(f"event field '{f}' has value {bad} outside {rng}"
                             + (f" (sensor {w}x{h})" if f in "xy" else ""), file=file)
    if np.any(np.diff(ev["t"]) < 0):
        raise InputError("event timestamps decrease (they must be in time order)", file=file)


def check_recording(path: str | Path, sensor: tuple = (128, 128, 2)) -> None:
    """A DVS128 Gesture .npy as stored, before tonic reads it (tonic casts columns to
    integers and booleans, so NaN, -1 or polarity 5 would arrive as valid-looking
    numbers): a regular file holding an (N, 4) numeric array x, y, p, t[ms] that passes
    `check_events`. InputError naming the file."""
    p = check_input(path, "--data-dir recording")  # a FIFO would hang the read
    try:
        a = np.load(p, allow_pickle=False, mmap_mode="r")
    except Exception:
        raise InputError("not a .npy array of events (N, 4): x, y, p, t", file=str(p)) from None
    if a.ndim != 2 or a.shape[1] < 4 or a.dtype.kind not in "biuf":
        raise InputError(f"expected an (N, 4) numeric array x, y, p, t; got shape {a.shape} "
                         f"dtype {a.dtype}", file=str(p))
    cols = [np.asarray(a[:, k]) for k in range(4)]
    check_events(np.rec.fromarrays(cols, names="x,y,p,t"), sensor, str(p))


def write_dvs_layout(root: str | Path, recordings, float_t: bool = True) -> Path:
    """Write event recordings in tonic's DVSGesture layout and file format under
    `root/DVSGesture/` (e.g. synthetic recordings, to try `--data-dir`; the tests' fixture).
    `recordings`: (split 'train'|'test', user number, lighting, label, structured events)."""
    base = Path(root) / DATASET_FOLDER
    for split, user, light, label, ev in recordings:
        d = base / SPLIT_FOLDERS[split] / f"user{int(user):02d}_{light}"
        arr = np.column_stack([ev["x"], ev["y"], ev["p"], ev["t"] / 1000.0])  # t in ms
        save_npy(d / f"{int(label)}.npy", arr if float_t else arr.astype(np.int64))
    return base
