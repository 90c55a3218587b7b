"""Score the kept models of control runs on fresh validation episodes (choosing settings).

The greedy evaluations during training (`dqn.eval_episodes` episodes each) pick the kept
model, so its score there is optimistic: the best of ~20 noisy evaluations. Settings are
compared here instead: the kept float network of each run folder plays `--episodes` greedy
episodes with the seeds 50_000 + 1000 * seed + i, apart from training (seed * 1_000_003 +
episode), the in-training validation (10_000 + 1000 * seed + i) and the test episodes
(1_000_000 + i), so choosing on these leaves the test split untouched.

    benchmarks/control_validation.py RUN [RUN ...] [--episodes 100] [--out FILE.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from spinnq.files import write_json

FRESH_SEED = 50_000  # episode i of a run with seed s resets with FRESH_SEED + 1000 * s + i


def fresh_seed(seed: int) -> int:
    return FRESH_SEED + 1000 * seed


def score(folder: Path, episodes: int = 100) -> dict:
    """The kept float model of the run in `folder` on `episodes` fresh validation episodes."""
    from spinnq.tasks.common import RunDir, load_checkpoint, load_state_dict
    from spinnq.tasks.control.dqn import greedy_eval
    from spinnq.tasks.control.run import build_agent, config_from_json

    run = RunDir.open(folder)
    try:
        cfg = config_from_json(run.load_config(), file=str(folder / "config.json"))
        path = run.ckpt("float")
    finally:
        run.release()
    spec, enc, model, _ = build_agent(cfg)
    st = load_checkpoint(path, required=("model", "train"))
    load_state_dict(model, st["model"], file=str(path))
    rets = greedy_eval(model, enc, spec, episodes, fresh_seed(cfg.seed))
    return {"run": str(folder), "env": cfg.env, "seed": cfg.seed, "episodes": episodes,
            "fresh_mean": float(rets.mean()),
            "fresh_sem": float(rets.std(ddof=1) / np.sqrt(episodes)) if episodes > 1 else None,
            "kept_val_eval": st["train"]["best_greedy_eval"], "kind": "measured"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    rows = []
    for f in a.runs:
        r = score(f, a.episodes)
        rows.append(r)
        print(f"{f}: fresh validation {r['fresh_mean']:.2f} +- {r['fresh_sem']:.2f} "
              f"(kept on {r['kept_val_eval']:.2f})", flush=True)
    print(f"mean over runs: {np.mean([r['fresh_mean'] for r in rows]):.2f}")
    if a.out is not None:
        write_json(a.out, {"benchmark": "control_validation", "rows": rows,
                           "kind": "measured"})


if __name__ == "__main__":
    main()
