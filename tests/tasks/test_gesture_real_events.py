"""Real event recordings (Prophesee Gen4 and Gen3 cameras, cut from faery 0.7.1's source
archive: tests/data/dvs-real, LGPL-3.0, unlabelled) through the DVS128 Gesture loader, the
frame binning and `spinnq run gesture --data-dir` end to end. The file names are labels
only because the layout needs them: no accuracy is claimed on these."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spinnq.tasks.gesture.data import dataset_root, real_frames
from spinnq.tasks.gesture.transforms import (
    FrameConfig,
    denoise,
    downsample,
    events_to_frames,
    to_frames,
)

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "dvs-real"
MANIFEST = json.loads((FIXTURE / "manifest.json").read_text())
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_fixture_files_are_small_real_recordings_in_tonics_layout():
    total = 0
    for m in MANIFEST:
        arr = np.load(FIXTURE / m["file"])
        total += arr.nbytes
        assert arr.shape == (m["events"], 4) and arr.dtype == np.float32
        x, y, p, t = arr.T
        assert x.min() >= 0 and x.max() <= 127 and y.min() >= 0 and y.max() <= 127
        assert set(np.unique(p)) == {0.0, 1.0}  # both polarities
        assert np.all(np.diff(t) >= 0) and t[0] >= 0  # ms, time-sorted
    assert total < 1.2e6


def test_loader_reads_the_real_recordings():
    """Splits as the loader defines them: user02 is the held-out validation user."""
    cfg = FrameConfig(steps=12, bin_ms=20.0)
    assert dataset_root(FIXTURE).name == "DVSGesture"
    sizes = {}
    for split in ("train", "val", "test"):
        f = real_frames(FIXTURE, split, cfg, cache_dir=None)
        assert f.x.shape[1:] == (12, 2, 32, 32) and f.x.dtype == np.uint8
        assert all(f.x[i].sum() > 0 for i in range(len(f))), split  # every recording shows
        sizes[split] = len(f)
    assert sizes == {"train": 2, "val": 1, "test": 2}


@pytest.mark.parametrize("m", MANIFEST, ids=lambda m: Path(m["file"]).stem)
def test_frame_binning_equals_tonics_on_real_events(m):
    import tonic.transforms as T
    from tonic.io import make_structured_array

    arr = np.load(FIXTURE / m["file"]).astype(np.float64)
    ev = make_structured_array(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3] * 1000,
                               dtype=np.dtype([("x", "<i2"), ("y", "<i2"), ("p", "?"),
                                               ("t", "<i8")]))
    d = denoise(ev, 10_000)
    assert np.array_equal(d, T.Denoise(filter_time=10_000)(ev))
    assert 0 < len(d) < len(ev)  # real sensor noise is removed, events remain
    ds = downsample(d, 0.25)
    assert np.array_equal(ds, T.Downsample(spatial_factor=0.25)(d))
    ft = T.ToFrame(sensor_size=(32, 32, 2), time_window=20_000)(ds)
    assert np.array_equal(to_frames(ds, 32, 20_000, len(ft)), ft)
    f = events_to_frames(ev, FrameConfig(steps=len(ft), bin_ms=20.0))
    assert np.array_equal(f, np.minimum(ft, 1))


def test_quick_run_on_the_real_recordings(tmp_path):
    """`spinnq run gesture --quick --data-dir tests/data/dvs-real`: every stage runs on real
    event statistics and the chip's integers equal the QAT model's (labels are arbitrary)."""
    from spinnq.cli.run import RunOptions
    from spinnq.tasks.gesture.runner import run_task

    sets = {"cache_dir": "", "qat_layers": "spinnq", "frames.steps": "6", "n_test": "11",
            "percentiles": "p99.9,max", "plots": "false", "baseline": "false"}
    rep = run_task(RunOptions("gesture", quick=True, out=tmp_path / "run", quiet=True,
                              overrides=sets, data_dir=FIXTURE))
    assert rep["data"] == {"source": str(FIXTURE), "train": 2, "val": 1, "test": 2}
    assert rep["qat"]["integers_equal_on_chip"]["equal"] is True
    assert (tmp_path / "run" / "qsnn_qat.nir").exists()
    assert rep["chip"]["pes"] > 0 and rep["chip"]["energy_j_seed_point"] > 0
