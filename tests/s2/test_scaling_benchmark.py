"""The scaling benchmark runs end to end on small networks (default suite), and `spinnq
deploy` of the 1M-neuron dense network stays under 1.5 GB (slow)."""

import json

import pytest

from tests.conftest import benchmark


def _bench():
    return benchmark("scaling")


def test_scaling_benchmark_reports_stage_times_memory_and_unit_costs(tmp_path):
    out = tmp_path / "scaling.json"
    res = _bench().main(["--sizes", "2000", "--steps", "5", "--no-deploy", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    kinds = {r["kind"]: r for r in res["runs"]}
    assert set(kinds) == {"dense", "conv"}
    for r in kinds.values():
        assert "error" not in r, r
        assert r["compile_s"] > 0 and r["emulate_s"] > 0 and r["peak"]["process_mb"] > 0
        assert 1000 <= r["neurons"] <= 4000 and r["synapses"] > r["neurons"]
        assert r["per_synapse"]["peak_bytes"] > 0 and r["per_neuron"]["peak_bytes"] > 0
    assert kinds["dense"]["synapses"] == 100 * kinds["dense"]["neurons"]


@pytest.mark.slow
def test_deploy_of_a_million_neuron_dense_network_stays_under_1_5_gb(tmp_path):
    r = _bench().measure("dense", 1_000_000, 20, 0.05, tmp_path, deploy=True)
    assert "error" not in r and "error" not in r["deploy_cli"], r
    assert r["neurons"] == 1_000_000 and r["synapses"] == 100_000_000
    assert r["deploy_cli"]["peak_mb"] <= 1536, r["deploy_cli"]
