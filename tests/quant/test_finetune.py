"""`finetune`'s torch module computes what the chip computes: spike for spike equal to the
emulator (both engines), on the NIR paper's graphs (recurrent CubaLIF, a Sinabs CNN with
pooling) and on graphs with integer weights; its export compiles to the same integers."""

from __future__ import annotations

import copy

import nir
import numpy as np
import pytest
import torch

from spinnq.graph import read_graph
from spinnq.quant.finetuning import ChipNet
from spinnq.s2 import S2Config, compile
from spinnq.s2.emulate import emulate

PAPER = {"braille_noDelay_bias_zero": 40, "braille_noDelay_noBias_subtract": 40,
         "cnn_sinabs": 12, "lif_norse": 40}


def integer_weights(g):
    """The same graph with its weights rounded to integers (deployed with scale 'none')."""
    g = copy.copy(g)
    g.nodes = dict(g.nodes)
    for name, node in g.nodes.items():
        if isinstance(node, nir.Affine | nir.Linear | nir.Conv2d):
            new = copy.copy(node)
            w = np.asarray(node.weight, dtype=np.float64)
            new.weight = np.round(w * 20 / max(np.abs(w).max(), 1e-9)).astype(np.float32)
            g.nodes[name] = new
    return g


def mismatches(g, cfg: S2Config, T: int, seed: int = 0) -> tuple[dict, dict]:
    net = ChipNet(g, cfg)
    x = (np.random.default_rng(seed).random((3, T, *g.input_shape)) < 0.3).astype(np.float32)
    with torch.no_grad():
        spikes, _ = net(torch.from_numpy(x))
    run = emulate(net.program, x, record=list(net.program.populations))
    bad = {n: int((spikes[n].reshape(run.spikes[n].shape) != run.spikes[n]).sum())
           for n in net.order}
    fired = {n: int(run.spikes[n].sum()) for n in net.order}
    return bad, fired


@pytest.mark.parametrize("name", list(PAPER))
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("weights", ["integer", "float"])
def test_chipnet_spikes_equal_the_emulator_on_nir_paper_graphs(nir_paper, name, reset,
                                                               weights):
    g = read_graph(nir_paper / f"{name}.nir")
    cfg = S2Config(reset=reset)
    if weights == "integer":
        g, cfg = integer_weights(g), cfg.with_(weight_scale="none")
    bad, fired = mismatches(g, cfg, PAPER[name])
    assert sum(fired.values()) > 0  # a silent network would prove nothing
    assert bad == dict.fromkeys(bad, 0)


@pytest.mark.parametrize("engine", ["torch", "events"])
def test_chipnet_equals_both_emulator_engines_on_a_conv_graph(nir_paper, engine):
    g = read_graph(nir_paper / "cnn_sinabs.nir")
    bad, fired = mismatches(g, S2Config(engine=engine, reset="subtract"), 10, seed=3)
    assert fired["12"] > 0 and bad == dict.fromkeys(bad, 0)


def test_export_compiles_to_the_modules_integers_after_training_steps(nir_paper):
    g = read_graph(nir_paper / "cnn_sinabs.nir")
    cfg = S2Config(reset="subtract", weight_scale="p99.9")
    net = ChipNet(g, cfg)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    x = (torch.rand(2, 6, *g.input_shape) < 0.3).float()
    for _ in range(2):  # change the weights by training, through the surrogate
        loss = net.scores(x).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = net.export()
    prog = compile(out, cfg.with_(graph_scales=True))
    changed = 0
    for pr, old, mine in zip(prog.projections, net.program.projections, net.projs, strict=True):
        with torch.no_grad():
            ints = mine.ints()
        if mine.kind == "dense" and mine.pool:
            continue  # folded matrix: covered by the spike test below
        assert np.array_equal(pr.weight, ints.numpy().astype(np.int64))
        changed += int((pr.weight != old.weight).sum())
    assert changed > 0  # training moved some integers
    bad, _ = mismatches(out, cfg.with_(graph_scales=True), 8)
    assert bad == dict.fromkeys(bad, 0)


