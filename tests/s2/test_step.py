"""The chip step is written once (`spinnq.s2.step`): no other module of the package writes
the chip's membrane, firing or current arithmetic, every torch implementation runs it, the
numpy binding gives the torch one's floats, and the event engine's numba cache follows it."""

from __future__ import annotations

import ast
import hashlib
import importlib
import math
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

import spinnq.s2.step as step
from spinnq.graph.model import from_nir
from spinnq.quant import finetuning
from spinnq.s2 import S2Config, compile
from spinnq.s2.emulate import emulate

# the module (the package's `spinnq.s2.emulate` attribute is the function)
emulate_mod = importlib.import_module("spinnq.s2.emulate")

PKG = Path(step.__file__).resolve().parents[1]
# The float side reads a NIR node its own way (the reference simulator, NIR's and each
# framework's kernels) or trains float neurons: not the chip's arithmetic.
FLOAT_SIDE = ("graph/", "nn/")
DECAY = "alpha"  # the chip's decays: alpha (membrane), syn_alpha (currents)
THRESHOLDS = {"th", "thr", "threshold", "v_th", "vth", "th_pop", "v_threshold"}
OPS = {"mul", "mul_", "multiply", "addcmul", "addcmul_", "gt", "gt_", "greater"}


def _name(node: ast.AST) -> str:
    """The name a value is read from: `p.alpha`, `alpha[g]`, `alpha` -> 'alpha'."""
    while isinstance(node, ast.Subscript | ast.Call):
        node = node.value if isinstance(node, ast.Subscript) else node.func
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else ""


def _chip_arithmetic(tree: ast.AST) -> list[str]:
    """Where a module multiplies by a decay or compares against a threshold (operators and
    the torch/numpy calls that do the same in place)."""
    hits = []
    for n in ast.walk(tree):
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mult):
            if any(DECAY in _name(x).lower() for x in (n.left, n.right)):
                hits.append(f"{n.lineno}: {ast.unparse(n)}")
        elif isinstance(n, ast.AugAssign) and isinstance(n.op, ast.Mult):  # v *= alpha
            if DECAY in _name(n.value).lower():
                hits.append(f"{n.lineno}: {ast.unparse(n)}")
        elif isinstance(n, ast.Compare) and any(isinstance(o, ast.Gt) for o in n.ops):
            if any(_name(x) in THRESHOLDS for x in (n.left, *n.comparators)):
                hits.append(f"{n.lineno}: {ast.unparse(n)}")
        elif isinstance(n, ast.Call) and _name(n.func) in OPS:  # torch.mul(...), mul(...)
            args = [_name(a) for a in (*n.args, *(k.value for k in n.keywords))]
            if any(DECAY in a.lower() or a in THRESHOLDS for a in args):
                hits.append(f"{n.lineno}: {ast.unparse(n)}")
    return hits


def test_the_chip_step_is_written_only_in_step_py():
    found = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        if rel == "s2/step.py" or rel.startswith(FLOAT_SIDE):
            continue
        hits = _chip_arithmetic(ast.parse(path.read_text()))
        if hits:
            found[rel] = hits
    assert not found, f"chip arithmetic outside spinnq/s2/step.py: {found}"
    # ... and the scan does see it where it is written
    assert len(_chip_arithmetic(ast.parse((PKG / "s2" / "step.py").read_text()))) >= 4


def test_the_scan_catches_a_hand_written_step():
    src = ("def scan(v, i, p, s):\n    v.mul_(p.alpha)\n    v.add_(i)\n"
           "    torch.gt(v, p.threshold, out=s)\n    return v\n"
           "def step(v, i, p):\n    v = p.alpha * v + i\n    return v > p.threshold\n"
           "def aug(v, i, alpha):\n    v *= alpha\n    return mul(alpha, v, None)\n")
    assert len(_chip_arithmetic(ast.parse(src))) == 6


def _spy(monkeypatch, module) -> dict[str, int]:
    """Replace `module.STEP` by the same functions, counted."""
    calls: dict[str, int] = {}

    def counted(name):
        f = getattr(step.TORCH, name)

        def g(*a, **kw):
            calls[name] = calls.get(name, 0) + 1
            return f(*a, **kw)
        return g
    monkeypatch.setattr(module, "STEP", step.Step(*(counted(n) for n in step.Step._fields)))
    return calls


