"""`SimConfig(chip_timing=True)` / `simulate --chip-timing`: the float reference with
SpiNNaker2's timing (one step per projection, biases from step 0, T + depth steps) equals the
emulator spike for spike on biased graphs with integer weights, dense and conv."""

import nir
import numpy as np
import pytest

from spinnq.graph.model import from_nir, read_graph
from spinnq.graph.simulate import SimConfig, chip_depth, simulate
from spinnq.s2 import S2Config, compile, emulate
from tests.conftest import run_cli

DT = 1e-4


def _ints(rng, shape, peak=127):
    """Integer weights whose largest magnitude is exactly `peak` (so scale 'max' is exact)."""
    w = rng.integers(-peak // 3, peak // 3 + 1, size=shape).astype(np.float64)
    w.flat[0] = peak
    return w


def _neuron(kind: str, n: int, th: float):
    if kind == "if":
        return nir.IF(r=np.ones(n), v_threshold=np.full(n, th), v_reset=np.zeros(n))
    # tau = 2 dt: alpha = 0.5 and a * r = 1 exactly, so chip units equal NIR units
    return nir.LIF(tau=np.full(n, 2 * DT), r=np.full(n, 2.0), v_leak=np.zeros(n),
                   v_threshold=np.full(n, th), v_reset=np.zeros(n))


def biased_mlp(kind: str, seed: int = 0):
    """The issue's 64-128-10 MLP with integer weights and integer biases."""
    rng = np.random.default_rng(seed)
    return from_nir(nir.NIRGraph(nodes={
        "input": nir.Input(np.array([64])),
        "fc1": nir.Affine(_ints(rng, (128, 64)), rng.integers(-20, 40, 128).astype(float)),
        "lif1": _neuron(kind, 128, 150.0),
        "fc2": nir.Affine(_ints(rng, (10, 128)), rng.integers(-30, 30, 10).astype(float)),
        "lif2": _neuron(kind, 10, 200.0),
        "output": nir.Output(np.array([10]))},
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
               ("lif2", "output")], type_check=False))


def biased_conv(seed: int = 0):
    """conv (bias) -> IF -> AvgPool2d(2) -> Flatten -> Affine (bias) -> IF, integer weights:
    with scale 'max' the folded 1/4 comes back as w_scale 4, so the chip's integers are the
    graph's integers and its voltages are 4x the reference's (exact in float32)."""
    rng = np.random.default_rng(seed)
    return from_nir(nir.NIRGraph(nodes={
        "input": nir.Input(np.array([2, 8, 8])),
        "conv": nir.Conv2d(input_shape=(8, 8), weight=_ints(rng, (4, 2, 3, 3)), stride=1,
                           padding=1, dilation=1, groups=1,
                           bias=rng.integers(-10, 30, 4).astype(float)),
        "if1": nir.IF(r=np.ones((4, 8, 8)), v_threshold=np.full((4, 8, 8), 100.0),
                      v_reset=np.zeros((4, 8, 8))),
        "pool": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                              padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(_ints(rng, (10, 64)), rng.integers(-5, 15, 10).astype(float)),
        "if2": _neuron("if", 10, 40.0),
        "output": nir.Output(np.array([10]))},
        edges=[("input", "conv"), ("conv", "if1"), ("if1", "pool"), ("pool", "flat"),
               ("flat", "fc"), ("fc", "if2"), ("if2", "output")], type_check=False))


def _mismatches(g, x, layers, weight_scale="none", reset="zero") -> tuple[int, int, int]:
    """(spikes of the reference, mismatches with chip timing, mismatches shifted plainly)."""
    prog = compile(g, S2Config(weight_scale=weight_scale, reset=reset, engine="torch"))
    run = emulate(prog, x, record=layers)
    ref = simulate(g, x, SimConfig(reset=reset, chip_timing=True, record=tuple(layers)))
    plain = simulate(g, x, SimConfig(reset=reset, record=tuple(layers)))
    T, total, timed, shifted = x.shape[1], 0, 0, 0
    for depth, name in enumerate(layers, start=1):
        chip = run.spikes[name].numpy()
        assert ref.spikes[name].shape == chip.shape  # T + depth steps, like the emulator
        total += int(ref.spikes[name].sum())
        timed += int((ref.spikes[name].numpy() != chip).sum())
        shifted += int((plain.spikes[name].numpy() != chip[:, depth:depth + T]).sum())
    return total, timed, shifted


@pytest.mark.parametrize("kind, reset", [("if", "zero"), ("lif", "zero"), ("if", "subtract")])
def test_chip_timing_equals_emulator_on_biased_integer_mlp(kind, reset):
    g = biased_mlp(kind)
    x = (np.random.default_rng(1).random((4, 30, 64)) < 0.3).astype(np.float32)
    total, timed, shifted = _mismatches(g, x, ["lif1", "lif2"], reset=reset)
    assert total > 200
    assert timed == 0
    assert shifted > 0  # the plain reference shifted by the latency does not: biases differ


def test_chip_timing_equals_emulator_on_biased_integer_conv_with_avgpool():
    g = biased_conv()
    x = (np.random.default_rng(2).random((3, 25, 2, 8, 8)) < 0.3).astype(np.float32)
    total, timed, shifted = _mismatches(g, x, ["if1", "if2"], weight_scale="max")
    assert total > 200
    assert timed == 0 and shifted > 0


@pytest.mark.parametrize("name, depth", [("cnn_sinabs", 5), ("braille_noDelay_bias_zero", 2)])
def test_chip_depth_is_the_compiled_programs_depth(nir_paper, name, depth):
    g = read_graph(nir_paper / f"{name}.nir")
    assert chip_depth(g, DT) == compile(g).depth == depth


def test_cli_simulate_chip_timing_equals_deploy(monkeypatch, capsys, tmp_path):
    g = biased_mlp("if")
    nir.write(tmp_path / "g.nir", g.to_nir())
    x = (np.random.default_rng(3).random((2, 20, 64)) < 0.3).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, _, err = run_cli(monkeypatch, capsys, "simulate", tmp_path / "g.nir", "--input",
                           tmp_path / "x.npy", "--out", tmp_path / "sim.npz", "--chip-timing")
    assert code == 0, err
    code, _, err = run_cli(monkeypatch, capsys, "deploy", tmp_path / "g.nir", "--input",
                           tmp_path / "x.npy", "--out", tmp_path / "chip.npz",
                           "--weight-scale", "none")
    assert code == 0, err
    sim, chip = np.load(tmp_path / "sim.npz"), np.load(tmp_path / "chip.npz")
    assert sim["spikes/lif2"].shape == chip["spikes/lif2"].shape == (2, 22, 10)
    assert sim["spikes/lif2"].sum() > 0
    assert np.array_equal(sim["spikes/lif2"], chip["spikes/lif2"])
