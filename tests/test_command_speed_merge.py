"""benchmarks/command_speed.py --parts: a partial run merges into the results JSON, keeping the
other parts' medians, ratios and provenance, and the README line cites each part's own."""

from __future__ import annotations

from tests.conftest import benchmark


def _bench():
    return benchmark("command_speed"), benchmark("readme_numbers")


def _load(x: float) -> list[dict]:
    return [{"before": [x, x, x], "after": [x, x, x]}]


def old_results() -> dict:
    """A results JSON as written before `parts` existed (every part in one run)."""
    return {"commit": "aaa", "args": {"parts": ["deploy", "startup"], "steps": 600,
                                      "density": 0.05},
            "machine": {"cpus": 2, "load_average": _load(1.0)},
            "rounds": [{"deploy_cli_4": {"cpu_s": 1.0}, "help": {"cpu_s": 0.2}}],
            "median": {"deploy_cli_ms_per_sample": 9.0, "deploy_engine_ms_per_sample": 3.0,
                       "deploy_in_process_ms_per_sample": 3.0, "help_cpu_s": 0.2,
                       "help_wall_s": 0.2, "bad_flag_cpu_s": 0.2, "bad_flag_wall_s": 0.2},
            "ratios": {"deploy_cli_over_engine": 3.0, "deploy_in_process_over_engine": 1.0}}


def test_a_partial_run_replaces_its_parts_and_keeps_the_others():
    cs, rn = _bench()
    new = {"commit": "bbb", "args": {"parts": ["deploy"], "steps": 600, "density": 0.05},
           "machine": {"cpus": 2, "load_average": _load(9.0)},
           "median": {"deploy_cli_ms_per_sample": 4.0, "deploy_engine_ms_per_sample": 3.5,
                      "deploy_in_process_ms_per_sample": 3.6},
           "ratios": {"deploy_cli_over_engine": 4.0 / 3.5,
                      "deploy_in_process_over_engine": 3.6 / 3.5},
           "parts": {"deploy": {"commit": "bbb", "args": {}, "load_average": _load(9.0),
                                "rounds": [{}, {}]}}}
    out = cs.merge(old_results(), new, ["deploy"])
    assert out["median"]["deploy_cli_ms_per_sample"] == 4.0  # replaced
    assert out["median"]["help_cpu_s"] == 0.2  # kept
    assert out["ratios"]["deploy_cli_over_engine"] == 4.0 / 3.5
    assert out["parts"]["startup"]["commit"] == "aaa"
    assert out["parts"]["startup"]["rounds"] == [{"help": {"cpu_s": 0.2}}]
    assert out["parts"]["deploy"]["commit"] == "bbb"
    out["median"] |= {"evaluate_cli_ms_per_sample": 4.0, "evaluate_engine_ms_per_sample": 3.5}
    out["ratios"] |= {"evaluate_cli_over_engine": 1.0, "evaluate_in_process_over_engine": 1.0}
    out["median"]["evaluate_in_process_ms_per_sample"] = 3.5
    line = rn.command_speed_section(out)
    assert "startup: medians of 1 interleaved rounds at load average 1.0-1.0, commit aaa" in line
    assert "deploy: medians of 2 interleaved rounds at load average 9.0-9.0, commit bbb" in line


def test_every_key_belongs_to_a_part():
    cs, _ = _bench()
    assert [cs.part_of(k) for k in ("deploy_cli_4", "evaluate_engine_36", "help", "bad_flag",
                                    "quantize_cli", "calib_emulation", "candidates",
                                    "train_snntorch_s", "fused_vs_stepped_max_weight_diff")] \
        == ["deploy", "evaluate", "startup", "startup", "quantize", "quantize", "quantize",
            "train", "train"]