def _graph() -> nir.NIRGraph:
    rng = np.random.default_rng(3)
    n_in, n_c, n_out = 6, 5, 3
    nodes = {
        "input": nir.Input(np.array([n_in])),
        "fc1": nir.Linear(rng.normal(0, 1.5, (n_c, n_in)).astype(np.float32)),
        "cuba": nir.CubaLIF(tau_syn=np.full(n_c, 2e-3), tau_mem=np.full(n_c, 5e-3),
                            r=np.ones(n_c), v_leak=np.zeros(n_c),
                            v_threshold=np.full(n_c, 0.5), w_in=np.ones(n_c)),
        "fc2": nir.Linear(rng.normal(0, 1.5, (n_out, n_c)).astype(np.float32)),
        "lif": nir.LIF(tau=np.full(n_out, 5e-3), r=np.ones(n_out), v_leak=np.zeros(n_out),
                       v_threshold=np.full(n_out, 0.5)),
        "output": nir.Output(np.array([n_out])),
    }
    order = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:], strict=True)))


def test_the_torch_engine_and_fine_tuning_run_the_shared_step(monkeypatch):
    g = from_nir(_graph())
    cfg = S2Config(engine="torch", dt=1e-3)
    x = (torch.rand(2, 12, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    calls = _spy(monkeypatch, emulate_mod)
    run = emulate(compile(g, cfg), x, record=["cuba", "lif"])
    assert calls["currents"] and calls["neuron"] and calls["integrate"] and calls["fire"]
    assert calls["reset"]
    assert run.spikes["cuba"].sum() > 0  # the step did run on a firing network
    ft_calls = _spy(monkeypatch, finetuning)
    net = finetuning.ChipNet(g, cfg)
    spikes, _ = net(x)
    # its currents and reset through its own STEP, its membrane through emulate.membrane
    assert ft_calls["currents"] and ft_calls["reset"] and calls["membrane"]
    for name in ("cuba", "lif"):
        assert torch.equal(spikes[name], run.spikes[name].reshape(spikes[name].shape))


@pytest.mark.parametrize("fma", [False, True])
@pytest.mark.parametrize("offset_first", [False, True])
@pytest.mark.parametrize("subtract", [False, True])
def test_numpy_binding_gives_the_torch_floats(fma, offset_first, subtract):
    """The definition is library-neutral: bound to numpy it gives torch's floats bit for
    bit (the event engine binds it to numba; the engine tests compare that one)."""
    rng = np.random.default_rng(int(fma) + 2 * offset_first + 4 * subtract)
    n = 4096
    v, i = rng.normal(0, 30, n).astype(np.float32), rng.integers(-60, 60, n).astype(np.float32)
    alpha = rng.uniform(0.5, 1, n).astype(np.float32)
    off, th = rng.normal(0, 3, n).astype(np.float32), rng.uniform(5, 40, n).astype(np.float32)
    vr = rng.normal(0, 1, n).astype(np.float32)
    npy = step.define(np.float64, np.float32, np.where)
    args = (alpha, off, th, vr)
    s_np, v_np = npy.neuron(v, i, *args, subtract, fma, offset_first)
    s_t, v_t = step.TORCH.neuron(*(torch.from_numpy(a) for a in (v, i, *args)), subtract, fma,
                                 offset_first)
    assert v_np.dtype == np.float32
    assert np.array_equal(s_np, s_t.numpy()) and s_np.any() and not s_np.all()
    assert np.array_equal(v_np, v_t.numpy())


def test_the_event_engines_cache_follows_the_step():
    """numba keys a cached kernel on events.py's stamp, not on step.py's, whose functions
    are compiled into it: events.py carries step.py's digest, so a change to the step
    changes events.py too and the kernels are recompiled."""
    from spinnq.s2 import events

    digest = hashlib.sha256((PKG / "s2" / "step.py").read_bytes()).hexdigest()[:16]
    assert events.STEP_DIGEST == digest, (
        "spinnq/s2/step.py changed: set STEP_DIGEST in spinnq/s2/events.py to "
        f"{digest!r} (numba's cached kernels would otherwise run the old step)")


# ------------------------------------------------- in place, and the spikes as 0/1 floats
def _bits_or_both_zero(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The same floats bit for bit, but for the sign of a zero (what the float select may
    change; no comparison or non-zero value sees it)."""
    same = a.view(torch.int32) == b.view(torch.int32)
    return bool(torch.all(same | ((a == 0) & (b == 0))))


@pytest.mark.parametrize("subtract", [False, True])
@pytest.mark.parametrize("v_reset", ["tensor", "zeros", "number"])
def test_float_spikes_reset_like_bool_ones(subtract, v_reset):
    """`fire` into a float tensor and the reset on those 0/1 floats, written into the state:
    the pure bool step's floats (zeros of both signs, huge and tiny values included)."""
    rng = np.random.default_rng(5)
    n = 6000
    v = torch.from_numpy(rng.normal(0, 30, (2, n)).astype(np.float32))
    v[0, :8] = torch.tensor([0.0, -0.0, 1e30, -1e30, 1e-40, -1e-40, 3.0, -3.0])
    th = torch.from_numpy(rng.uniform(-5, 40, n).astype(np.float32))
    th[:3] = torch.tensor([0.0, -0.0, 2.5])
    vr = {"tensor": torch.from_numpy(rng.normal(0, 2, n).astype(np.float32)),
          "zeros": torch.zeros(n), "number": 0.0}[v_reset]
    s_bool = step.TORCH.fire(v, th)
    want = step.TORCH.reset(v, s_bool, th, vr if v_reset != "number" else torch.zeros(n),
                            subtract)
    s = torch.full((2, n), 7.0)
    got = v.clone()
    assert step.TORCH.fire(got, th, out=s) is s
    assert step.TORCH.reset(got, s, th, vr, subtract, out=got) is got
    assert torch.equal(s, s_bool.float()) and s_bool.any() and not s_bool.all()
    assert _bits_or_both_zero(got, want)
    # without `out` the float select leaves its inputs alone
    again = step.TORCH.reset(v, s, th, vr, subtract)
    assert again is not v and _bits_or_both_zero(again, want)


def test_an_infinite_v_makes_the_float_reset_nan():
    """The premise of the torch scan's check: where the float select meets an infinite v it
    gives NaN (never another finite value), and NaN stays in v through the next steps."""
    v = torch.tensor([[math.inf, -math.inf, 1.0]])
    th, s = torch.full((3,), 2.0), torch.zeros(1, 3)
    step.TORCH.fire(v, th, out=s)
    r = step.TORCH.reset(v, s, th, 0.0, False)
    assert torch.isnan(r[0, :2]).all() and r[0, 2] == 1.0
    x = step.TORCH.integrate(r, torch.full((1, 3), 5.0), torch.full((3,), 0.5), False)
    assert torch.isnan(step.TORCH.reset(x, step.TORCH.fire(x, th), th, 0.0, False)[0, :2]).all()


def test_pure_calls_do_not_write_their_inputs():
    v, i = torch.ones(2, 4) * 3, torch.ones(2, 4)
    alpha, th, off, vr = torch.full((4,), 0.5), torch.full((4,), 2.0), torch.ones(4), torch.zeros(4)
    keep = (v.clone(), i.clone())
    for subtract in (False, True):
        step.TORCH.neuron(v, i, alpha, off, th, vr, subtract, False, False)
        step.TORCH.currents(v, i, i, i, alpha, off, off, True)
    assert torch.equal(v, keep[0]) and torch.equal(i, keep[1])


def _cuba_params(n: int, rng, cfg: S2Config) -> emulate_mod.ChipParams:
    from spinnq.s2.program import Population

    params = {"alpha": rng.uniform(0.5, 1, n), "threshold": rng.uniform(5, 20, n),
              "i_offset": rng.uniform(-1, 1, n), "v_reset": rng.normal(0, 1, n),
              "syn_alpha": rng.uniform(0.3, 0.9, n), "i_offset_syn": rng.normal(0, 1, n)}
    pop = Population("p", "lif_curr_exp", (n,), {k: v.astype(np.float32)
                                                 for k, v in params.items()})
    return emulate_mod.chip_params(pop, cfg)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("order", ["current_first", "voltage_first"])
@pytest.mark.parametrize("spiking", [True, False])
def test_in_place_cuba_scan_equals_cuba_step(reset, order, spiking):
    """The torch engine's lif_curr_exp scan (state and currents written in place, float
    spikes) against `cuba_step` stepped: the same spikes and floats every step."""
    rng = np.random.default_rng(7)
    p = _cuba_params(40, rng, S2Config(reset=reset, cuba_order=order))
    T = 30
    I = tuple(torch.as_tensor(rng.integers(lo, hi, (T, 3, 40)), dtype=torch.float32)
              for lo, hi in ((0, 12), (-8, 1)))
    st = [torch.zeros(3, 40) for _ in range(3)]
    s_fast, v_fast = torch.zeros(T, 3, 40), torch.zeros(T, 3, 40)
    emulate_mod.scan_cuba(I, st, p, s_fast, v_fast, spiking)
    ref_p = p if spiking else p._replace(threshold=torch.full_like(p.threshold, math.inf))
    state = tuple(torch.zeros(3, 40) for _ in range(3))
    for t in range(T):
        s, state = emulate_mod.cuba_step((I[0][t], I[1][t]), state, ref_p)
        assert torch.equal(s.float(), s_fast[t])
        assert torch.equal(state[0], v_fast[t])
    assert all(torch.equal(a, b) for a, b in zip(st, state, strict=True))
    assert s_fast.any() == spiking


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("case", ["inf_input", "inf_threshold"])
def test_lif_scan_is_exact_where_the_float_reset_is_not(reset, case):
    """An infinite v (here from the input: the engine's sums are bounded, an overflow is
    not) meets the float reset: the scan sees the NaN and runs the block again with bool
    spikes (without that rerun this test fails); an infinite threshold: exact too."""
    rng = np.random.default_rng(9)
    n, T = 30, 20
    pop = _cuba_params(n, rng, S2Config())  # lif params: the same fields, currents unused
    p = emulate_mod.ChipParams(pop.alpha, pop.threshold, pop.i_offset, pop.v_reset,
                               reset == "subtract")
    inp = torch.as_tensor(rng.integers(-5, 15, (T, 2, n)), dtype=torch.float32)
    if case == "inf_input":
        inp[5, 0, :4] = math.inf
    else:
        p = p._replace(threshold=p.threshold.clone().index_fill_(0, torch.tensor([0, 1]),
                                                                   math.inf))
    st = [torch.zeros(2, n)]
    s_fast, v_fast = torch.zeros(T, 2, n), torch.zeros(T, 2, n)
    emulate_mod.scan_lif((inp,), st, p, s_fast, v_fast, True)
    state = (torch.zeros(2, n),)
    for t in range(T):
        s, state = emulate_mod.lif_step(inp[t], state, p)
        assert torch.equal(s.float(), s_fast[t])
        assert torch.equal(state[0], v_fast[t])
    assert s_fast.any()


@pytest.mark.parametrize("fma", [False, True])
@pytest.mark.parametrize("offsets", [False, True])
def test_lif_scan_without_a_decay_equals_the_step_multiplying_by_one(fma, offsets):
    """IF neurons (alpha 1): the scan does not multiply (alpha None), the pure step
    multiplies by 1: the same floats."""
    rng = np.random.default_rng(11)
    n, T = 40, 25
    pop = _cuba_params(n, rng, S2Config())
    off = pop.i_offset if offsets else torch.zeros(n)
    p = emulate_mod.ChipParams(torch.ones(n), pop.threshold, off, pop.v_reset, True, fma)
    inp = torch.as_tensor(rng.normal(0, 3, (T, 2, n)), dtype=torch.float32)
    s_fast, v_fast = torch.zeros(T, 2, n), torch.zeros(T, 2, n)
    emulate_mod.scan_lif((inp,), [torch.zeros(2, n)], p, s_fast, v_fast, True)
    state = (torch.zeros(2, n),)
    for t in range(T):
        s, state = emulate_mod.lif_step(inp[t], state, p)
        assert torch.equal(s.float(), s_fast[t]) and torch.equal(state[0], v_fast[t])
    assert s_fast.any()
