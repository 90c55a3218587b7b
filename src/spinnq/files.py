"""Every file spinnq writes goes through here: checked up front, written atomically.

Why one layer: a kill at any moment must leave the old complete file or the new one, a write
that fails must leave nothing behind (no `x.tmp.npz`, no half-made folder), and a bad output
path must be one line naming it *before* minutes of work, not a traceback at the end.

    from spinnq.files import check_output, atomic_write, atomic_path, write_json, save_npz

    check_output(out, "file", flag="--out")       # before any work: OutputError if unusable
    check_output(report_dir, "empty_dir", flag="--report")   # absent or empty
    check_outputs((out, "file", "--out"), inputs=[(graph, "GRAPH")])  # no output onto an input
    check_input(path, "--input")                  # a regular file (a FIFO would hang a read)
    atomic_write(path, b"..." or "...")          # temp file + fsync + os.replace
    write_json(path, obj)                        # dataclasses, numpy, tensors; NaN -> null
    save_npz(path, {"spikes/x": arr})            # compressed, atomic
    save_npy(path, arr)                          # one array, no pickles, atomic
    with atomic_path(path) as tmp:               # for libraries that write to a file name
        nir.write(str(tmp), graph)               # (HDF5 ...): renamed onto `path` on success

Errors are `OutputError`s (a `SpinnqError`: the CLI prints one line, exit 2) naming the path.

Special files: spinnq writes only regular files. An output path that is a character device
(/dev/null), a FIFO or a socket, or a symlink to one, is refused, never replaced. A symlink
to a regular file, or a dangling one, is written *through*: the new file replaces the link's
target (made in the target's folder, renamed there), and the link stays. A new file gets
the mode the umask gives (0666 & ~umask); a replaced file keeps its mode.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import stat
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from spinnq.errors import InputError, OutputError, SpinnqError


def _os_reason(e: OSError) -> str:
    """'permission denied' rather than '[Errno 13] Permission denied: /x'."""
    return (e.strerror or type(e).__name__).lower()


def _nearest_existing(p: Path) -> Path:
    p = p.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


Kind = Literal["file", "dir", "empty_dir"]
_SPECIAL = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
            (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def _special(mode: int) -> str | None:
    """What a non-regular, non-folder file is ('a FIFO (named pipe)'), else None."""
    for test, name in _SPECIAL:
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else "not a regular file"


def _target(p: Path) -> Path:
    """Where a write to `p` lands: symlinks followed (a dangling one to the path it names),
    so the file is made in the target's folder and the link stays a link."""
    return Path(os.path.realpath(p)) if os.path.islink(p) else p


