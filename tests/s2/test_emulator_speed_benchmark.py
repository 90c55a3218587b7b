"""The speed benchmark runs end to end (tiny sizes; no timing is asserted)."""

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "emulator_speed.py"


def test_benchmark_writes_json_with_ratios(tmp_path):
    spec = importlib.util.spec_from_file_location("emulator_speed", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "speed.json"
    res = mod.main(["--batch", "2", "--steps", "6", "--threads", "1", "--repeats", "1",
                    "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["ratios"] == res["ratios"]
    for key in ("emulator_vs_snntorch", "emulator_vs_reference", "emulator_vs_chip_realtime"):
        assert saved["ratios"][key] > 0
    assert saved["emulator"]["chip_steps"] == 6 + 5  # T + depth of the 5-layer network
    assert saved["emulator"]["pes"] > 5
    # the network is the seed paper's: 25,504 weights
    g = mod.seed_network()
    assert sum(n.weight.size for n in g.nodes.values() if hasattr(n, "weight")) == 25_504
