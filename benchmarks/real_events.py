"""Real event recordings (tests/data/dvs-real: Prophesee cameras, faery 0.7.1, unlabelled)
through two networks, chip (emulated) against float. No accuracy: there are no labels.

    PYTHONPATH=src .venv/bin/spinnq run gesture --quick --out RUN_DIR --set plots=false \
        --set baseline=false
    PYTHONPATH=src .venv/bin/python benchmarks/real_events.py --run RUN_DIR [--out JSON]

1. The gesture network of a `spinnq run gesture` folder (RUN_DIR: its qsnn_qat.nir and
   psnn_float.nir, frame settings from its config.json). Each recording is cut into
   consecutive windows of steps x bin_ms; each window is binned as the task bins its data.
   Agreement = share of windows where the chip's class (argmax of output spike counts)
   equals the float reference's; also the output spike counts of both.
2. The NIR paper's N-MNIST CNN (`cnn_sinabs.nir`, a Sinabs export) with `--convention
   sinabs`: 34 x 34 crops of the same recordings in 10 ms bins, float reference (= Sinabs's own
   simulation, checked spike for spike here against `sinabs.from_nir`) against the chip.
Writes benchmarks/results/real_events.json (machine load recorded; times are not the point).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from spinnq.files import atomic_write  # noqa: E402
from spinnq.graph import SimConfig, read_graph, simulate  # noqa: E402
from spinnq.quant import evaluate  # noqa: E402
from spinnq.quant.settings import configs  # noqa: E402
from spinnq.s2 import S2Config, compile, emulate  # noqa: E402
from spinnq.tasks.gesture.transforms import FrameConfig, events_to_frames  # noqa: E402

FIXTURE = ROOT / "tests" / "data" / "dvs-real"
CNN = ROOT / "tests" / "data" / "nir-paper" / "cnn_sinabs.nir"
EV_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("p", "?"), ("t", "<i8")])


def recordings() -> list[tuple[str, np.ndarray]]:
    out = []
    for m in json.loads((FIXTURE / "manifest.json").read_text()):
        a = np.load(FIXTURE / m["file"]).astype(np.float64)
        ev = np.zeros(len(a), EV_DTYPE)
        ev["x"], ev["y"], ev["p"], ev["t"] = a[:, 0], a[:, 1], a[:, 2] > 0, a[:, 3] * 1000
        out.append((m["file"], ev))
    return out


def windows(ev: np.ndarray, length_us: float, min_events: int = 50) -> list[np.ndarray]:
    """Consecutive windows of `length_us`, each re-timed to start at 0."""
    out = []
    for start in np.arange(0, ev["t"].max() + 1, length_us):
        w = ev[(ev["t"] >= start) & (ev["t"] < start + length_us)].copy()
        if len(w) >= min_events:
            w["t"] -= int(start)
            out.append(w)
    return out


def gesture(run: Path) -> dict:
    cfg = json.loads((run / "config.json").read_text())
    fc = FrameConfig(**cfg["frames"])
    wins = [w for _, ev in recordings() for w in windows(ev, fc.steps * fc.bin_ms * 1000)]
    x = np.stack([events_to_frames(w, fc) for w in wins])
    y = np.zeros(len(x), np.int64)  # no labels: only agreement is read
    out = {"windows": len(x), "window_ms": fc.steps * fc.bin_ms, "frames": cfg["frames"],
           "input_spikes_per_window_mean": float(x.reshape(len(x), -1).sum(1).mean())}
    for name, extra in (("qsnn_qat.nir", {"weight_scale": "none", "graph_scales": True,
                                          "conv_rounding": "nearest"}),
                        ("psnn_float.nir", {})):  # the first as the task deploys its QAT net
        if not (run / name).exists():  # a run stopped before QAT has the float graph only
            continue
        g = read_graph(run / name)
        s2, sim = configs(g)
        s2 = s2.with_(**extra)
        res = evaluate(g, (x, y), target="both", cfg=s2, sim=sim)
        fs, cs = res.float.scores, res.chip.scores
        out[name] = {"spikes_per_layer": layer_counts(g, x, s2, sim),
                     "chip_float_class_agreement": res.agreement,
                     "float_output_spikes_mean": float(fs.sum(1).mean()),
                     "chip_output_spikes_mean": float(cs.sum(1).mean()),
                     "output_count_abs_diff_mean": float(np.abs(fs - cs).sum(1).mean()),
                     "windows_with_equal_counts": float(np.all(fs == cs, axis=1).mean()),
                     "settings": {"weight_scale": s2.weight_scale,
                                  "graph_scales": s2.graph_scales, "reset": s2.reset,
                                  "dt": s2.dt, "convention": s2.convention}}
    return out


def layer_counts(g, x: np.ndarray, s2: S2Config, sim: SimConfig) -> dict:
    """Total spikes of every spiking layer over all windows: float reference and chip."""
    layers = [k for k in g.order if hasattr(g.nodes[k], "v_threshold")]
    tr = simulate(g, x, SimConfig(**{**sim.__dict__, "record": tuple(layers)}))
    run = emulate(compile(g, s2), x, record=layers)
    return {k: {"float": int(tr.spikes[k].sum()), "chip": int(run.spikes[k].sum())}
            for k in layers}


def densest(ev: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the size x size crop with the most events."""
    h = np.zeros((128, 128))
    np.add.at(h, (ev["y"], ev["x"]), 1)
    c = np.cumsum(np.cumsum(np.pad(h, ((1, 0), (1, 0))), 0), 1)
    box = c[size:, size:] - c[:-size, size:] - c[size:, :-size] + c[:-size, :-size]
    y, x = np.unravel_index(box.argmax(), box.shape)
    return int(y), int(x)


