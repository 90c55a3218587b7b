"""What hardware-aware fine-tuning wins back of what 4-bit PTQ loses on the chip, on networks
trained OUTSIDE spinnq in their own frameworks (snnTorch), as a user brings them.

    PYTHONPATH=src .venv/bin/python benchmarks/qat_recovery.py [--only NAME ...] [--seed 0]
    -> benchmarks/results/qat_recovery.json  (rows of --only are replaced, others kept)

Data: scikit-learn's digits (ships inside the package), rate-coded 0/1 spikes, split
stratified and seeded into train / val / test. Each network is trained in snnTorch on
train, exported with snnTorch's `export_to_nir`, then run through the command a user runs:

    spinnq quantize NET.nir --data val.npz --out ptq.nir --bits 4 --convention snntorch
    spinnq quantize NET.nir --data val.npz --out qat.nir --bits 4 --convention snntorch \\
           --finetune train.npz --val val.npz                     (default options otherwise)

(and once more with `--learn-thresholds`), and the graphs are scored on the emulated chip
on test, which neither training, calibration
nor the epoch/keep choice saw. Reported per network: float (snnTorch's own forward, test),
PTQ-4 and QAT-4 on chip (test), the drop (float - PTQ) and the share of it won back
((QAT - PTQ) / drop). Accuracies are measured (float) or emulated (chip); CPU seconds are
the process's (one thread), beside the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

import nir
import numpy as np
import snntorch as snn
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import commit  # noqa: E402

from spinnq.files import atomic_write  # noqa: E402
from spinnq.quant import evaluate  # noqa: E402
from tests.conftest import digits_spikes  # noqa: E402
from tests.quant import digits_models as dm  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "qat_recovery.json"
VAL_SAMPLES = 300  # of the 1257 training digits; 540 are test


def rleaky_mlp(hidden: int) -> torch.nn.Sequential:
    """64 -> RLeaky(hidden, all-to-all recurrence) -> 10 Leaky (snnTorch)."""
    return torch.nn.Sequential(
        torch.nn.Linear(64, hidden),
        snn.RLeaky(beta=torch.full((hidden,), 0.9), threshold=torch.ones(hidden),
                   linear_features=hidden, init_hidden=True),
        torch.nn.Linear(hidden, 10), dm.leaky((10,)))


def out_gain(layer: int, gain: float) -> Callable:
    """After training: output neuron 0 with a large gain (its weights, bias and threshold x
    `gain`: the same float network, but one neuron now sets the read-out layer's 4-bit
    scale, as after training with learnable thresholds)."""
    return lambda net: dm.with_gain(net, [0], gain, layer=layer)


NETWORKS: dict[str, dict] = {
    # name: builder (args -> (net, input shape, after-training hook)), steps, epochs, what
    "mlp-outgain": {"build": lambda a: (dm.mlp(64), (64,), out_gain(2, 12.0)), "steps": 10,
                    "epochs": 15, "what": "MLP 64-64-10, one read-out neuron x12 gain"},
    "conv-outgain": {"build": lambda a: (dm.convnet(a.channels), (1, 8, 8),
                                         out_gain(4, 12.0)), "steps": 8, "epochs": 10,
                     "what": "conv {channels}c3 + AvgPool2d(2) + dense, one read-out neuron "
                             "x12 gain"},
    "recurrent-outgain": {"build": lambda a: (rleaky_mlp(32), (64,), out_gain(2, 20.0)),
                          "steps": 8, "epochs": 10, "what": "RLeaky 64-32(recurrent)-10, one "
                          "read-out neuron x20 gain"},
    "few-steps": {"build": lambda a: (dm.mlp(64), (64,), None), "steps": 3, "epochs": 15,
                  "what": "MLP 64-64-10"},
    "mlp": {"build": lambda a: (dm.mlp(64), (64,), None), "steps": 10, "epochs": 15,
            "what": "MLP 64-64-10"},
}


def splits(steps: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """train / val / test, stratified and seeded; test is the 30 % of `digits_spikes`."""
    from sklearn.model_selection import train_test_split

    xtr, ytr, xte, yte = digits_spikes(steps, seed)
    xa, xv, ya, yv = train_test_split(xtr, ytr, test_size=VAL_SAMPLES, random_state=seed,
                                      stratify=ytr)
    return {"train": (xa, ya), "val": (xv, yv), "test": (xte, yte)}


def quantize_cmd(graph: Path, tmp: Path, out: str, finetune: bool, *extra: str
                 ) -> tuple[list[str], dict]:
    """`spinnq quantize` as a user runs it (a subprocess of the entry point); its JSON."""
    js = tmp / f"{out}.json"
    args = ["quantize", str(graph), "--data", str(tmp / "val.npz"), "--out",
            str(tmp / f"{out}.nir"), "--bits", "4", "--convention", "snntorch", "--json",
            str(js)]
    if finetune:
        args += ["--finetune", str(tmp / "train.npz"), "--val", str(tmp / "val.npz"), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    code = ("import sys, torch; torch.set_num_threads(1); from spinnq.cli import main; "
            "sys.argv = ['spinnq'] + sys.argv[1:]; main()")
    subprocess.run([sys.executable, "-c", code, *args], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    shown = ["spinnq", *(a.replace(str(tmp) + "/", "") for a in args)]
    return shown, json.loads(js.read_text())


def one_network(name: str, spec: dict, args) -> dict:
    build: Callable = spec["build"]
    data = splits(spec["steps"], args.seed)
    torch.manual_seed(args.seed)
    net, shape, hook = build(args)
    rs = {k: (x.reshape(len(x), x.shape[1], *shape), y) for k, (x, y) in data.items()}
    c0 = time.process_time()
    dm.train(net, *rs["train"], epochs=spec["epochs"], seed=args.seed)
    if hook is not None:
        hook(net)
    row = {"network": name, "what": spec["what"].format(**vars(args)), "steps": spec["steps"],
           "train_epochs": spec["epochs"], "framework": f"snntorch {snn.__version__}",
           "train_cpu_s": time.process_time() - c0,
           "samples": {k: len(v[1]) for k, v in rs.items()},
           "float_test": dm.accuracy(net, *rs["test"]),
           "float_val": dm.accuracy(net, *rs["val"])}
    with TemporaryDirectory() as d:
        tmp = Path(d)
        graph = tmp / f"{name}.nir"
        nir.write(graph, dm.export(net, shape))
        for k, (x, y) in rs.items():
            np.savez(tmp / f"{k}.npz", x=x, y=y)
        runs = {}
        for key, ft, extra in (("ptq", False, ()), ("qat", True, ()),
                               ("qat_thr", True, ("--learn-thresholds",))):
            c0 = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
            t0 = time.perf_counter()
            runs[key] = quantize_cmd(graph, tmp, key, ft, *extra)
            row[f"{key}_wall_s"] = time.perf_counter() - t0
            row[f"{key}_cpu_s"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - c0
            row[f"{key}4_test"] = evaluate(tmp / f"{key}.nir", rs["test"],
                                           target="chip").chip.accuracy
        (cmd_ptq, _), (cmd_qat, qat), (cmd_thr, thr) = runs["ptq"], runs["qat"], runs["qat_thr"]
    ft = qat["finetune"]
    drop = row["float_test"] - row["ptq4_test"]
    row |= {"commands": [" ".join(cmd_ptq), " ".join(cmd_qat), " ".join(cmd_thr)],
            "qat_thr_kept": thr["finetune"]["improved"],
            "qat_thr_factors": thr["finetune"]["thresholds"],
            "ptq_modes": qat["calibration"]["modes"], "ptq4_val": ft["score_start"],
            "qat4_val": ft["score"], "finetune_kept": ft["improved"],
            "best_epoch": ft["best_epoch"], "stopped_early": ft["stopped_early"],
            "curve": ft["history"], "calibration_warnings": qat["warnings"],
            "drop_pt": 100 * drop, "won_back_pt": 100 * (row["qat4_test"] - row["ptq4_test"]),
            "won_back_share": (row["qat4_test"] - row["ptq4_test"]) / drop if drop > 0
            else None, "load_average_after": os.getloadavg()[0]}
    print(f"{name}: float {row['float_test']:.4f} ptq4 {row['ptq4_test']:.4f} "
          f"qat4 {row['qat4_test']:.4f} (val {row['ptq4_val']:.4f} -> {row['qat4_val']:.4f}, "
          f"epoch {row['best_epoch']})", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    old = json.loads(args.out.read_text()) if args.out.exists() else {}
    rows = {r["network"]: r for r in old.get("networks", [])}
    for name in args.only:
        rows[name] = one_network(name, NETWORKS[name], args)
        res = {"benchmark": "qat_recovery", "dataset": "scikit-learn digits, rate-coded 0/1 "
               f"spikes; stratified train/val/test, {VAL_SAMPLES} val, 30 % test",
               "bits": 4, "seed": args.seed, "commit": commit(),
               "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
               "kinds": {"float": "measured (snnTorch forward)", "chip": "emulated",
                         "cpu_s": "measured, one thread, shared machine"},
               "networks": [rows[k] for k in NETWORKS if k in rows]}
        atomic_write(args.out, (json.dumps(res, indent=2, default=float) + "\n").encode())


if __name__ == "__main__":
    main()