def check_input(path: str | Path, flag: str, *, error: type[SpinnqError] = InputError) -> Path:
    """A path a command will read: it must exist and be a regular file. Checked with
    `os.stat` before any `open`: opening a FIFO blocks until a writer comes (forever), and a
    device can stream without end. Raises `error` (one line naming `flag` and the path)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise error("no such file", file=str(p)) from None
    except OSError as e:
        raise error(f"{flag}: cannot read ({_os_reason(e)})", file=str(p)) from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{flag} is a folder, not a file", file=str(p))
    what = _special(st.st_mode)
    if what:
        raise error(f"{flag} is {what}; spinnq reads regular files only", file=str(p))
    return p


def read_json_input(path: str | Path, what: str) -> Any:
    """A user's JSON file (a chip model, measurements): checked as an input (a regular file),
    then parsed; one line naming `what` and the file when it cannot be read or is not JSON."""
    p = check_input(path, what)
    try:
        return json.loads(p.read_text())
    except OSError as e:
        raise InputError(f"cannot read {what} ({_os_reason(e)})", file=str(p)) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{what} is not JSON: {e}", file=str(p)) from None


def _check_file_output(p: Path, flag: str) -> Path:
    """An output file: not a folder, not a special file (or a link to one), not a link loop.
    Returns the folder the file will be made in."""
    try:
        st = os.stat(p)  # follows symlinks
    except (FileNotFoundError, NotADirectoryError):
        st = None  # new, or a dangling symlink: written through to the path it names
    except OSError as e:
        raise OutputError(f"{flag}: cannot use this path ({_os_reason(e)})",
                          file=str(p)) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{flag} is a folder; give a file name", file=str(p))
    what = None if st is None else _special(st.st_mode)
    if what:
        raise OutputError(f"{flag} is {what}{' (through a symlink)' if p.is_symlink() else ''}"
                          "; spinnq writes regular files only and never replaces it",
                          file=str(p))
    return _target(p).parent


def check_output(path: str | Path | None, kind: Kind = "file", *,
                 flag: str = "--out") -> Path | None:
    """Refuse an output path that cannot work, before any work is done; touch nothing.

    `kind="file"`: a file to be (re)written: not '', not an existing folder or special file,
    its folder creatable and writable. `kind="dir"`: a folder to write into: not an existing
    file. `kind="empty_dir"`: a folder that is absent or empty (a report folder: spinnq never
    mixes its files with the user's). Writability is probed with a temp file in the nearest
    existing folder (then removed), which catches /proc, read-only mounts and missing
    permissions alike. None passes."""
    if path is None:
        return None
    if str(path).strip() == "" or (kind == "file" and str(path).strip() == "."):
        raise OutputError(f"{flag} is empty; give a path")  # typer turns '' into '.'
    p = Path(path)
    if kind == "file":
        folder = _check_file_output(p, flag)
    else:
        if p.exists() and not p.is_dir():
            raise OutputError(f"{flag} must be a folder, but this is a file", file=str(p))
        if kind == "empty_dir" and p.is_dir() and any(os.scandir(p)):
            raise OutputError(f"{flag} folder is not empty; give a new or empty folder "
                              "(spinnq never mixes its files with others)", file=str(p))
        folder = p
    base = _nearest_existing(folder)
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


def _same_file(a: Path, b: Path) -> bool:
    """The same file by name (symlinks resolved) or by inode (hard links, bind mounts)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _inside(child: Path, folder: Path) -> bool:
    c, f = Path(os.path.realpath(child)), Path(os.path.realpath(folder))
    return c != f and f in c.parents


def check_outputs(*outputs: tuple[str | Path | None, Kind, str],
                  inputs: tuple[tuple[str | Path | None, str], ...] | list = ()) -> None:
    """`check_output` for each (path, kind, flag) of one command, no two of them the same
    path (the second writer would find the first's file), no output file inside an output
    folder, and no output on any of the command's `inputs` ((path, flag) pairs: the graph,
    --input, --data ...): writing one would destroy what the command reads, silently.
    Inputs that exist are checked to be regular files (or folders) here too."""
    ins = [(Path(p), f) for p, f in inputs if p is not None and str(p) != ""]
    for p, f in ins:
        if os.path.exists(p) and not os.path.isdir(p):
            check_input(p, f)
    seen: list[tuple[Path, Kind, str]] = []
    for path, kind, flag in outputs:
        p = check_output(path, kind, flag=flag)
        if p is None:
            continue
        for q, in_flag in ins:
            if _same_file(p, q):
                raise OutputError(f"{flag} is the same file as {in_flag}, which this command "
                                  "reads: writing it would destroy it; give "
                                  f"{flag} another path", file=str(p))
        for q, k2, f2 in seen:
            if _same_file(p, q):
                raise OutputError(f"{f2} and {flag} are the same path; give each its own",
                                  file=str(p))
            for (a, ka, fa), (b, kb, fb) in (((p, kind, flag), (q, k2, f2)),
                                             ((q, k2, f2), (p, kind, flag))):
                if ka == "file" and kb != "file" and _inside(a, b):
                    raise OutputError(f"{fa} is inside the {fb} folder; give it a path "
                                      "outside", file=str(a))
        seen.append((p, kind, flag))


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


NAME_MAX = 255  # bytes in one file name (ext4, xfs, btrfs, tmpfs)


def _tmp_prefix(name: str) -> str:
    """'.NAME.' while the temporary name fits in NAME_MAX bytes (mkstemp adds 8 characters
    and '.tmp'), else a short fixed prefix: a valid 255-byte output name must still work."""
    prefix = f".{name}."
    return prefix if len(os.fsencode(prefix)) + 8 + 4 <= NAME_MAX else ".spinnq-out."


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (thread-safe)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _final_mode(target: Path) -> int:
    """A replaced file keeps its mode; a new one gets 0666 & ~umask (as `open` would)."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`'s target; on success it replaces the target, on any
    failure it and any folder made for it are removed. A special file (device, FIFO,
    socket, or a link to one) is never replaced: `OutputError`. OS errors become
    `OutputError`s naming `path`."""
    path = Path(path)
    if str(path).strip() in ("", "."):
        raise OutputError("empty output path")
    _check_file_output(path, "output")
    target = _target(path)
    made: list[Path] = []
    tmp: str | None = None
    try:
        made = _make_parents(target.parent)
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(target.name), suffix=".tmp",
                                   dir=target.parent)
        os.close(fd)
        yield Path(tmp)
        _check_file_output(path, "output")  # nothing special appeared meanwhile
        os.chmod(tmp, _final_mode(target))
        os.replace(tmp, target)
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


def npy_header(fh) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, Fortran order, dtype) from the start of an open .npy stream, reading only its
    header: what an array will take is known before it is loaded."""
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, fortran, dtype = read(fh)
    return tuple(int(n) for n in shape), bool(fortran), dtype


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
            shape, fortran, dtype = npy_header(fh)
            offset = fh.tell()
        nbytes = math.prod(shape) * dtype.itemsize
        if dtype.hasobject or offset - start + nbytes != info.file_size or nbytes == 0:
            return None
        arr = np.memmap(path, dtype=dtype, mode="c", offset=offset, shape=shape,
                        order="F" if fortran else "C")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, struct.error):
        return None
    return arr.view(np.ndarray)


__all__ = ["atomic_path", "atomic_write", "check_input", "check_output", "check_outputs",
           "jsonable", "map_npz", "npy_header", "save_npy", "save_npz", "write_json"]
