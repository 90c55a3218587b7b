"""Every file spinnq writes goes through here: checked up front, written atomically.

Why one layer: a kill at any moment must leave the old complete file or the new one, a write
that fails must leave nothing behind (no `x.tmp.npz`, no half-made folder), and a bad output
path must be one line naming it *before* minutes of work, not a traceback at the end.

    from spinnq.files import check_output, atomic_write, atomic_path, write_json, save_npz

    check_output(out, "file", flag="--out")       # before any work: OutputError if unusable
    check_output(report_dir, "dir", flag="--report")
    atomic_write(path, b"..." or "...")          # temp file + fsync + os.replace
    write_json(path, obj)                        # dataclasses, numpy, tensors; NaN -> null
    save_npz(path, {"spikes/x": arr})            # compressed, atomic
    save_npy(path, arr)                          # one array, no pickles, atomic
    with atomic_path(path) as tmp:               # for libraries that write to a file name
        nir.write(str(tmp), graph)               # (HDF5 ...): renamed onto `path` on success

Errors are `OutputError`s (a `SpinnqError`: the CLI prints one line, exit 2) naming the path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from spinnq.errors import OutputError


def _os_reason(e: OSError) -> str:
    """'permission denied' rather than '[Errno 13] Permission denied: /x'."""
    return (e.strerror or type(e).__name__).lower()


def _nearest_existing(p: Path) -> Path:
    p = p.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output(path: str | Path | None, kind: Literal["file", "dir"] = "file", *,
                 flag: str = "--out") -> Path | None:
    """Refuse an output path that cannot work, before any work is done; touch nothing.

    `kind="file"`: a file to be (re)written: not '', not an existing folder, its folder
    creatable and writable. `kind="dir"`: a folder to write into: not an existing file.
    Writability is probed with a temp file in the nearest existing folder (then removed),
    which catches /proc, read-only mounts and missing permissions alike. None passes."""
    if path is None:
        return None
    if str(path).strip() == "" or (kind == "file" and str(path).strip() == "."):
        raise OutputError(f"{flag} is empty; give a path")  # typer turns '' into '.'
    p = Path(path)
    if kind == "file" and p.is_dir():
        raise OutputError(f"{flag} is a folder; give a file name", file=str(p))
    if kind == "dir" and p.exists() and not p.is_dir():
        raise OutputError(f"{flag} must be a folder, but this is a file", file=str(p))
    base = _nearest_existing(p if kind == "dir" else p.parent)
    if not base.is_dir():
        raise OutputError(f"{flag}: {base} is a file, not a folder", file=str(p))
    try:
        fd, probe = tempfile.mkstemp(prefix=".spinnq-probe.", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{flag}: cannot write in {base} ({_os_reason(e)})",
                          file=str(p)) from None
    return p


def check_outputs(*outputs: tuple[str | Path | None, Literal["file", "dir"], str]) -> None:
    """`check_output` for each (path, kind, flag) of one command, and no two of them the same
    path: two outputs written to one place would leave one of them half-made (the second
    writer finds the first's file)."""
    seen: dict[Path, str] = {}
    for path, kind, flag in outputs:
        p = check_output(path, kind, flag=flag)
        if p is None:
            continue
        key = p.resolve()
        if key in seen:
            raise OutputError(f"{seen[key]} and {flag} are the same path; give each its own",
                              file=str(p))
        seen[key] = flag


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p, returning the folders it made (deepest last) so a failure can undo them."""
    made: list[Path] = []
    missing = []
    p = folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir()
        made.append(d)
    return made


def _undo(made: list[Path]) -> None:
    for d in reversed(made):
        with contextlib.suppress(OSError):
            d.rmdir()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success it replaces `path`, on any failure it and
    any folder made for it are removed. OS errors become `OutputError`s naming `path`."""
    path = Path(path)
    if str(path).strip() in ("", "."):
        raise OutputError("empty output path")
    if path.is_dir():
        raise OutputError("is a folder; cannot write a file here", file=str(path))
    made: list[Path] = []
    tmp: str | None = None
    try:
        made = _make_parents(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise OutputError(f"cannot write ({_os_reason(e)})", file=str(path)) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            _undo(made)


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write `data` to `path` through a temp file in the same folder, fsync, `os.replace`."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(raw)
        fh.flush()
        os.fsync(fh.fileno())
    return path


def jsonable(o: Any) -> Any:
    """Plain JSON values: dataclasses, sets, Paths, numpy scalars/arrays, tensors converted;
    NaN/inf become None (JSON has none: "unknown")."""
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return jsonable(dataclasses.asdict(o))
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, set | frozenset):
        return jsonable(sorted(o, key=str))
    if isinstance(o, list | tuple):
        return [jsonable(v) for v in o]
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "detach") and hasattr(o, "numpy"):  # a torch tensor (no torch import here)
        o = o.detach().cpu().numpy()
    if isinstance(o, np.ndarray):
        return jsonable(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def write_json(path: str | Path, obj: Any, *, sort_keys: bool = True) -> Path:
    """Atomic JSON (indent 2, newline at the end) of anything `jsonable` takes."""
    return atomic_write(path, json.dumps(jsonable(obj), indent=2, sort_keys=sort_keys,
                                         allow_nan=False) + "\n")


def save_npy(path: str | Path, array: np.ndarray) -> Path:
    """One array as .npy (no pickles), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(array), allow_pickle=False)
    return path


def save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write arrays atomically (a half-written result never replaces a complete one) as an
    .npz for `np.load`: integer/bool arrays (spikes) deflated, float arrays (voltages) stored,
    because deflating float32 noise costs seconds per 100 MB and saves little."""
    path = Path(path)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
        for name, a in arrays.items():
            a = np.asanyarray(a)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = (zipfile.ZIP_STORED if a.dtype.kind in "fc"
                                  else zipfile.ZIP_DEFLATED)
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, a, allow_pickle=False)
    return path


def map_npz(path: str | Path, key: str) -> np.ndarray | None:
    """Array `key` of an .npz mapped instead of read, when it is stored uncompressed
    (`np.savez`): a large data set costs no copy (copy-on-write: the file never changes).
    None where it cannot be mapped (deflated, encrypted, object dtype, another layout):
    read it with `np.load` then."""
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(f"{key}.npy")
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            return None
        with open(path, "rb") as fh:
            fh.seek(info.header_offset)
            local = fh.read(30)
            if len(local) < 30 or local[:4] != b"PK\x03\x04":
                return None
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            start = info.header_offset + 30 + name_len + extra_len
            fh.seek(start)
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(fh)
            offset = fh.tell()
        nbytes = math.prod(shape) * dtype.itemsize
        if dtype.hasobject or offset - start + nbytes != info.file_size or nbytes == 0:
            return None
        arr = np.memmap(path, dtype=dtype, mode="c", offset=offset, shape=shape,
                        order="F" if fortran else "C")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, struct.error):
        return None
    return arr.view(np.ndarray)


__all__ = ["atomic_path", "atomic_write", "check_output", "jsonable", "map_npz", "save_npy",
           "save_npz", "write_json"]
