"""The gesture task's 4-bit path (`spinnq run gesture --set bits=4`), through the library:
`spinnq.quant.quantize` on the float P-SNN's graph -- PTQ-4 (one global percentile chosen on
the validation split on the emulated chip), then fine-tuning on the chip's own 4-bit
arithmetic (`ChipNet`: straight-through rounding, the PTQ-4 scales fixed) on the training
split, its epoch and keep decision chosen on the validation split -- and both graphs once on
the test split on the emulated chip, beside the 8-bit stages.

Both graphs carry their scales and `spinnq.bits = 4`, so `spinnq evaluate qat4.nir` with no
flags runs them as scored here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from spinnq.files import save_npz
from spinnq.graph.model import Graph, read_graph, write_graph
from spinnq.helpers import read_json
from spinnq.quant.evaluation import chip_eval
from spinnq.s2 import S2Config
from spinnq.tasks.common import RunDir, stopwatch, write_json
from spinnq.tasks.gesture.config import GestureConfig
from spinnq.tasks.gesture.data import Frames

BITS = 4
FILES = {"ptq": "ptq4.nir", "qat": "qat4.nir", "result": "bits4.json"}


def save_splits(run: RunDir, data: dict[str, Frames]) -> dict[str, str]:
    """train/val/test.npz (x: N, T, 2, H, W 0/1 uint8; y: labels) in the run folder: the
    task's own splits for `spinnq quantize --finetune train.npz --val val.npz` and
    `spinnq evaluate --data test.npz`."""
    return {split: str(save_npz(run.path / f"{split}.npz", {"x": f.x, "y": f.y}))
            for split, f in data.items()}


def _options(cfg: GestureConfig) -> dict:
    """What decides the 4-bit graphs (a resumed run with other values computes them again)."""
    return {**dataclasses.asdict(cfg.bits4), "seed": cfg.seed}


def _quantize(cfg: GestureConfig, data: dict[str, Frames], graph_f: Graph, s2: S2Config,
              quiet: bool) -> tuple[Graph, Graph, dict]:
    """(PTQ-4 graph, fine-tuned graph, what quantize reported) from `spinnq.quant.quantize`
    with the task's splits: calibration and selection on val (or calibration on train)."""
    from spinnq.quant.stages import quantize

    tr, va, b = data["train"], data["val"], cfg.bits4
    q = quantize(graph_f, (va.x, va.y), bits=BITS, percentiles=b.percentiles,
                 train=(tr.x, tr.y), val=(va.x, va.y),
                 calib_from="train" if b.calib_from == "train" else "data",
                 epochs=b.epochs, lr=b.lr, batch=b.batch, patience=b.patience or None,
                 learn_thresholds=b.learn_thresholds, cfg=s2.with_(bits=BITS),
                 seed=cfg.seed, quiet=quiet)
    return q.calibration.graph, q.graph, q.to_dict()


def _cached(run: RunDir, cfg: GestureConfig) -> tuple[Graph, Graph, dict] | None:
    """The 4-bit graphs a resumed run already made with the same options, else None."""
    paths = {k: run.path / v for k, v in FILES.items()}
    if not all(p.exists() for p in paths.values()):
        return None
    saved = read_json(paths["result"])
    if not isinstance(saved, dict) or saved.get("options") != _options(cfg):
        return None
    return read_graph(paths["ptq"]), read_graph(paths["qat"]), saved["quantize"]


def bits4_stage(cfg: GestureConfig, run: RunDir, data: dict[str, Frames], graph_f: Graph,
                s2: S2Config, resume: bool, quiet: bool, timings: dict) -> dict:
    """PTQ-4 and QAT-4 (fine-tuned on the chip's arithmetic), each once on the test split on
    the emulated chip; `s2` is the 8-bit PTQ stage's chip (placement, dt, reset)."""
    got = _cached(run, cfg) if resume else None
    if got is None:
        with stopwatch() as t:
            got = _quantize(cfg, data, graph_f, s2, quiet)
        timings["quantize_4bit_s"] = t["s"]
        write_graph(got[0], run.path / FILES["ptq"])
        write_graph(got[1], run.path / FILES["qat"])
        write_json(run.path / FILES["result"], {"options": _options(cfg), "quantize": got[2]})
    g_ptq, g_qat, qinfo = got
    test = data["test"]
    s2q = s2.with_(bits=BITS, graph_scales=True)  # what the graphs' metadata resolves to
    ev_ptq = chip_eval(g_ptq, test.x, test.y, s2q, "count", cfg.chip_batch, quiet,
                       label="PTQ-4 on chip (test)")
    ev_qat = chip_eval(g_qat, test.x, test.y, s2q, "count", cfg.chip_batch, quiet,
                       label="QAT-4 on chip (test)")
    cal, ft = qinfo["calibration"], qinfo["finetune"] or {}
    return {"ptq_chip": ev_ptq.accuracy, "qat_chip": ev_qat.accuracy,
            "ptq_chosen": _chosen(cal), "kept": bool(ft.get("improved")),
            "best_epoch": ft.get("best_epoch", 0), "val_ptq": ft.get("score_start"),
            "val_qat": ft.get("score"), "history": ft.get("history", []),
            "thresholds": ft.get("thresholds", {}), "warnings": qinfo.get("warnings", []),
            "options": _options(cfg), "files": {k: str(Path(v).name) for k, v in
                                                FILES.items()},
            "how": "spinnq.quant.quantize(bits=4, train=train split, val=val split): PTQ-4 "
                   "chosen on val, fine-tuned on the chip's 4-bit arithmetic (ChipNet) on "
                   "train, epoch and keep decision on val; test split once per graph"}


def _chosen(cal: dict) -> str:
    modes = sorted(set((cal.get("modes") or {}).values()))
    return ", ".join(modes) if modes else "?"
