"""spinnq.files: every output is checked up front and written atomically; a failure is one
OutputError naming the path and leaves nothing behind."""

import os

import numpy as np
import pytest

from spinnq.errors import OutputError, SpinnqError
from spinnq.files import atomic_path, atomic_write, check_output, save_npz, write_json


def _tree(p):
    return sorted(str(x.relative_to(p)) for x in p.rglob("*"))


@pytest.mark.parametrize("kind, make, message", [
    ("file", "dir", "is a folder"),
    ("dir", "file", "must be a folder"),
    ("file", "", "is empty"),
    ("file", "under_file", "is a file, not a folder"),
])
def test_check_output_refuses_unusable_paths_and_touches_nothing(tmp_path, kind, make,
                                                                 message):
    target = tmp_path / "x"
    if make == "dir":
        target.mkdir()
    elif make == "file":
        target.write_text("keep")
    elif make == "under_file":
        (tmp_path / "f").write_text("keep")
        target = tmp_path / "f" / "sub" / "out.npz"
    elif make == "":
        target = ""
    before = _tree(tmp_path)
    with pytest.raises(OutputError, match=message):
        check_output(target, kind)
    assert _tree(tmp_path) == before


def test_check_output_refuses_proc_before_any_work():
    with pytest.raises(OutputError, match="cannot write in /proc"):
        check_output("/proc/x", "file")
    with pytest.raises(OutputError, match="/proc"):
        check_output("/proc/x/run", "dir")


def test_check_output_passes_a_new_nested_file_without_making_folders(tmp_path):
    p = tmp_path / "a" / "b" / "c.npz"
    assert check_output(p) == p and not (tmp_path / "a").exists()


def test_atomic_write_failure_leaves_no_temp_and_no_new_folders(tmp_path):
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o500)
    try:
        if os.access(tmp_path / "ro", os.W_OK) and os.geteuid() == 0:
            # root ignores permissions: make the failure come from the content instead
            with pytest.raises(ZeroDivisionError), atomic_path(tmp_path / "ro" / "new" / "x"):
                raise ZeroDivisionError
        else:
            with pytest.raises(OutputError, match="x.json"):
                write_json(tmp_path / "ro" / "new" / "x.json", {"a": 1})
    finally:
        os.chmod(tmp_path / "ro", 0o700)
    assert _tree(tmp_path) == ["ro"]


def test_a_failing_writer_keeps_the_old_file(tmp_path):
    p = tmp_path / "out.npz"
    save_npz(p, {"a": np.arange(3)})
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert np.array_equal(np.load(p)["a"], np.arange(3)) and _tree(tmp_path) == ["out.npz"]


def test_writing_onto_a_folder_is_one_error_naming_it(tmp_path):
    (tmp_path / "d").mkdir()
    for fn in (lambda: atomic_write(tmp_path / "d", b"x"),
               lambda: save_npz(tmp_path / "d", {"a": np.zeros(1)})):
        with pytest.raises(SpinnqError, match=str(tmp_path / "d")):
            fn()
    assert _tree(tmp_path) == ["d"]


def test_write_json_converts_numpy_and_nan(tmp_path):
    p = write_json(tmp_path / "a.json", {"x": np.float32(1.5), "n": float("nan"),
                                         "arr": np.arange(2), "t": (1, 2)})
    assert p.read_text() == ('{\n  "arr": [\n    0,\n    1\n  ],\n  "n": null,\n  "t": [\n'
                             '    1,\n    2\n  ],\n  "x": 1.5\n}\n')
