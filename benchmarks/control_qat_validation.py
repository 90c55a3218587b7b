"""Choose a control task's QAT settings on fresh validation episodes, on the emulated chip.

QAT keeps the epoch whose greedy actions agree best with the float network on held-out
states; which QAT settings (`finetune.*`) to use is chosen here, on returns. For each run
folder and each candidate (`--set`-style items), a copy of the run keeps its trained float
network, redoes PTQ and QAT with the candidate and plays the chip stage on the fresh
validation episodes of `control_validation.py` (seeds 50_000 + 1000 seed + i), so the test
episodes (1_000_000 + i) stay untouched. Copies already scored are read back (resumable).

    benchmarks/control_qat_validation.py RUN [RUN ...] --work DIR \\
        --candidate default --candidate "finetune.advantage_weight=30,finetune.qat_epochs=16"
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
from control_validation import fresh_seed

from spinnq.files import jsonable, write_json

# what a copy must not inherit: the quantised graphs and every result made from them
REDONE = ("quant.pt", "ptq*.nir", "qat*.nir", "stages.json", "report.*", "plots",
          "chip_input.npy", "run.lock")


def parse_candidate(text: str) -> dict[str, str]:
    """"default" (the run's own settings) or comma-separated KEY=VALUE items, checked (an
    unknown key or a value out of its limits is refused before anything runs)."""
    from spinnq import settings
    from spinnq.tasks.control.run import ControlConfig

    sets = {} if text == "default" else settings.parse_sets(text.split(","))
    settings.apply_sets(ControlConfig(), sets, src=f"--candidate {text!r}:")
    return sets


def score(run: Path, sets: dict[str, str], copy: Path, episodes: int = 100) -> dict:
    """The chip stage of `run`'s float network quantised with `sets`, on fresh validation
    episodes, played in `copy` (made from `run` unless it already holds the result)."""
    from spinnq import settings
    from spinnq.tasks.common import RunDir
    from spinnq.tasks.control.run import config_from_json, read_stages, run_control

    if not (copy / "stages.json").exists():
        if copy.exists():
            shutil.rmtree(copy)  # a copy cut off before its result: made again
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns(*REDONE))
        rd = RunDir.open(copy)
        try:
            cfg = config_from_json(rd.load_config(), file=str(copy / "config.json"))
            cfg = settings.apply_sets(cfg, sets)
            cfg = settings.validate(replace(cfg, stages=("float", "chip"),
                                            eval_seed=fresh_seed(cfg.seed),
                                            eval_episodes=episodes, baseline_repeats=1))
            rd.save_config(cfg)
        finally:
            rd.release()
        run_control(cfg, resume=copy, quiet=True)
    rd = RunDir.open(copy)
    try:
        cfg = config_from_json(rd.load_config(), file=str(copy / "config.json"))
        done = read_stages(rd)
    finally:
        rd.release()
    return {"run": str(run), "copy": str(copy), "env": cfg.env, "seed": cfg.seed,
            "sets": sets, "finetune": jsonable(cfg.finetune),
            "episodes": cfg.eval_episodes, "chip_fresh_mean": done["chip"]["mean_return"],
            "chip_fresh_std": done["chip"]["std_return"],
            "float_fresh_mean": done["float"]["mean_return"],
            "chip_actions_equal_float": done["chip"]["actions_equal_float"], "kind": "emulated"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--candidate", action="append", default=None,
                    help='"default" or KEY=VALUE[,KEY=VALUE...] (repeatable)')
    ap.add_argument("--work", type=Path, required=True, help="folder for the run copies")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    cands = a.candidate or ["default"]
    parsed = [parse_candidate(text) for text in cands]  # every candidate checked first
    rows = [score(run, sets, a.work / f"{run.name}-c{i}", a.episodes) | {"candidate": text}
            for i, (text, sets) in enumerate(zip(cands, parsed, strict=True))
            for run in a.runs]
    for r in rows:
        print(f"{r['run']} [{r['candidate']}]: chip on fresh validation "
              f"{r['chip_fresh_mean']:.2f} (float {r['float_fresh_mean']:.2f}, actions as "
              f"float {r['chip_actions_equal_float']:.3f})")
    means = {text: float(np.mean([r["chip_fresh_mean"] for r in rows
                                  if r["candidate"] == text])) for text in cands}
    for text, m in means.items():
        print(f"[{text}] mean over runs: {m:.2f}")
    if a.out is not None:
        write_json(a.out, {"benchmark": "control_qat_validation", "rows": rows,
                           "chip_fresh_mean_by_candidate": means, "kind": "emulated"})


if __name__ == "__main__":
    main()
