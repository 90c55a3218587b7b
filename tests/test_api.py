"""`import spinnq as sq` gives the whole pipeline as functions, and a short session runs."""

from __future__ import annotations

import numpy as np
import pytest

import spinnq as sq

API = ("read_graph", "write_graph", "simulate", "compile", "place", "emulate", "energy",
       "calibrate", "finetune", "evaluate", "export")


@pytest.mark.parametrize("name", API)
def test_public_api_name_is_a_callable(name):
    assert callable(getattr(sq, name)) and name in dir(sq)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError):
        sq.not_a_function  # noqa: B018


def test_session_calibrate_finetune_evaluate_energy(tmp_path, digits):
    import torch

    from spinnq.nn import LIF, SpikingSequential, to_nir

    torch.manual_seed(0)
    net = SpikingSequential(torch.nn.Linear(64, 10, bias=False), LIF(beta=0.9))
    xtr, ytr, xte, yte = (a[:200] for a in digits)
    sq.write_graph(to_nir(net, (64,)), tmp_path / "net.nir")
    g = sq.read_graph(tmp_path / "net.nir")
    cal = sq.calibrate(g, (xtr, ytr), bits=4, percentiles=("max", "p99"))
    assert len(cal.table) == 2 and cal.graph.metadata["spinnq.bits"] == 4
    ft = sq.finetune(cal.graph, (xtr, ytr), val_data=(xte, yte), epochs=1)
    assert len(ft.history) == 1 and np.isfinite(ft.history[0]["loss"])
    res = sq.evaluate(ft.graph, (xte, yte), target="both")
    # the graph finetune returns scores on the emulated chip what finetune said it scores
    assert res.chip.accuracy == ft.score and res.float.accuracy is not None
    sq.write_graph(ft.graph, tmp_path / "net_int4.nir")  # carries its scales and settings
    again = sq.evaluate(sq.read_graph(tmp_path / "net_int4.nir"), (xte, yte), target="chip")
    assert again.chip.accuracy == ft.score
    cost = sq.energy(res.chip.placement, res.chip.run, res.chip.program, op="dvfs")
    assert cost.energy_j > 0
    # evaluate prices at the one default tick (1 ms, `spinnq.resolver`), recorded with the result
    assert res.settings.tick_s == 1e-3 and res.to_dict()["settings"]["bits"] == 4
    assert np.isclose(res.chip.cost.energy_j,
                      sq.energy(res.chip.placement, res.chip.run, res.chip.program,
                                tick_s=res.settings.tick_s).energy_j)
