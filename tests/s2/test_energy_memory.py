"""`spinnq energy` and `spinnq evaluate` fit in the memory `spinnq deploy` needs on the same
dense network (benchmarks/energy_scaling.py --commands; the committed measurement at 1M-8M
neurons: benchmarks/results/energy_memory.json)."""

import json
from pathlib import Path

import pytest

from tests.conftest import benchmark

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    return benchmark("energy_scaling")


@pytest.mark.slow
def test_energy_and_evaluate_peak_within_deploys_memory(tmp_path):
    """A 400k-neuron dense network (1,601 PEs): peak RSS of energy and evaluate (fresh
    processes, GNU time) at most deploy's."""
    r = _bench().commands(400_000, 20, tmp_path)
    for c in ("deploy", "energy", "evaluate"):
        assert "error" not in r[c], r[c]
    assert r["pes"] == 1601
    assert r["energy"]["peak_mb"] <= r["deploy"]["peak_mb"], r
    assert r["evaluate"]["peak_mb"] <= r["deploy"]["peak_mb"], r


def test_committed_measurement_shows_energy_and_evaluate_within_deploys_memory():
    d = json.loads((ROOT / "benchmarks" / "results" / "energy_memory.json").read_text())
    sizes = [r["neurons"] for r in d["runs"]]
    assert max(sizes) >= 8_000_000, sizes
    for r in d["runs"]:
        assert r["energy"]["peak_mb"] <= r["deploy"]["peak_mb"], r
        assert r["evaluate"]["peak_mb"] <= r["deploy"]["peak_mb"], r


def test_committed_20m_commands_finish_within_deploys_memory():
    """The 20M-neuron dense network end to end (80,001 PEs): energy and evaluate finished
    (no MemoryError) in at most deploy's peak memory."""
    d = json.loads((ROOT / "benchmarks" / "results" / "energy_memory_20m.json").read_text())
    (r,) = d["runs"]
    assert r["neurons"] == 20_000_000 and r["pes"] == 80_001
    for c in ("deploy", "energy", "evaluate"):
        assert "error" not in r[c], r[c]
    assert max(r["energy"]["peak_mb"], r["evaluate"]["peak_mb"]) <= r["deploy"]["peak_mb"]


def test_committed_20m_measurement_of_the_energy_model_alone():
    """energy() on the 20M-neuron dense program deploy would place (80,001 PEs): measured
    in less memory than the program's own weights (the dense PE x PE matrix: 48 GB)."""
    d = json.loads((ROOT / "benchmarks" / "results" / "energy_synthetic.json").read_text())
    (r,) = d["runs"]
    assert r["neurons"] == 20_000_000 and r["pes"] == 80_001
    assert r["energy_peak_alloc_mb"] < r["weights_mb"] < r["dense_pe_matrix_mb"] / 20
    assert r["energy_low_j"] <= r["energy_j"] <= r["energy_high_j"]
