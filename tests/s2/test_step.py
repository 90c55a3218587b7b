"""The chip step is written once (`spinnq.s2.step`): no other module of the package writes
the chip's membrane, firing or current arithmetic, every torch implementation runs it, the
numpy binding gives the torch one's floats, and the event engine's numba cache follows it."""

from __future__ import annotations

import ast
import hashlib
import importlib
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
        elif isinstance(n, ast.Compare) and any(isinstance(o, ast.Gt) for o in n.ops):
            if any(_name(x) in THRESHOLDS for x in (n.left, *n.comparators)):
                hits.append(f"{n.lineno}: {ast.unparse(n)}")
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) \
                and n.func.attr in OPS:
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
           "def step(v, i, p):\n    v = p.alpha * v + i\n    return v > p.threshold\n")
    assert len(_chip_arithmetic(ast.parse(src))) == 4


def _spy(monkeypatch, module) -> dict[str, int]:
    """Replace `module.STEP` by the same functions, counted."""
    calls: dict[str, int] = {}

    def counted(name):
        f = getattr(step.TORCH, name)

        def g(*a):
            calls[name] = calls.get(name, 0) + 1
            return f(*a)
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