def test_chipnet_and_calibrate_follow_compile_on_avgpool_and_scale(digits):
    """snnTorch's AvgPool2d (compiled as SumPool with 1/k^2 in the next weights) and a Scale
    node: the module's integers and spikes are the compiled program's, and a calibrated graph
    deploys with the integers of the original at the chosen scale."""
    from spinnq.graph import from_nir
    from spinnq.quant.calibration import calibrate
    from tests.quant import digits_models as dm

    torch.manual_seed(0)
    raw = dm.export(dm.convnet(4), (1, 8, 8))
    nodes, edges = dict(raw.nodes), list(raw.edges)
    nodes["scale"] = nir.Scale(np.full(10, 1.5, np.float32))  # after the dense layer '4'
    edges = [e for e in edges if e != ("4", "5")] + [("4", "scale"), ("scale", "5")]
    g = from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    cfg = S2Config(reset="subtract", convention="snntorch", weight_scale="p99.9")
    bad, fired = mismatches(g, cfg, 10)
    assert sum(fired.values()) > 0 and bad == dict.fromkeys(bad, 0)
    x = digits[0][:60].reshape(60, -1, 1, 8, 8)
    cal = calibrate(g, (x, digits[1][:60]), percentiles=("p99.9",), cfg=cfg)
    ref = compile(g, cfg)
    got = compile(cal.graph, cfg.with_(graph_scales=True))
    for a, b in zip(ref.projections, got.projections, strict=True):
        assert np.array_equal(a.weight, b.weight)


def test_fine_tuning_is_kept_on_validation_gains_when_train_accuracy_is_saturated(digits):
    """The keep rule looks at data the network is not trained on: trained on samples where
    PTQ is already right every time (a held-out share of them cannot show a gain), the
    fine-tuned graph is kept because it scores better on the validation data, and that
    score is the chip's accuracy of the returned graph."""
    from spinnq.graph import from_nir
    from spinnq.quant import calibrate, evaluate, finetune
    from spinnq.quant.settings import configs
    from tests.quant import digits_models as dm

    torch.set_num_threads(1)
    x, y = digits[0][:, :10], digits[1]
    torch.manual_seed(0)
    net = dm.train(dm.mlp(16), x[:600], y[:600], epochs=4)  # room left to learn
    g = from_nir(dm.export(net, (64,)))
    cfg, sim = configs(g, reset="subtract", convention="snntorch")
    cal = calibrate(g, (x[:600], y[:600]), bits=4, percentiles=("max",), cfg=cfg, sim=sim)
    right = evaluate(cal.graph, (x[:600], y[:600]), target="chip").chip.predictions == y[:600]
    train = (x[:600][right][:300], y[:600][right][:300])  # PTQ scores 100 % here
    val = (x[600:800], y[600:800])
    ft = finetune(cal.graph, train, val=val, epochs=3, cfg=cfg, sim=sim)
    assert ft.val_source == "validation data" and ft.val_samples == 200
    assert ft.improved and ft.score > ft.score_start + 0.005 and ft.best_epoch >= 1
    assert evaluate(ft.graph, val, target="chip").chip.accuracy == pytest.approx(ft.score)
    held = finetune(cal.graph, train, epochs=3, cfg=cfg, sim=sim)  # the old rule
    assert held.score_start == 1.0 and not held.improved


def test_training_starts_between_the_integers_with_the_same_integers(nir_paper):
    """`start_from` (the float teacher's weights) and `dither` move the trainable weights off
    the integer centres -- so rounding boundaries are not all crossed at the same step --
    without changing a single integer the module computes with."""
    from spinnq.quant.calibration import calibrate

    g = read_graph(nir_paper / "cnn_sinabs.nir")
    cfg = S2Config(reset="subtract", bits=4)
    cal = calibrate(g, objective=lambda graph, c: 0.0, percentiles=("p99.9",), cfg=cfg)
    qcfg = cfg.with_(graph_scales=True)
    net = ChipNet(cal.graph, qcfg)
    assert net.start_from(g) > 0
    assert all(pr.check() == 0 for pr in net.projs)
    other = ChipNet(cal.graph, qcfg)
    assert other.dither(torch.Generator().manual_seed(0)) > 0
    assert all(pr.check() == 0 for pr in other.projs)
    for pr in other.projs:
        if pr.weight is not None:
            x = pr.weight.detach().double() * pr.scale * pr.factor
            assert float((x - x.round()).abs().max()) > 0.1  # off the centres
