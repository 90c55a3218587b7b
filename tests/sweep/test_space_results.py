"""The sweep's pieces without Ray: the space, the plan, the front, the budget pick, one trial."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from spinnq.errors import InputError
from spinnq.s2.energy import OP_CHOICES
from spinnq.sweep import GraphProblem, run_trial
from spinnq.sweep.results import Budget, best, dominates, pareto, savings
from spinnq.sweep.space import DEFAULTS, KEYS, key, parse_space, plan, settings


def test_space_parses_every_key_and_checks_values():
    sp = parse_space(["timesteps=4,8", "bits=8,4,8", "weight_scale=max,p99.5",
                      f"operating_point={','.join(OP_CHOICES)}", "tick_ms=1,shortest",
                      "neurons_per_pe=64", "finetune=0,2"])
    assert sp["bits"] == (8, 4)  # duplicates dropped, order kept
    assert sp["weight_scale"] == ("max", "p99.5")
    assert sp["tick_ms"] == (1.0, "shortest")
    assert sp["operating_point"] == tuple(OP_CHOICES)  # read from the energy model


@pytest.mark.parametrize("item, needle", [
    ("bits=8,5", "8 or 4"), ("colour=red", "unknown key 'colour'"),
    ("operating_point=0.9V", "operating_point"), ("tick_ms=0", "tick_ms"),
    ("weight_scale=p200", "weight_scale"), ("timesteps=0", ">= 1"), ("bits", "KEY=V1"),
])
def test_space_errors_name_the_key(item, needle):
    with pytest.raises(InputError, match=needle):
        parse_space([item])


def test_plan_grid_is_the_product_plus_default_first_and_random_is_seeded():
    sp = parse_space(["bits=8,4", "timesteps=2,4,6"])
    g = plan(sp, "grid", 0, 0, extra=[settings()])
    assert len(g) == 7 and g.trials[0] == settings()
    r1 = plan(sp, "random", 3, seed=5)
    assert r1 == plan(sp, "random", 3, seed=5) and len(r1) == 3
    assert len({key(s, 0) for s in r1.trials}) == 3


def test_trial_key_is_its_complete_settings_and_seed():
    assert key({"bits": 8}, 0) == key(dict(DEFAULTS), 0)
    assert key({"bits": 4}, 0) != key({"bits": 8}, 0) != key({"bits": 8}, 1)


def rec(acc, e, lat=1e-3, err=""):
    return {"settings": settings(), "accuracy": acc, "energy_j": e, "latency_s": lat,
            "error": err}


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10), st.integers(1, 10)), min_size=1, max_size=25))
def test_front_is_exactly_the_non_dominated_trials(points):
    recs = [rec(a / 10, e * 1e-3) for a, e in points]
    front = pareto(recs, "accuracy")
    ids = {id(r) for r in front}
    for r in recs:  # on the front iff nothing beats it in one and matches it in the other
        beaten = any(o["accuracy"] >= r["accuracy"] and o["energy_j"] <= r["energy_j"] and
                     (o["accuracy"], o["energy_j"]) != (r["accuracy"], r["energy_j"])
                     for o in recs)
        assert (id(r) in ids) == (not beaten)
    assert not any(dominates(a, b, "accuracy") for a in front for b in front)


def test_failed_trials_are_never_on_the_front_or_picked():
    recs = [rec(0.9, 1e-3), rec(1.0, 1e-4, err="InputError: x"), rec(float("nan"), 1e-5)]
    assert pareto(recs, "accuracy") == [recs[0]]
    assert best(recs, "accuracy") is recs[0]


def test_budget_pick_least_energy_reaching_the_accuracy_else_best_accuracy():
    recs = [rec(0.95, 3e-3, 5e-3), rec(0.92, 1e-3, 9e-3), rec(0.80, 0.5e-3, 1e-3)]
    assert best(recs, "accuracy", Budget(min_metric=0.9)) is recs[1]
    assert best(recs, "accuracy", Budget(max_energy_j=2e-3)) is recs[1]
    assert best(recs, "accuracy", Budget(max_latency_s=2e-3)) is recs[2]
    assert best(recs, "accuracy", Budget(min_metric=0.99)) is None
    sv = savings(recs, recs[0], "accuracy", 0.03)
    assert sv["pick"] is recs[1] and sv["saved"] == pytest.approx(1 - 1 / 3)


def test_one_trial_is_deterministic_and_a_bad_setting_is_recorded_not_raised(digits_net):
    graph, data, _ = digits_net
    p = GraphProblem.from_files(graph, data)
    assert p.reset == "subtract"  # from the graph's metadata
    a = run_trial(p, settings({"bits": 4, "operating_point": "0.5V"}), seed=0)
    b = run_trial(p, settings({"bits": 4, "operating_point": "0.5V"}), seed=0)
    assert a["error"] == "" and 0.5 < a["accuracy"] <= 1
    assert {k: a[k] for k in a if k != "wall_s"} == {k: b[k] for k in b if k != "wall_s"}
    bad = run_trial(p, settings({"timesteps": 99}), seed=0)
    assert "timesteps 99" in bad["error"] and "accuracy" not in bad
    assert set(KEYS) == set(a["settings"])


def test_shorter_tick_and_fewer_steps_cost_less_modelled_energy(digits_net):
    graph, data, _ = digits_net
    p = GraphProblem.from_files(graph, data)
    full = run_trial(p, settings(), 0)
    short = run_trial(p, settings({"tick_ms": "shortest"}), 0)
    few = run_trial(p, settings({"timesteps": 4}), 0)
    assert short["energy_j"] < full["energy_j"] and short["latency_s"] < full["latency_s"]
    assert few["energy_j"] < full["energy_j"]
    assert np.isclose(short["accuracy"], full["accuracy"])  # the tick changes no spike


def test_calibrate_and_finetune_trials_use_the_quant_stage_on_the_training_split(digits_net,
                                                                                tmp_path):
    import numpy as np

    from tests.conftest import digits_spikes

    graph, data, _ = digits_net
    xtr, ytr, _, _ = digits_spikes(steps=12)
    d = dict(np.load(data))
    path = tmp_path / "with_train.npz"
    np.savez(path, **d, x_train=xtr[:200].astype(np.uint8), y_train=ytr[:200])
    p = GraphProblem.from_files(graph, path)
    cal = run_trial(p, settings({"weight_scale": "calibrate", "bits": 4}), seed=0)
    ft = run_trial(p, settings({"weight_scale": "p99.9", "finetune": 1, "bits": 4}), seed=0)
    for r in (cal, ft):
        assert r["error"] == "" and 0.5 < r["accuracy"] <= 1, r["error"]
    no_train = GraphProblem.from_files(graph, data)
    r = run_trial(no_train, settings({"weight_scale": "calibrate"}), seed=0)
    assert "x_train/y_train" in r["error"]
