"""The emulator against the NIR paper's SpiNNaker2 LIF trace, and the fast scan against the
pure step functions."""

import importlib.util

import nir
import numpy as np
import pytest
import torch

from spinnq.graph.model import from_nir
from spinnq.s2.compile import S2Config, compile
from spinnq.s2.emulate import chip_params, cuba_step, emulate, lif_step
from spinnq.s2.program import COUNTERS, Population
from tests.conftest import load_trace

SCALE = 102.02  # what paper/01_lif/lif_spinnaker2.py multiplied weight, bias, threshold by


def _scaled_lif(nir_paper):
    g = nir.read(str(nir_paper / "lif_norse.nir"))
    g.nodes["0"].weight = g.nodes["0"].weight * SCALE
    g.nodes["0"].bias = g.nodes["0"].bias * SCALE
    g.nodes["1"].v_threshold = g.nodes["1"].v_threshold * SCALE
    return from_nir(g)


ENGINES = ["torch"] + (["events"] if importlib.util.find_spec("numba") else [])


@pytest.mark.parametrize("engine", ENGINES)
def test_lif_trace_matches_spinnaker2_csv_all_rows(nir_paper, engine):
    trace = load_trace(nir_paper / "lif_spinnaker2.csv")
    prog = compile(_scaled_lif(nir_paper), S2Config(weight_scale="none", reset="zero", dt=1e-4,
                                                    engine=engine))
    pop = prog.populations["1"]
    assert prog.projections[0].weight.tolist() == [[102]]  # 102.02 applied as the integer 102
    assert pop.params["alpha"][0] == np.float32(0.96)
    run = emulate(prog, trace[:, 0:1])
    assert run.steps == len(trace) + 1  # T + depth
    spikes = run.spikes["1"][0, :, 0].numpy()
    # chip step t + 1 <-> file row t (the script saved spikes[1:], v[1:])
    assert np.array_equal(spikes[1:], trace[:, 2])
    assert trace[:, 2].sum() == 4
    # Units: Run.v is NIR volts of the x102.02 graph = chip v / v_scale (v_scale = w_scale /
    # (dt/tau * r) = 25); the file holds chip v / 102.02. So file = Run.v * 25 / 102.02.
    assert pop.v_scale == 25.0
    v_file = run.v["1"][0, 1:, 0].numpy().astype(np.float64) * pop.v_scale / SCALE
    # The file is float64 arithmetic with alpha = float32(0.96) (py-spinnaker2's brian2
    # backend); our state is float32 as on the Cortex-M4F: equal to float32 precision.
    np.testing.assert_allclose(v_file, trace[:, 1], rtol=4e-7, atol=1e-7)
    assert np.all(v_file[trace[:, 2] == 1] == 0)  # voltage recorded after the reset
    assert set(run.counters["1"]) == set(COUNTERS)
    assert run.counters["1"]["spikes"].sum() == 4
    assert run.counters["1"]["syn_events"].sum() == trace[:, 0].sum()


def _pop(model: str, n: int, rng, cuba=False) -> Population:
    params = {"alpha": rng.uniform(0.5, 1, n), "threshold": rng.uniform(5, 20, n),
              "i_offset": rng.uniform(-1, 1, n), "v_reset": np.zeros(n)}
    if cuba:
        params |= {"syn_alpha": rng.uniform(0.3, 0.9, n), "i_offset_syn": rng.normal(0, 1, n)}
    return Population("p", model, (n,), {k: v.astype(np.float32) for k, v in params.items()})


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("fma", [False, True])
@pytest.mark.parametrize("add_order", ["input_first", "offset_first"])
def test_fast_lif_scan_equals_pure_step(reset, fma, add_order):
    from spinnq.s2.emulate import scan_lif

    rng = np.random.default_rng(1)
    cfg = S2Config(reset=reset, fma=fma, add_order=add_order)
    p = chip_params(_pop("lif_no_delay", 50, rng), cfg)
    inp = torch.as_tensor(rng.integers(-5, 15, (40, 3, 50)), dtype=torch.float32)
    s_fast = torch.zeros((40, 3, 50))  # float 0/1, as in the emulator's history
    v_fast = torch.zeros((40, 3, 50))
    scan_lif((inp,), [torch.zeros(3, 50)], p, s_fast, v_fast, True)
    state = (torch.zeros(3, 50),)
    for t in range(40):
        s, state = lif_step(inp[t], state, p)
        assert torch.equal(s, s_fast[t].bool())
        assert torch.equal(state[0], v_fast[t])
    assert s_fast.any()


@pytest.mark.parametrize("order", ["current_first", "voltage_first"])
def test_cuba_orders_differ_by_one_step_of_current(order):
    rng = np.random.default_rng(2)
    p = chip_params(_pop("lif_curr_exp_no_delay", 4, rng, cuba=True),
                    S2Config(cuba_order=order))
    zero = torch.zeros(1, 4)
    kick = torch.full((1, 4), 7.0)
    st = (zero, zero, zero)
    _, st = cuba_step((kick, zero), st, p)
    v_now = st[0] - p.i_offset
    if order == "current_first":  # this step's current reaches v at once
        assert torch.all(v_now != 0)
    else:
        assert torch.allclose(v_now, torch.zeros(1, 4), atol=1e-6)


def test_readout_population_never_fires_and_reports_voltage(nir_paper):
    g = nir.NIRGraph(
        nodes={"in": nir.Input(np.array([3])), "fc": nir.Linear(np.eye(2, 3) * 5.0),
               "li": nir.LI(np.full(2, 1e-3), np.ones(2), np.zeros(2)),
               "out": nir.Output(np.array([2]))},
        edges=[("in", "fc"), ("fc", "li"), ("li", "out")])
    prog = compile(from_nir(g), S2Config())
    assert prog.populations["li"].record_only
    assert any("never fires" in n for n in prog.notes)
    x = np.ones((5, 3))
    run = emulate(prog, x)
    assert run.spikes["li"].sum() == 0
    # forward Euler in NIR units, one step later than the reference: v = a*5*(1-alpha^k)/(1-alpha)
    a = 1e-4 / 1e-3
    v = 0.0
    expect = [0.0]
    for _ in range(5):
        v = (1 - a) * v + a * 5.0
        expect.append(v)
    np.testing.assert_allclose(run.v["li"][0, :, 0].numpy(), expect, rtol=1e-5)


def test_non_binary_input_is_refused(nir_paper):
    from spinnq.errors import InputError

    prog = compile(_scaled_lif(nir_paper), S2Config(weight_scale="none"))
    with pytest.raises(InputError, match="0 or 1"):
        emulate(prog, np.full((4, 1), 0.5))
