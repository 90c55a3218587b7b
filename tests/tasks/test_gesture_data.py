"""Gesture data: the synthetic generator, the event transforms (equal to tonic's), the frame
cache, and the DVS128 loader on a small folder written in tonic's real layout and format."""

from __future__ import annotations

import numpy as np
import pytest

from spinnq.errors import InputError
from spinnq.tasks.gesture.data import (
    dataset_root,
    real_frames,
    synthetic_frames,
    write_dvs_layout,
)
from spinnq.tasks.gesture.synthetic import (
    CLASSES,
    EVENT_DTYPE,
    SENSOR,
    SynthConfig,
    generate_sample,
    synthetic_split,
)
from spinnq.tasks.gesture.transforms import (
    FrameConfig,
    denoise,
    downsample,
    events_to_frames,
    to_frames,
)

SMALL = SynthConfig(duration_ms=120)
FC = FrameConfig(steps=6, bin_ms=20)


# ------------------------------------------------------------------------------ generator
def test_generator_is_deterministic_and_seed_sensitive():
    a, b = generate_sample(3, 42, SMALL), generate_sample(3, 42, SMALL)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, generate_sample(3, 43, SMALL))


def test_events_have_tonics_layout_and_stay_on_the_sensor():
    ev = generate_sample(0, 1, SMALL)
    assert ev.dtype == EVENT_DTYPE and ev.dtype.names == ("x", "y", "p", "t")
    assert len(ev) > 100
    assert ev["x"].min() >= 0 and ev["x"].max() < SENSOR[0]
    assert ev["y"].min() >= 0 and ev["y"].max() < SENSOR[1]
    assert np.all(np.diff(ev["t"]) >= 0)  # time-sorted, microseconds
    assert ev["t"].max() <= SMALL.duration_ms * 1000
    assert ev["p"].any() and (~ev["p"]).any()  # both polarities


def test_every_class_moves_differently():
    """The mean event position over time differs between classes (not all the same motion)."""
    tracks = []
    for label in range(len(CLASSES)):
        ev = generate_sample(label, 7, SynthConfig(duration_ms=300, noise_hz=(0.0, 1.0)))
        tracks.append((ev["x"].mean(), ev["y"].mean(), ev["x"].std(), ev["y"].std()))
    tracks = np.round(np.array(tracks), 1)
    assert len({tuple(t) for t in tracks}) == len(CLASSES)


def test_clockwise_and_counter_clockwise_are_mirrored_in_time():
    """Right arm cw vs ccw: the hand's angular velocity around the circle has opposite sign."""
    def turn(label):
        ev = generate_sample(label, 5, SynthConfig(duration_ms=400, noise_hz=(0.0, 1.0),
                                                   torso_sway=0.0, pos_jitter=0.0))
        sel = ev["x"] < 64  # the moving hand is on the image's left (the person's right)
        x, y, t = ev["x"][sel].astype(float), ev["y"][sel].astype(float), ev["t"][sel]
        bins = np.digitize(t, np.linspace(0, 400_000, 41))
        cx = np.array([x[bins == b].mean() for b in np.unique(bins)])
        cy = np.array([y[bins == b].mean() for b in np.unique(bins)])
        ang = np.unwrap(np.arctan2(cy - cy.mean(), cx - cx.mean()))
        return np.sign(ang[-1] - ang[0])
    assert turn(3) == -turn(4) != 0


def test_splits_are_balanced_and_disjoint():
    ev_a, y_a = synthetic_split("train", 22, 0, SMALL)
    ev_b, _ = synthetic_split("test", 22, 0, SMALL)
    assert np.bincount(y_a).tolist() == [2] * 11
    assert not any(np.array_equal(a, b) for a, b in zip(ev_a, ev_b, strict=True))


def test_bad_label_is_an_input_error():
    with pytest.raises(InputError, match="0..10"):
        generate_sample(11, 0)


# ----------------------------------------------------------------------------- transforms
@pytest.mark.parametrize("label", [0, 4, 10])
def test_transforms_equal_tonics(label):
    import tonic
    import tonic.transforms as T
    ev = generate_sample(label, 11, SMALL)
    d = denoise(ev, 10_000)
    assert np.array_equal(d, T.Denoise(filter_time=10_000)(ev))
    assert 0 < len(d) < len(ev)
    ds = downsample(d, 0.25)
    assert np.array_equal(ds, T.Downsample(spatial_factor=0.25)(d))
    ft = T.ToFrame(sensor_size=(32, 32, 2), time_window=20_000)(ds)
    f = to_frames(ds, 32, 20_000, len(ft))
    assert np.array_equal(f, ft)
    assert tonic is not None


