"""The gesture task at 4 bits: what PTQ-4 loses on the chip and what fine-tuning on the
chip's 4-bit arithmetic wins back, through the task and through the command a user runs.

    # 1. the task (fast preset): float, PTQ-8, QAT-8, PTQ-4, QAT-4, each once on test
    PYTHONPATH=src .venv/bin/python benchmarks/gesture_4bit.py task DIR [--seed 0] [--resume]
       = spinnq run gesture --preset fast --seed 0 --set bits=4 --set save_splits=true
             --out DIR          (--resume: spinnq run gesture --resume DIR --set ..., e.g. a
                                 bits=8 run of the same seed continued: float/QAT-8 reused)
    # 2. the command on the task's exported float graph and its own splits (DIR/*.npz)
    PYTHONPATH=src .venv/bin/python benchmarks/gesture_4bit.py command DIR [--name N --flags F]
       = spinnq quantize DIR/psnn_float.nir --data val.npz --bits 4 --out N.nir
             --finetune train.npz --val val.npz [FLAGS]        (defaults: --name default)
         spinnq quantize DIR/psnn_float.nir --data val.npz --bits 4 --out ptq.nir  (PTQ)
         and each written graph scored once on test.npz on the emulated chip (no flags: the
         graph's own metadata says 4 bits and its scales)
    # 3. collect into benchmarks/results/gesture_4bit.json (the README line renders it)
    PYTHONPATH=src .venv/bin/python benchmarks/gesture_4bit.py collect DIR

Accuracies: torch stages measured, chip stages emulated (bit-exact SpiNNaker2 emulator);
CPU seconds are the child processes' (shared machine; its load average is recorded).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import commit, spinnq_cli  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "gesture_4bit.json"
SETS = ("--set", "bits=4", "--set", "save_splits=true")
def spinnq(*args: str) -> dict:
    """`spinnq ARGS` in a subprocess (`provenance.spinnq_cli`), with the command, commit and
    the load average after."""
    r = spinnq_cli(*args)
    return {"command": " ".join(["spinnq", *args]), "commit": commit(),
            "wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "load_average_after": os.getloadavg()[0]}


def task(d: Path, seed: int, resume: bool) -> None:
    if resume:
        info = spinnq("run", "gesture", "--resume", str(d), "--quiet", *SETS)
    else:
        info = spinnq("run", "gesture", "--preset", "fast", "--seed", str(seed), "--out",
                      str(d), "--quiet", *SETS)
    (d / "bench_task.json").write_text(json.dumps({**info, "resumed": resume}, indent=2))


def test_accuracy(d: Path, graph: Path, target: str = "chip") -> float:
    """The graph once on the test split (the emulated chip, or the float reference
    simulator), with no run flags."""
    js = graph.with_suffix(f".test_{target}.json")
    spinnq("evaluate", str(graph), "--data", str(d / "test.npz"), "--target", target,
           "--json", str(js))
    return float(json.loads(js.read_text())[target]["accuracy"])


def command(d: Path, name: str, flags: list[str]) -> None:
    """PTQ-4 (once per folder) and one fine-tuning variant through `spinnq quantize`."""
    cmd = d / "cmd"
    cmd.mkdir(exist_ok=True)
    base = ["quantize", str(d / "psnn_float.nir"), "--data", str(d / "val.npz"), "--bits",
            "4"]
    if not (cmd / "ptq.json").exists():
        info = spinnq(*base, "--out", str(cmd / "ptq.nir"), "--json", str(cmd / "ptq.out.json"))
        info["test"] = test_accuracy(d, cmd / "ptq.nir")
        (cmd / "ptq.json").write_text(json.dumps(info, indent=2))
    ptq = json.loads((cmd / "ptq.json").read_text())
    if "float_test" not in ptq:  # the float reference the drop is measured from
        ptq["float_test"] = test_accuracy(d, d / "psnn_float.nir", "float")
        (cmd / "ptq.json").write_text(json.dumps(ptq, indent=2))
    if name == "ptq":
        return
    info = spinnq(*base, "--out", str(cmd / f"{name}.nir"), "--json",
                  str(cmd / f"{name}.out.json"), "--finetune", str(d / "train.npz"), "--val",
                  str(d / "val.npz"), *flags)
    info["test"] = test_accuracy(d, cmd / f"{name}.nir")
    (cmd / f"{name}.json").write_text(json.dumps({**info, "flags": flags}, indent=2))


def _variant(d: Path, name: str, ptq_test: float, float_test: float) -> dict:
    info = json.loads((d / "cmd" / f"{name}.json").read_text())
    q = json.loads((d / "cmd" / f"{name}.out.json").read_text())
    if q["finetune"] is None:
        raise SystemExit(f"{d / 'cmd' / name}: no fine-tuning result")
    ft, drop = q["finetune"], float_test - ptq_test
    return {"name": name, "flags": info["flags"],
            "command": info["command"].replace(str(d) + "/", ""),
            "qat4_test": info["test"], "ptq4_val": ft["score_start"], "qat4_val": ft["score"],
            "kept": ft["improved"], "best_epoch": ft["best_epoch"],
            "stopped_early": ft["stopped_early"], "curve": ft["history"],
            "thresholds": ft["thresholds"], "ptq_modes": q["calibration"]["modes"],
            "warnings": q["warnings"],
            "won_back_share": (info["test"] - ptq_test) / drop if drop > 0 else None,
            "cpu_s": info["cpu_s"], "wall_s": info["wall_s"],
            "load_average_after": info["load_average_after"]}


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()[:16]


def _task(d: Path) -> dict | None:
    """The task run's stages (None when its run has not finished: no summary.json)."""
    if not (d / "summary.json").exists():
        return None
    s = json.loads((d / "summary.json").read_text())
    a, b, t = s["accuracy"], s["bits4"], json.loads((d / "bench_task.json").read_text())
    drop = a["psnn_float"] - a["ptq4_chip"]
    return {"command": t["command"].replace(str(d), "DIR"), "resumed": t["resumed"],
            "cpu_s": t["cpu_s"], "wall_s": t["wall_s"],
            "load_average_after": t["load_average_after"],
            "psnn_float": a["psnn_float"], "ptq8_chip": a["ptq_chip"],
            "ptq8_chosen": s["ptq"]["chosen"], "qsnn_qat8": a["qsnn_qat"],
            "qat8_chip": a["qat_chip"], "qat8_layers": s["qat"]["layers"],
            "ptq4_chip": a["ptq4_chip"],
            "ptq4_chosen": b["ptq_chosen"], "qat4_chip": a["qat4_chip"],
            "qat4_kept": b["kept"], "qat4_best_epoch": b["best_epoch"],
            "qat4_val_curve": [b["val_ptq"], *(h["score"] for h in b["history"])],
            "qat4_within_1pt_of_float": a["psnn_float"] - a["qat4_chip"] <= 0.01,
            "ptq4_drop_pt": 100 * drop,
            "won_back_share": (a["qat4_chip"] - a["ptq4_chip"]) / drop if drop > 0
            else None, "memory": s["memory"]}