def cnn_inputs(steps: int, bin_ms: float) -> np.ndarray:
    """34 x 34 crops (each recording's busiest) of every recording window, binary."""
    fc = FrameConfig(size=128, sensor=128, bin_ms=bin_ms, steps=steps, denoise_us=0)
    xs = []
    for _, ev in recordings():
        y0, x0 = densest(ev, 34)
        for w in windows(ev, steps * bin_ms * 1000):
            f = events_to_frames(w, fc)[:, :, y0:y0 + 34, x0:x0 + 34]
            if f.sum() > 0:
                xs.append(f)
    return np.stack(xs).astype(np.float32)


def sinabs_reference(x: np.ndarray, layers: list[str]) -> dict[str, torch.Tensor]:
    """Sinabs's own reading of the file (`sinabs.from_nir`), its spikes per IF layer."""
    import nir
    import sinabs

    b, t = x.shape[:2]
    net = sinabs.from_nir(nir.read(str(CNN)), batch_size=b)
    rec: dict[str, torch.Tensor] = {}
    for k in layers:
        getattr(net, k).register_forward_hook(
            lambda m, i, o, k=k: rec.__setitem__(k, o.reshape(b, t, *o.shape[1:])))
    with torch.no_grad():
        net(torch.from_numpy(x).reshape(b * t, *x.shape[2:]))
    return rec


def nmnist_cnn(steps: int, bin_ms: float) -> dict:
    x = cnn_inputs(steps, bin_ms)
    g = read_graph(CNN)
    layers = [k for k in g.order if type(g.nodes[k]).__name__ == "IF"]
    out_layer = layers[-1]
    tr = simulate(g, x, SimConfig(dt=1.0, reset="subtract", convention="sinabs",
                                  record=tuple(layers)))
    ref = sinabs_reference(x, layers)
    mism = {k: int((tr.spikes[k] != ref[k]).sum()) for k in layers}
    res: dict = {"samples": len(x), "steps": steps, "bin_ms": bin_ms,
                 "input_spikes_per_sample_mean": float(x.reshape(len(x), -1).sum(1).mean()),
                 "float_vs_sinabs_from_nir_mismatches": mism,
                 "float_spikes_per_layer": {k: int(tr.spikes[k].sum()) for k in layers},
                 "float_max_spikes_in_one_step": {k: int(tr.spikes[k].max()) for k in layers}}
    fl = tr.spikes[out_layer].sum(1).numpy()
    for conv in ("sinabs", "nir"):
        prog = compile(g, S2Config(dt=1.0, reset="subtract", convention=conv))
        run = emulate(prog, x, record=[out_layer])
        ch = run.spikes[out_layer].sum(1).numpy()
        res[f"chip_{conv}"] = {
            "class_agreement_with_sinabs_float": float((ch.argmax(1) == fl.argmax(1)).mean()),
            "output_spikes_float": int(fl.sum()), "output_spikes_chip": int(ch.sum()),
            "output_count_abs_diff_per_sample": float(np.abs(fl - ch).sum(1).mean()),
            "notes": [n for n in prog.notes if "Sinabs" in n]}
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True, help="a spinnq run gesture folder")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/real_events.json")
    ap.add_argument("--run-command", default="spinnq run gesture --quick --out RUN --set "
                    "plots=false --set baseline=false", help="how RUN was made (recorded)")
    ap.add_argument("--cnn-steps", type=int, default=30)
    ap.add_argument("--cnn-bin-ms", type=float, default=10.0)
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    t0 = time.process_time()
    out = {"kind": "emulated (chip) vs measured (float reference); no labels, no accuracy",
           "commands": [f"PYTHONPATH=src .venv/bin/{a.run_command}",
                        "PYTHONPATH=src .venv/bin/python benchmarks/real_events.py --run RUN "
                        f"--cnn-steps {a.cnn_steps} --cnn-bin-ms {a.cnn_bin_ms}"],
           "fixture": "tests/data/dvs-real (faery 0.7.1, LGPL-3.0)",
           "gesture_run": {"folder": str(a.run),
                           "config": json.loads((a.run / "config.json").read_text())},
           "gesture": gesture(a.run),
           "nmnist_cnn_sinabs": nmnist_cnn(a.cnn_steps, a.cnn_bin_ms),
           "cpu_s": round(time.process_time() - t0, 1), "loadavg": os.getloadavg()}
    atomic_write(a.out, (json.dumps(out, indent=1) + "\n").encode())
    print(json.dumps({k: v for k, v in out.items() if k != "gesture_run"}, indent=1))


if __name__ == "__main__":
    main()