def test_frames_are_binary_capped_and_padded():
    ev = generate_sample(1, 3, SMALL)
    f = events_to_frames(ev, FrameConfig(steps=10, bin_ms=20))
    assert f.shape == (10, 2, 32, 32) and f.dtype == np.uint8
    assert set(np.unique(f)) <= {0, 1} and f[:5].sum() > 0
    assert f[7:].sum() == 0  # 120 ms of data = 6 bins; the rest is zero padding
    short = events_to_frames(ev, FrameConfig(steps=2, bin_ms=20))
    assert np.array_equal(short, f[:2])


def test_frame_config_refuses_bad_sizes():
    with pytest.raises(InputError):
        FrameConfig(size=30)
    with pytest.raises(InputError):
        FrameConfig(steps=0)


def test_synthetic_frames_are_cached_on_disk(tmp_path):
    a = synthetic_frames("val", 11, 0, FC, SMALL, tmp_path)
    files = list(tmp_path.glob("gesture-synth-val-*.npz"))
    assert len(files) == 1 and a.x.shape == (11, 6, 2, 32, 32)
    b = synthetic_frames("val", 11, 0, FC, SMALL, tmp_path)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    files[0].write_bytes(b"garbage")  # a damaged cache is rebuilt, not trusted
    c = synthetic_frames("val", 11, 0, FC, SMALL, tmp_path)
    assert np.array_equal(a.x, c.x)


# ------------------------------------------------------------------- real DVS128 layout
def write_dvs_folder(root, users=(("train", 1, "fluorescent"), ("train", 2, "led"),
                                  ("test", 24, "natural")), labels=range(11), float_t=True):
    """DIR/DVSGesture/ibmGesture{Train,Test}/userNN_<light>/<label>.npy: (N, 4) x, y, p, t[ms],
    exactly what tonic 1.7's DVSGesture reads (it multiplies column 3 by 1000)."""
    write_dvs_layout(root, [(split, user, light, label,
                             generate_sample(label, 100 * i + label, SMALL))
                            for i, (split, user, light) in enumerate(users) for label in labels],
                     float_t)
    return root


@pytest.mark.parametrize("float_t", [True, False])
def test_real_loader_reads_tonics_layout(tmp_path, float_t):
    write_dvs_folder(tmp_path, float_t=float_t)
    tr = real_frames(tmp_path, "train", FC, None)
    va = real_frames(tmp_path, "val", FC, None)
    te = real_frames(tmp_path / "DVSGesture", "test", FC, None)  # the folder itself works too
    assert len(tr) == 11 and len(va) == 11 and len(te) == 11  # user 2 held out for val
    assert sorted(te.y.tolist()) == list(range(11))
    assert te.x.shape == (11, 6, 2, 32, 32) and te.x.sum() > 0
    if float_t:  # t in ms as floats: frames equal the synthetic recording's own frames
        ev = generate_sample(int(te.y[0]), 200 + int(te.y[0]), SMALL)
        ev["t"] = (ev["t"] / 1000.0 * 1000).astype(np.int64)  # tonic's ms -> us, truncated
        assert np.array_equal(te.x[0], events_to_frames(ev, FC))


def test_real_loader_caches_and_never_downloads(tmp_path, monkeypatch):
    import tonic
    write_dvs_folder(tmp_path, users=(("train", 1, "led"), ("test", 2, "led")), labels=[0, 1])

    def no_download(self):
        raise AssertionError("tonic tried to download")
    monkeypatch.setattr(tonic.datasets.DVSGesture, "download", no_download)
    a = real_frames(tmp_path, "test", FC, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("gesture-dvs-test-*.npz"))) == 1
    b = real_frames(tmp_path, "test", FC, tmp_path / "cache")
    assert np.array_equal(a.x, b.x)


def test_missing_or_partial_folder_names_what_is_missing(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        dataset_root(tmp_path / "nope")
    with pytest.raises(InputError, match="no DVSGesture/ folder"):
        dataset_root(tmp_path)
    write_dvs_folder(tmp_path, users=(("train", 1, "led"),), labels=[0])
    with pytest.raises(InputError, match="ibmGestureTest"):
        dataset_root(tmp_path)
    (tmp_path / "DVSGesture" / "ibmGestureTest" / "user03_led").mkdir(parents=True)
    with pytest.raises(InputError, match=r"<label>\.npy"):
        dataset_root(tmp_path)
    (tmp_path / "DVSGesture" / "ibmGestureTest" / "bob").mkdir()
    with pytest.raises(InputError, match="userNN_<lighting>"):
        dataset_root(tmp_path)
