"""benchmarks/control_qat_validation.py: a run's float network quantised with candidate QAT
settings, in a copy of the run, and played on the chip on fresh validation episodes; the run
itself is never touched."""

from __future__ import annotations

import hashlib
import json

import pytest

from spinnq.errors import SettingsError
from spinnq.tasks.control.run import default_config, run_control
from tests.conftest import benchmark


def _digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_candidates_are_scored_in_copies_on_fresh_episodes(tmp_path, monkeypatch):
    bench = benchmark("control_qat_validation")
    cfg = default_config("acrobot", seed=1, quick=True, stages=("float", "chip"))
    run_control(cfg, out=tmp_path / "run", quiet=True)
    before = _digests(tmp_path / "run")
    default = bench.score(tmp_path / "run", {}, tmp_path / "work" / "run-c0", episodes=3)
    gap = bench.parse_candidate("finetune.advantage_weight=30,finetune.qat_epochs=2")
    other = bench.score(tmp_path / "run", gap, tmp_path / "work" / "run-c1", episodes=3)
    assert _digests(tmp_path / "run") == before  # the run itself: not a byte changed
    assert (default["episodes"], default["seed"]) == (3, 1)
    assert default["finetune"]["advantage_weight"] == cfg.finetune.advantage_weight
    assert (other["finetune"]["advantage_weight"], other["finetune"]["qat_epochs"]) == (30.0, 2)
    # the copies play the fresh validation episodes, not the test ones
    copied = json.loads((tmp_path / "work" / "run-c1" / "config.json").read_text())
    assert copied["eval_seed"] == benchmark("control_validation").fresh_seed(1)
    assert copied["eval_seed"] != cfg.eval_seed
    # the float network is the run's in every copy: the same float returns
    assert default["float_fresh_mean"] == other["float_fresh_mean"]
    assert -500.0 <= default["chip_fresh_mean"] <= 0.0
    # a scored copy is read back, not redone
    mtime = (tmp_path / "work" / "run-c1" / "stages.json").stat().st_mtime_ns
    assert bench.score(tmp_path / "run", gap, tmp_path / "work" / "run-c1", episodes=3) == other
    assert (tmp_path / "work" / "run-c1" / "stages.json").stat().st_mtime_ns == mtime
    # the command: the same copies read back, one row per (candidate, run), means per candidate
    monkeypatch.setattr("sys.argv", [
        "control_qat_validation.py", str(tmp_path / "run"), "--work", str(tmp_path / "work"),
        "--candidate", "default", "--candidate",
        "finetune.advantage_weight=30,finetune.qat_epochs=2", "--episodes", "3",
        "--out", str(tmp_path / "out.json")])
    bench.main()
    out = json.loads((tmp_path / "out.json").read_text())
    assert [r["chip_fresh_mean"] for r in out["rows"]] == [default["chip_fresh_mean"],
                                                          other["chip_fresh_mean"]]
    assert out["chip_fresh_mean_by_candidate"]["default"] == default["chip_fresh_mean"]


def test_a_bad_candidate_is_refused_naming_the_setting():
    bench = benchmark("control_qat_validation")
    with pytest.raises(SettingsError, match="advantage_weigh"):
        bench.parse_candidate("finetune.advantage_weigh=30")
