"""benchmarks/rl_vs_sb3.py: rows merged by (env, seed), a finished run read back only when its
settings are the benchmark's, and the README table rendered from the JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

from spinnq.tasks.control.run import default_config
from tests.conftest import benchmark


def _spinnq_row(chip: float) -> dict:
    return {"float_test_mean": chip + 1, "chip_test_mean": chip, "steps_to_threshold": None,
            "budget": 60_000,
            "train_wall_s": 61.0, "chip_per_decision": {
                "latency_s": 0.013, "energy_j": 1e-4, "fastest_latency_s": 2e-5,
                "fastest_energy_j": 3e-6}}


def test_rows_merge_by_env_and_seed_and_render(tmp_path):
    bench, readme = benchmark("rl_vs_sb3"), benchmark("readme_numbers")
    out = tmp_path / "r.json"
    sb3 = {"test_mean": -84.3, "test_std": 9.0, "steps_to_threshold": 35_000, "budget": 100_000,
           "train_wall_s": 1051.0}
    first = [{"env": "mountaincar", "seed": 0, "sb3": sb3},
             {"env": "acrobot", "seed": 0, "spinnq": _spinnq_row(-90.0), "sb3": sb3}]
    out.write_text(json.dumps(bench.merge(out, first)))
    d = bench.merge(out, [{"env": "acrobot", "seed": 0, "spinnq": _spinnq_row(-80.0),
                           "sb3": sb3}])
    assert [(r["env"], r["seed"]) for r in d["results"]] == [("acrobot", 0), ("mountaincar", 0)]
    assert d["results"][0]["spinnq"]["chip_test_mean"] == -80.0 and len(d["results"]) == 2
    text = readme.rl_vs_sb3_envs_section(d)
    assert "| acrobot | 0 | -79.0 | -80.0 | -84.3 +- 9.0 | never / 35.0k | 1 min 1 s / 17 min 31 s | 13 ms" in text
    assert "| mountaincar | 0 | - | - | -84.3 +- 9.0 | - / 35.0k |" in text
    # never reaching the threshold counts as the whole budget: 60k against SB3's 35k
    assert "acrobot 60.0k vs 35.0k (25.0k more)" in text and "mountaincar" not in text.split(
        "Median steps")[1]


def test_walls_carry_their_load_and_commits_include_sb3s_own():
    """A row whose SB3 part was measured in an earlier run keeps that run's commit and load:
    both walls are shown with the load they ran at, and both commits are listed."""
    readme = benchmark("readme_numbers")
    sb3 = {"test_mean": -100.0, "test_std": 7.0, "steps_to_threshold": 96_000,
           "budget": 120_000, "train_wall_s": 270.0}
    row = {"env": "mountaincar", "seed": 1, "commit": "new1234", "spinnq": _spinnq_row(-107.0),
           "sb3": sb3, "load_avg_1min_after": 9.4, "sb3_commit": "old5678",
           "sb3_load_avg_1min_after": 4.0}
    text = readme.rl_vs_sb3_envs_section({"results": [row], "test_episodes": 100})
    assert "| 1 min 1 s (load 9.4) / 4 min 30 s (load 4.0) |" in text
    assert "(commits new1234, old5678)" in text


def test_finished_run_is_reused_only_with_the_same_settings(tmp_path):
    bench = benchmark("rl_vs_sb3")
    cfg = replace(default_config("acrobot"), stages=("float", "chip"))
    rep = {"config": json.loads(json.dumps(asdict(cfg))), "stages": [{"name": "float"},
                                                                       {"name": "chip"}]}
    (tmp_path / "report.json").write_text(json.dumps(rep))
    assert bench.finished_report(tmp_path, cfg) == rep
    assert bench.finished_report(tmp_path, replace(cfg, baseline_repeats=3)) == rep
    other = replace(cfg, dqn=replace(cfg.dqn, lr=1e-3))
    assert bench.finished_report(tmp_path, other) is None
    assert bench.finished_report(tmp_path / "none", cfg) is None


def test_targets_use_the_mean_over_seeds_and_sb3s_mean_over_the_same_seeds():
    readme = benchmark("readme_numbers")
    sb3 = lambda m: {"test_mean": m, "test_std": 1.0, "steps_to_threshold": 1, "budget": 2,  # noqa: E731
                     "train_wall_s": 1.0}
    rows = [{"env": "acrobot", "seed": 0, "spinnq": _spinnq_row(-87.0), "sb3": sb3(-84.0)},
            {"env": "acrobot", "seed": 1, "spinnq": _spinnq_row(-83.0), "sb3": sb3(-86.0)},
            {"env": "acrobot", "seed": 2, "spinnq": _spinnq_row(-80.0)},  # no SB3 row: left out
            {"env": "mountaincar", "seed": 0, "spinnq": _spinnq_row(-111.0)},
            {"env": "cartpole", "seed": 0, "spinnq": _spinnq_row(500.0)},
            {"env": "cartpole", "seed": 1, "spinnq": _spinnq_row(470.0)}]
    t = {x["env"]: x for x in readme.rl_targets(rows)}
    assert t["acrobot"]["seeds"] == [0, 1] and t["acrobot"]["chip"] == -85.0
    assert t["acrobot"]["line"] == -87.0 and t["acrobot"]["met"]
    assert not t["mountaincar"]["met"] and not t["cartpole"]["met"]  # lowest seed 470 < 475
    text = readme.targets_text(rows)
    assert "mountaincar (mean >= -110, seeds 0): mean -111.0 against -110.0, missed by 1.0" \
        in text


def test_more_seeds_report_each_seed_and_the_targets_over_all_seeds():
    """Seeds past the targets' are listed with both agents, and the target is recomputed over
    every seed measured: met on seeds 0-1 here, missed over 0-2."""
    readme = benchmark("readme_numbers")
    sb3 = lambda m: {"test_mean": m, "test_std": 1.0, "steps_to_threshold": 1, "budget": 2,  # noqa: E731
                     "train_wall_s": 1.0}
    main = {"results": [
        {"env": "acrobot", "seed": 0, "commit": "a", "spinnq": _spinnq_row(-82.0),
         "sb3": sb3(-84.0)},
        {"env": "acrobot", "seed": 1, "commit": "a", "spinnq": _spinnq_row(-80.0),
         "sb3": sb3(-80.0)},
        {"env": "cartpole", "seed": 0, "commit": "a", "spinnq": _spinnq_row(500.0),
         "sb3": sb3(500.0)}]}
    assert all(t["met"] for t in readme.rl_targets(main["results"]))
    more = {"results": [{"env": "acrobot", "seed": 2, "commit": "b",
                         "spinnq": _spinnq_row(-90.0), "sb3": sb3(-73.0)}]}
    text = readme.rl_more_seeds_section(main, more)
    assert "acrobot seeds 2: chip -90.0 (float -89.0), SB3 -73.0" in text
    # over seeds 0-2: chip mean -84.0, SB3 mean -79.0 - 2 = -81.0
    assert "acrobot (mean >= SB3's mean - 2, seeds 0, 1, 2): mean -84.0 against -81.0, " \
        "missed by 3.0 (measured; commit b;" in text
    assert "cartpole" not in text  # only the environments given more seeds
    assert readme.rl_more_seeds_section(main, {"results": []}) == ""