def collect(d: Path, out: Path, cd: Path | None = None) -> dict:
    """The task's summary (`d`, when its run finished) and the command's variants (`cd`,
    default `d`: the folder the `command` step read psnn_float.nir and the splits from)."""
    cd = cd or d
    cfg = json.loads((d / "config.json").read_text())
    ptq = json.loads((cd / "cmd" / "ptq.json").read_text())
    names = sorted(p.name[:-len(".out.json")] for p in (cd / "cmd").glob("*.out.json")
                   if p.name != "ptq.out.json")
    data = {k: int(np.load(cd / f"{k}.npz")["y"].shape[0]) for k in ("train", "val", "test")}
    res = {
        "benchmark": "gesture_4bit", "commit": ptq.get("commit", commit()),
        "seed": cfg["seed"],
        "preset": cfg["preset"], "data": {"source": cfg["data_dir"] or "synthetic", **data},
        "steps": cfg["frames"]["steps"],
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "kinds": {"psnn_float, qsnn_qat": "measured (torch forward)",
                  "float_test": "measured (float reference simulator of the exported NIR)",
                  "*_chip, *_test": "emulated (bit-exact chip emulator), test split once",
                  "cpu_s": "measured (child processes, shared machine)"},
        "task": _task(d),
        "command": {"float_test": ptq["float_test"], "ptq4_test": ptq["test"],
                    "ptq4_drop_pt": 100 * (ptq["float_test"] - ptq["test"]),
                    "ptq_command": ptq["command"].replace(str(cd) + "/", ""),
                    "variants": [_variant(cd, n, ptq["test"], ptq["float_test"])
                                 for n in names],
                    "same_splits_as_task": all(_sha(d / f"{k}.npz") == _sha(cd / f"{k}.npz")
                                               for k in ("train", "val", "test")),
                    "same_float_graph_as_task": _sha(d / "psnn_float.nir") == _sha(
                        cd / "psnn_float.nir")},
    }
    out.write_text(json.dumps(res, indent=2, default=float) + "\n")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("task")
    t.add_argument("dir", type=Path)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--resume", action="store_true")
    c = sub.add_parser("command")
    c.add_argument("dir", type=Path)
    c.add_argument("--name", default="default")
    c.add_argument("--flags", default="", help="extra quantize flags, e.g. '--lr 0.02'")
    k = sub.add_parser("collect")
    k.add_argument("dir", type=Path)
    k.add_argument("--out", type=Path, default=OUT)
    k.add_argument("--cmd-dir", type=Path, default=None)
    a = ap.parse_args()
    if a.cmd == "task":
        task(a.dir, a.seed, a.resume)
    elif a.cmd == "command":
        command(a.dir, a.name, shlex.split(a.flags))
    else:
        res = collect(a.dir, a.out, a.cmd_dir)
        print(json.dumps({k: res[k] for k in ("task", "command")}, indent=2, default=float))


if __name__ == "__main__":
    main()
