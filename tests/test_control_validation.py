"""benchmarks/control_validation.py: a run's kept model scored on fresh validation episodes,
with seeds apart from the run's validation and test episodes."""

from __future__ import annotations

import json

from spinnq.tasks.control.dqn import validation_seed
from spinnq.tasks.control.run import default_config, run_control
from tests.conftest import benchmark


def test_kept_model_is_scored_on_fresh_episodes_reproducibly(tmp_path):
    bench = benchmark("control_validation")
    cfg = default_config("acrobot", seed=2, quick=True, stages=("float",))
    rep = run_control(cfg, out=tmp_path / "run", quiet=True)
    a = bench.score(tmp_path / "run", episodes=3)
    assert a == bench.score(tmp_path / "run", episodes=3)
    assert (a["env"], a["seed"], a["episodes"]) == ("acrobot", 2, 3)
    assert a["kept_val_eval"] == rep["training"]["best_greedy_eval"]
    assert -500.0 <= a["fresh_mean"] <= 0.0
    # the fresh seeds of run seed s: neither its validation seeds nor the test seeds
    fresh = set(range(bench.fresh_seed(2), bench.fresh_seed(2) + 1000))
    val = set(range(validation_seed(2), validation_seed(2) + 1000))
    test = set(range(cfg.eval_seed, cfg.eval_seed + 100_000))
    assert not fresh & val and not fresh & test
    assert json.loads((tmp_path / "run" / "config.json").read_text())["seed"] == 2
