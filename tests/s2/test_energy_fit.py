"""`spinnq.s2.energy_fit`: the free constants fitted to measured runs recover a model the fit
did not see, within their sourced ranges, and the fit says what the measurements cannot pin
down."""

from __future__ import annotations

import numpy as np
import pytest

from spinnq.errors import InputError
from spinnq.s2.chip import ChipModel
from spinnq.s2.energy_fit import Measurement, fit, synthetic
from spinnq.s2.published_fit import place_per_pe, rate_run
from tests.s2.test_energy_activity import chain

TRUTH = {"tick_overhead": 3500.0, "packet_rx": 90.0, "lookup_step": 7.0, "syn_word": 18.0,
         "neuron_update": 45.0, "recorded_neuron": 10.0, "packet_sent": 50.0,
         "unmodelled_static_w": 0.05}


def design(n: int, seed: int = 0) -> list[Measurement]:
    """n runs of random chains, placements, rates, levels and ticks; 3 of 4 measured with
    the idle power subtracted (dynamic), 1 of 4 as the power log gives it (total)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        sizes = tuple(int(x) for x in rng.integers(20, 400, size=rng.integers(2, 4)))
        prog = chain(sizes, float(rng.uniform(0.05, 1)), i)
        pl = place_per_pe(prog, int(rng.choice([16, 32, 64, 128, 250])))
        run = rate_run(prog, {k: float(rng.uniform(0, 0.3)) for k in prog.populations},
                       20 + prog.depth)
        out.append(Measurement(f"run {i}", pl, run, prog, str(rng.choice(["0.5V", "0.8V",
                                                                          "dvfs"])),
                               float(rng.choice([0.5e-3, 1e-3, 2e-3])), 1.0,
                               "total" if i % 4 == 0 else "dynamic"))
    return out


def test_fit_recovers_a_model_it_did_not_see_from_noisy_measurements(tmp_path):
    truth = ChipModel.default().with_values(TRUTH)
    meas = synthetic(design(100), truth, noise=0.05, seed=1)
    r = fit(meas)
    print({k: (round(v, 4), TRUTH[k], round(r.std_rel[k], 3)) for k, v in r.values.items()})
    # what the measurements pin down is recovered within 10 % ...
    assert {"tick_overhead", "syn_word", "unmodelled_static_w"} <= set(r.pinned)
    for k in r.pinned:
        assert r.values[k] == pytest.approx(TRUTH[k], rel=0.10), k
    # ... the rest is said, not guessed (and every value stays inside its range)
    assert r.not_pinned and set(r.not_pinned) | set(r.pinned) == set(r.values)
    for k, v in r.values.items():
        c = ChipModel.default().constants()[k]
        assert c.low <= v <= c.high
    assert 0.03 < r.rms_rel < 0.07  # the 5 % noise, left in the residuals
    assert len(r.residuals) == 100 and all("error" in x for x in r.residuals)
    path = tmp_path / "fitted.json"
    r.model.save(path)
    back = ChipModel.load(path)
    assert back.values()["syn_word"] == pytest.approx(r.values["syn_word"])


def test_without_total_measurements_the_static_power_is_not_pinned():
    truth = ChipModel.default().with_values(TRUTH)
    meas = [m for m in synthetic(design(40, seed=3), truth, noise=0.05) if m.basis == "dynamic"]
    r = fit(meas)
    assert "unmodelled_static_w" in r.not_pinned and r.std_rel["unmodelled_static_w"] == np.inf


def test_bad_measurements_are_refused_with_the_reason():
    m = design(2)
    with pytest.raises(InputError, match="at least 2"):
        fit(m[:1])
    with pytest.raises(InputError, match="cannot fit 'joules'"):
        fit(m, free=("joules",))
    m[0].tick_s = None
    with pytest.raises(InputError, match="needs its tick"):
        fit(m)
