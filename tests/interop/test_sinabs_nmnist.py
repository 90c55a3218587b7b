"""The NIR paper's N-MNIST CNN (`cnn_sinabs.nir`, a Sinabs export) with `--convention
sinabs`, on 34 x 34 crops of real event recordings (tests/data/dvs-real; no N-MNIST here):
spinnq's float reference equals Sinabs's own reading of the file (`sinabs.from_nir`) spike
for spike, multi-spike steps included, and the graph runs on the emulated chip with both
differences Sinabs has from the chip named. benchmarks/real_events.py measures the chip
against the float on all windows (README)."""

from __future__ import annotations

import json
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

sinabs = pytest.importorskip("sinabs", reason="pip install --no-deps sinabs==3.1.3 (Makefile)")

from spinnq.graph import SimConfig, read_graph, simulate  # noqa: E402
from spinnq.s2 import S2Config, compile, emulate  # noqa: E402
from spinnq.tasks.gesture.transforms import FrameConfig, events_to_frames  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
DATA = Path(__file__).resolve().parents[1] / "data"
T, BIN_MS = 30, 10.0


def crops(n: int) -> np.ndarray:
    """(n, T, 2, 34, 34): the first 300 ms of n recordings, each cropped to its busiest
    34 x 34 window."""
    fc = FrameConfig(size=128, sensor=128, bin_ms=BIN_MS, steps=T, denoise_us=0)
    out = []
    for m in json.loads((DATA / "dvs-real" / "manifest.json").read_text())[:n]:
        a = np.load(DATA / "dvs-real" / m["file"]).astype(np.float64)
        ev = np.zeros(len(a), [("x", "<i2"), ("y", "<i2"), ("p", "?"), ("t", "<i8")])
        ev["x"], ev["y"], ev["p"], ev["t"] = a[:, 0], a[:, 1], a[:, 2] > 0, a[:, 3] * 1000
        h = np.zeros((128, 128))
        np.add.at(h, (ev["y"], ev["x"]), 1)
        c = np.cumsum(np.cumsum(np.pad(h, ((1, 0), (1, 0))), 0), 1)
        box = c[34:, 34:] - c[:-34, 34:] - c[34:, :-34] + c[:-34, :-34]
        y0, x0 = np.unravel_index(box.argmax(), box.shape)
        out.append(events_to_frames(ev, fc)[:, :, y0:y0 + 34, x0:x0 + 34])
    return np.stack(out).astype(np.float32)


@pytest.fixture(scope="module")
def cnn():
    g = read_graph(DATA / "nir-paper" / "cnn_sinabs.nir")
    layers = [k for k in g.order if isinstance(g.nodes[k], nir.IF)]
    return g, layers


def test_float_reference_equals_sinabs_own_reading_on_real_events(cnn):
    g, layers = cnn
    x = crops(3)
    b = len(x)
    net = sinabs.from_nir(nir.read(str(DATA / "nir-paper" / "cnn_sinabs.nir")), batch_size=b)
    ref: dict[str, torch.Tensor] = {}
    for k in layers:
        getattr(net, k).register_forward_hook(
            lambda m, i, o, k=k: ref.__setitem__(k, o.reshape(b, T, *o.shape[1:])))
    with torch.no_grad():
        net(torch.from_numpy(x).reshape(b * T, 2, 34, 34))
    tr = simulate(g, x, SimConfig(dt=1.0, reset="subtract", convention="sinabs",
                                  record=tuple(layers)))
    assert x.sum() > 1000 and all(ref[k].sum() > 0 for k in layers)
    assert max(float(ref[k].max()) for k in layers) >= 2  # MultiSpike steps occur
    assert {k: int((tr.spikes[k] != ref[k]).sum()) for k in layers} == dict.fromkeys(layers, 0)


def test_runs_on_the_chip_with_the_differences_named(cnn):
    g, layers = cnn
    x = crops(2)
    prog = compile(g, S2Config(dt=1.0, reset="subtract", convention="sinabs"))
    notes = " ".join(prog.notes)
    assert "MultiSpike" in notes and "min_v_mem" in notes
    # Sinabs fires at v >= v_th: the chip compares with the float32 just below NIR's threshold
    plain = compile(g, S2Config(dt=1.0, reset="subtract"))
    for k in layers:
        th = plain.populations[k].params["threshold"]
        assert np.array_equal(prog.populations[k].params["threshold"],
                              np.nextafter(th, np.float32(-np.inf))), k
    run = emulate(prog, x, record=[layers[-1]])
    assert run.spikes[layers[-1]].shape[:2] == (2, T + prog.depth)
    assert all(prog.populations[k].model == "lif_conv2d" for k in layers[:3])
