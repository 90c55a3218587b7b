"""Any network, any data: snnTorch networks trained outside spinnq on scikit-learn's digits
(rate-coded spikes), calibrated and fine-tuned by `spinnq.quant` and evaluated on the emulated
SpiNNaker2, at full size. Writes JSON (default benchmarks/results/quant_digits.json).

    PYTHONPATH=src .venv/bin/python benchmarks/quant_digits.py [--steps 20] [--epochs 15]
                   [--hidden 128] [--channels 8] [--ft-epochs 5] [--seed 0]

The same path as `spinnq quantize GRAPH --data train.npz --bits B --convention snntorch
--reset subtract [--finetune train.npz]` + `spinnq evaluate Q.nir --data test.npz`: for each
network and 8/4 bits, PTQ (percentile chosen on the training split, on the chip) and PTQ +
fine-tuning (kept only if it beats PTQ on a held-out share). Accuracy on the test split is
measured (snnTorch's own float forward; spinnq's float reference; the emulator); energy per
inference is modelled. A network the compiler refuses is recorded with the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from spinnq.errors import SpinnqError  # noqa: E402
from spinnq.files import atomic_write  # noqa: E402
from spinnq.graph import from_nir  # noqa: E402
from spinnq.quant import calibrate, evaluate, finetune  # noqa: E402
from spinnq.resolver import configs  # noqa: E402
from tests.conftest import digits_spikes  # noqa: E402
from tests.quant import digits_models as dm  # noqa: E402


def one_network(name, net, shape, data, args) -> dict:
    xtr, ytr, xte, yte = data
    xtr = xtr.reshape(len(xtr), xtr.shape[1], *shape)
    xte = xte.reshape(len(xte), xte.shape[1], *shape)
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    dm.train(net, xtr, ytr, epochs=args.epochs, seed=args.seed)
    out = {"network": name, "train_s": time.perf_counter() - t0,
           "snntorch_float_accuracy": dm.accuracy(net, xte, yte), "kind": "measured"}
    g = from_nir(dm.export(net, shape))
    cfg, sim = configs(g, reset="subtract", convention="snntorch")
    out["spinnq_float_reference_accuracy"] = evaluate(g, (xte, yte), target="float",
                                                      sim=sim).float.accuracy
    for bits in (8, 4):
        row: dict = {}
        try:
            cal = calibrate(g, (xtr, ytr), bits=bits, cfg=cfg, sim=sim)
            ptq = evaluate(cal.graph, (xte, yte), target="chip")
            ft = finetune(cal.graph, (xtr, ytr), epochs=args.ft_epochs, seed=args.seed,
                          teacher=g)
            fte = evaluate(ft.graph, (xte, yte), target="chip", tick_s="shortest")
        except SpinnqError as e:
            out[f"int{bits}"] = {"refused": str(e)}
            continue
        row |= {"ptq_modes": cal.modes, "ptq_chip_accuracy": ptq.chip.accuracy,
                "finetune_kept": ft.improved, "finetune_history": ft.history,
                "finetune_chip_accuracy": fte.chip.accuracy,
                "drop_vs_snntorch_pt": 100 * (out["snntorch_float_accuracy"]
                                              - fte.chip.accuracy),
                "energy_j_per_inference": fte.chip.cost.energy_j,
                "dynamic_j_per_inference": fte.chip.cost.dynamic_j,
                "energy_kind": "modelled", "accuracy_kind": "emulated"}
        out[f"int{bits}"] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--ft-epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/quant_digits.json")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    data = digits_spikes(args.steps, args.seed)
    torch.manual_seed(args.seed)
    rows = [one_network(f"mlp 64-{args.hidden}-10", dm.mlp(args.hidden), (64,), data, args)]
    torch.manual_seed(args.seed)
    rows.append(one_network(f"conv {args.channels}c3-avgpool2-10", dm.convnet(args.channels),
                            (1, 8, 8), data, args))
    res = {"dataset": "scikit-learn digits, rate-coded 0/1 spikes, stratified 70/30 split",
           "steps": args.steps, "seed": args.seed, "networks": rows}
    atomic_write(args.out, json.dumps(res, indent=2, default=float) + "\n")
    print(json.dumps(res, indent=2, default=float))


if __name__ == "__main__":
    main()
