"""The speed benchmark runs end to end (tiny sizes; no timing is asserted): every contender
the same rounds, the one-core limit measured in the same run, load recorded."""

import json
import math

from tests.conftest import benchmark


def test_benchmark_writes_json_with_medians_limit_and_load(tmp_path):
    mod = benchmark("emulator_speed")
    out = tmp_path / "speed.json"
    res = mod.main(["--batch", "3", "--small", "1", "--steps", "6", "--threads", "1", "2",
                    "--rounds", "2", "--limit-s", "0.005", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["ratios"] == res["ratios"]
    names = ("events_1t", "events_2t", "torch_engine_1t", "reference_1t", "snntorch_1t",
             "snntorch_2t")
    for name in names:  # every contender ran every round, at both batch sizes
        assert len(saved[name]["rounds"]["marginal_ms"]) == 2
        assert saved[name]["per_sample_ms"] > 0
    for key in ("events_1t_over_one_core_limit", "snntorch_1t_over_events_1t",
                "events_2t_speedup_over_1t"):
        assert math.isfinite(saved["ratios"][key])
    assert saved["one_core_limit"]["ms_per_sample"] > 0
    assert len(saved["machine"]["load_average"]) == 2
    assert saved["work_per_sample"]["chip_steps"] == 6 + 5  # T + depth of the 5 layers
    assert saved["work_per_sample"]["syn_events"] > 0
    # the network is the seed paper's: 25,504 weights
    g = mod.seed_network()
    assert sum(n.weight.size for n in g.nodes.values() if hasattr(n, "weight")) == 25_504
