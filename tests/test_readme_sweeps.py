"""README's sweep paragraphs are rendered from the stored sweeps (benchmarks/sweep_fronts.py)
with today's energy model: every trial carries its energy range, and the summary says which
front points keep their order across it."""

import csv
import json
from pathlib import Path

from tests.conftest import benchmark

ROOT = Path(__file__).resolve().parents[1]


def test_readme_sweep_paragraphs_are_rendered_from_the_stored_sweeps():
    fronts = benchmark("sweep_fronts")
    RESULTS, SWEEPS, section = fronts.RESULTS, fronts.SWEEPS, fronts.section
    text = section()
    assert text in (ROOT / "README.md").read_text()
    stored = [t for t in SWEEPS if (RESULTS / f"{t}_summary.json").exists()]
    assert "cartpole" in stored
    for task in stored:
        assert f"spinnq sweep {task}" in text
        rows = list(csv.DictReader((RESULTS / f"{task}_trials.csv").open()))
        assert rows and all(float(r["energy_low_j"]) <= float(r["energy_j"])
                            <= float(r["energy_high_j"]) for r in rows)
        info = json.loads((RESULTS / f"{task}_summary.json").read_text())
        assert info["trials"] == len(rows) and set(info["pareto_order_kept"])
