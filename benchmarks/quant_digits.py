"""Any network, any data: snnTorch networks trained outside spinnq on scikit-learn's digits
(rate-coded spikes), calibrated and fine-tuned by `spinnq.quant` and evaluated on the emulated
SpiNNaker2, at full size. Writes JSON (default benchmarks/results/quant_digits.json).

    PYTHONPATH=src .venv/bin/python benchmarks/quant_digits.py [--steps 20] [--epochs 15]
                   [--hidden 128] [--channels 8] [--val 300] [--seed 0]

The same path as `spinnq quantize GRAPH --data val.npz --bits B --convention snntorch
--reset subtract --finetune train.npz --val val.npz` + `spinnq evaluate Q.nir --data test.npz`
(the command's function `spinnq.quant.quantize`, its defaults): for each network and 8/4
bits, PTQ (percentile chosen on the validation split, on the chip) and fine-tuning (epoch and
keep decision chosen on the validation split, which training never saw). Accuracy on the
test split is measured (snnTorch's own float forward; spinnq's float reference; the
emulator); energy per inference is modelled. A network the compiler refuses is recorded
with the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch
from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import commit  # noqa: E402

from spinnq.errors import SpinnqError  # noqa: E402
from spinnq.files import atomic_write  # noqa: E402
from spinnq.graph import from_nir  # noqa: E402
from spinnq.quant import evaluate, quantize  # noqa: E402
from spinnq.resolver import resolve  # noqa: E402
from tests.conftest import digits_spikes  # noqa: E402
from tests.quant import digits_models as dm  # noqa: E402


def one_network(name, net, shape, data, args) -> dict:
    xtr, ytr, xte, yte = data
    xtr = xtr.reshape(len(xtr), xtr.shape[1], *shape)
    xte = xte.reshape(len(xte), xte.shape[1], *shape)
    # the network never sees the validation split: it calibrates and chooses the
    # fine-tuning epoch and the keep decision (`spinnq quantize --finetune T --val V`)
    xfit, xval, yfit, yval = train_test_split(xtr, ytr, test_size=args.val,
                                              random_state=args.seed, stratify=ytr)
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    dm.train(net, xfit, yfit, epochs=args.epochs, seed=args.seed)
    out = {"network": name, "train_s": time.perf_counter() - t0,
           "samples": {"train": len(yfit), "val": len(yval), "test": len(yte)},
           "snntorch_float_accuracy": dm.accuracy(net, xte, yte), "kind": "measured"}
    g = from_nir(dm.export(net, shape))
    rs = resolve(g, reset="subtract", convention="snntorch", tick_s="shortest")
    out["spinnq_float_reference_accuracy"] = evaluate(g, (xte, yte), target="float",
                                                      settings=rs).float.accuracy
    for bits in (8, 4):
        rsb = replace(rs, bits=bits)
        try:  # the command's own function, with its defaults (10 epochs, patience 3)
            q = quantize(g, (xval, yval), bits=bits, train=(xfit, yfit), seed=args.seed,
                         settings=rsb)
            ptq = evaluate(q.calibration.graph, (xte, yte), target="chip", settings=rsb)
            fte = evaluate(q.graph, (xte, yte), target="chip", settings=rsb)
        except SpinnqError as e:
            out[f"int{bits}"] = {"refused": str(e)}
            continue
        ft = q.finetune
        out[f"int{bits}"] = {
            "ptq_modes": q.calibration.modes, "ptq_chip_accuracy": ptq.chip.accuracy,
            "finetune_kept": ft.improved, "finetune_best_epoch": ft.best_epoch,
            "finetune_history": ft.history, "final_chip_accuracy": fte.chip.accuracy,
            "drop_vs_snntorch_pt": 100 * (out["snntorch_float_accuracy"]
                                          - fte.chip.accuracy),
            "warnings": list(q.warnings),
            "energy_j_per_inference": fte.chip.cost.energy_j,
            "dynamic_j_per_inference": fte.chip.cost.dynamic_j,
            "energy_kind": "modelled", "accuracy_kind": "emulated"}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--val", type=int, default=300, help="validation samples taken from "
                    "the training split")
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
    res = {"commit": commit(),
           "dataset": "scikit-learn digits, rate-coded 0/1 spikes, stratified 70/30 "
                      "train/test split, validation taken from train",
           "steps": args.steps, "seed": args.seed, "networks": rows}
    atomic_write(args.out, json.dumps(res, indent=2, default=float) + "\n")
    print(json.dumps(res, indent=2, default=float))


if __name__ == "__main__":
    main()
