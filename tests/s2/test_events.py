"""The event-driven (numba) engine equals the torch engine bit for bit: spikes, voltages,
counters, saturations."""

import nir
import numba  # noqa: F401  (a dev dependency: its absence must fail, not skip)
import numpy as np
import pytest
import torch

from spinnq.graph.model import from_nir, read_graph
from spinnq.s2 import S2Config, compile, emulate
from spinnq.s2.emulate import prepare_input
from spinnq.s2.events import fanout, fanout_table
from tests.conftest import assert_same_run


def _both(graph, x, record, **cfg):
    a = emulate(compile(graph, S2Config(engine="torch", **cfg)), x, record=record)
    b = emulate(compile(graph, S2Config(engine="events", **cfg)), x, record=record)
    return a, b


def _assert_same(a, b):
    assert_same_run(a, b, counters_rtol=1e-12)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_cnn_sinabs_events_equal_torch(nir_paper, reset):
    g = read_graph(nir_paper / "cnn_sinabs.nir")
    x = (np.random.default_rng(0).random((2, 25, *g.input_shape)) < 0.2).astype(np.float32)
    a, b = _both(g, x, ["input", "1", "3", "6", "10", "12"], reset=reset)
    assert a.spikes["3"].sum() > 0
    _assert_same(a, b)


@pytest.mark.parametrize("prepared", [False, True])  # the array, or decoded once (quantize)
def test_batch_split_over_threads_gives_the_same_run(nir_paper, prepared):
    g = read_graph(nir_paper / "cnn_sinabs.nir")
    x = (np.random.default_rng(3).random((5, 20, *g.input_shape)) < 0.2).astype(np.float32)
    prog = compile(g, S2Config(engine="events"))
    one = emulate(prog, x, record=["3", "12"])
    torch.set_num_threads(2)  # the autouse fixture restores the count
    inp = prepare_input(x, g.input_shape) if prepared else x
    assert_same_run(one, emulate(prog, inp, record=["3", "12"]))


@pytest.mark.parametrize("engine,threads", [("events", 1), ("events", 2), ("torch", 1)])
def test_progress_is_reported_while_running_and_ends_at_the_total(nir_paper, engine, threads):
    g = read_graph(nir_paper / "cnn_sinabs.nir")
    x = (np.random.default_rng(4).random((3, 20, *g.input_shape)) < 0.2).astype(np.float32)
    prog = compile(g, S2Config(engine=engine, chunk=4))
    torch.set_num_threads(threads)  # the autouse fixture restores the count
    seen: list[tuple[int, int]] = []
    run = emulate(prog, x, record=["12"], on_step=lambda d, n: seen.append((d, n)))
    total = 3 * run.steps
    assert seen[-1] == (total, total)
    assert all(n == total for _, n in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # never goes back
    if engine == "torch":  # one call per time block of 4 steps, then the end
        assert len(seen) == -(-run.steps // 4) + 1
    _assert_same(run, emulate(prog, x, record=["12"]))  # watching changes nothing


@pytest.mark.parametrize("kw", [{"fma": True}, {"add_order": "offset_first"},
                                {"weight_scale": "p90"}, {"bits": 4}])
def test_options_delays_and_recurrence_events_equal_torch(kw):
    rng = np.random.default_rng(5)
    n = 20
    lif = nir.LIF(np.full(n, 2e-3), np.ones(n), np.full(n, 0.3), np.full(n, 0.5), np.zeros(n))
    g = from_nir(nir.NIRGraph(
        nodes={"in": nir.Input(np.array([6])), "fc": nir.Affine(rng.normal(size=(n, 6)),
                                                                rng.normal(size=n) * 0.1),
               "d": nir.Delay(rng.integers(0, 3, n) * 1e-4), "lif": lif,
               "rec": nir.Linear(rng.normal(size=(n, n)) * 0.3),
               "ro": nir.Linear(rng.normal(size=(3, n))),
               "li": nir.LI(np.full(3, 1e-3), np.ones(3), np.zeros(3)),
               "out": nir.Output(np.array([3]))},
        edges=[("in", "fc"), ("fc", "d"), ("d", "lif"), ("lif", "rec"), ("rec", "lif"),
               ("lif", "ro"), ("ro", "li"), ("li", "out")]))
    x = (rng.random((3, 40, 6)) < 0.3).astype(np.float32)
    a, b = _both(g, x, ["lif", "li"], **kw)
    assert a.spikes["lif"].sum() > 0
    _assert_same(a, b)


@pytest.mark.parametrize("variant", ["uniform", "bias", "thresholds", "v_reset"])
def test_lean_and_general_updates_equal_torch(variant):
    """Populations with one alpha and one threshold, no offsets, reset by subtraction run the
    lean update (a kernel of their own); a bias, per-neuron thresholds or a reset to v_reset
    run the general one. Both agree with the torch engine bit for bit."""
    from spinnq.s2.events import prepared

    rng = np.random.default_rng(7)
    n = 48
    th = np.full(n, 0.5) if variant != "thresholds" else rng.uniform(0.3, 0.8, n)
    nodes = {"in": nir.Input(np.array([2, 6, 6])),
             "c": nir.Conv2d(None, rng.normal(size=(4, 2, 3, 3)) * 2, 1, 1, 1, 1, np.zeros(4)),
             "l1": nir.LIF(np.full((4, 6, 6), 2e-3), np.ones((4, 6, 6)), np.zeros((4, 6, 6)),
                           np.full((4, 6, 6), 0.6), np.zeros((4, 6, 6))),
             "f": nir.Flatten(np.array([4, 6, 6]), 0, -1),
             "fc": (nir.Affine(rng.normal(size=(n, 144)), rng.normal(size=n) * 0.1)
                    if variant == "bias" else nir.Linear(rng.normal(size=(n, 144)))),
             "l2": nir.LIF(np.full(n, 2e-3), np.ones(n), np.zeros(n), th, np.zeros(n)),
             "out": nir.Output(np.array([n]))}
    order = list(nodes)
    g = from_nir(nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:], strict=True))))
    reset = "zero" if variant == "v_reset" else "subtract"
    x = (rng.random((3, 30, 2, 6, 6)) < 0.3).astype(np.float32)
    a, b = _both(g, x, ["l1", "l2"], reset=reset)
    assert b.spikes["l1"].sum() > 0 and b.spikes["l2"].sum() > 0
    _assert_same(a, b)
    prog = compile(g, S2Config(engine="events", reset=reset))
    assert prepared(prog).uniform == (variant in ("uniform", "v_reset"))


def test_engine_fanout_of_single_spikes_matches_the_projection_it_computes(nir_paper):
    import torch

    from spinnq.s2.emulate import make_op

    prog = compile(read_graph(nir_paper / "cnn_sinabs.nir"))
    for proj in prog.projections:
        pre, post = prog.populations[proj.pre], prog.populations[proj.post]
        op = make_op(proj, prog)
        sample = range(0, pre.size, max(1, pre.size // 64))
        s = torch.eye(pre.size)[list(sample)]  # single spikes
        ref = op.apply(s, op.weights[0]).numpy()
        ptr, post_idx, vals = fanout_table(proj, pre.shape)  # the synapse list agrees
        for row, j in zip(ref, sample, strict=True):
            idx, w = fanout(proj, pre.shape, post.shape, j)
            got = np.zeros(post.size, np.float32)
            got[idx] = w
            assert np.array_equal(got, row), (proj.post, j)
            listed = np.zeros(post.size, np.float32)
            np.add.at(listed, post_idx[ptr[j]:ptr[j + 1]], vals[ptr[j]:ptr[j + 1]])
            assert np.array_equal(listed, row), (proj.post, j)


@pytest.mark.parametrize("seed", range(8))
def test_regular_conv_runs_reach_exactly_the_synapses_of_the_projection(seed):
    """The padded fixed-shape runs of a regular conv (strides, paddings, rectangular kernels,
    a fused pool, 16 output channels: whole 16-lane vector adds) add exactly the projection's
    synapses: every pre neuron's fan-out equals the exact run tables' and the synapse list's,
    and the whole network equals the torch engine."""
    rng = np.random.default_rng(seed)
    C, Co = int(rng.integers(1, 4)), int(rng.choice([1, 2, 3, 4, 16]))  # 16: vector adds
    kh, kw = (int(v) for v in rng.integers(1, 6, 2))
    sy, sx = (int(v) for v in rng.integers(1, 4, 2))
    py, px = int(rng.integers(0, kh)), int(rng.integers(0, kw))
    pool = int(rng.integers(1, 3))
    H, W = int(rng.integers(kh, 12)) * pool + int(rng.integers(0, pool)), int(
        rng.integers(kw, 12)) * pool
    nodes = {"in": nir.Input(np.array([C, H, W]))}
    edges, last = [], "in"
    if pool > 1:
        nodes["p"] = nir.SumPool2d(np.array([pool, pool]), np.array([pool, pool]),
                                   np.array([0, 0]))
        edges.append(("in", "p"))
        last = "p"
    w = rng.integers(-3, 4, size=(Co, C, kh, kw)).astype(np.float32)
    nodes["c"] = nir.Conv2d(None, w, (sy, sx), (py, px), 1, 1, np.zeros(Co))
    edges.append((last, "c"))
    # nir's own shape inference gets non-square kernels wrong (nir 1.0: (10, 8) * (3, 2) ->
    # (8, 6)), so the graph is not type-checked; spinnq infers (8, 7), as torch does
    shape = (Co, (H // pool + 2 * py - kh) // sy + 1, (W // pool + 2 * px - kw) // sx + 1)
    nodes["l"] = nir.LIF(np.full(shape, 2e-3), np.ones(shape), np.zeros(shape),
                         np.ones(shape), np.zeros(shape))
    nodes["out"] = nir.Output(np.array(shape))
    edges += [("c", "l"), ("l", "out")]
    prog = compile(from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)))
    (proj,) = prog.projections
    pre, post = prog.populations[proj.pre], prog.populations[proj.post]
    ptr, post_idx, vals = fanout_table(proj, pre.shape)
    for j in range(pre.size):
        listed = np.zeros(post.size, np.float32)
        np.add.at(listed, post_idx[ptr[j]:ptr[j + 1]], vals[ptr[j]:ptr[j + 1]])
        for layout in ("engine", "exact"):
            idx, wj = fanout(proj, pre.shape, post.shape, j, layout=layout)
            got = np.zeros(post.size, np.float32)
            got[idx] = wj
            assert np.array_equal(got, listed), (layout, j)
    x = (rng.random((2, 12, C, H, W)) < 0.3).astype(np.float32)
    a, b = _both(from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)), x, ["l"])
    _assert_same(a, b)


@pytest.mark.parametrize("engine", ["events", "torch"])
def test_synaptic_sums_saturate_at_the_accumulator_and_are_counted(engine):
    n = 70_000  # 127 * 70000 = 8.89e6 > 2**23 - 1
    g = from_nir(nir.NIRGraph(
        nodes={"in": nir.Input(np.array([n])), "fc": nir.Linear(np.full((1, n), 127.0)),
               "li": nir.I(np.ones(1)), "out": nir.Output(np.array([1]))},
        edges=[("in", "fc"), ("fc", "li"), ("li", "out")]))
    prog = compile(g, S2Config(weight_scale="none", engine=engine))
    run = emulate(prog, np.ones((1, 2, n), dtype=np.float32))
    assert run.saturations == 2  # two input steps, each clipped once, never wrapped
    assert run.v["li"][0, 1, 0].item() == 2**23 - 1


def test_editing_a_program_in_place_is_noticed_by_the_event_engine(nir_paper):
    g = read_graph(nir_paper / "cnn_sinabs.nir")
    prog = compile(g, S2Config(engine="events"))
    x = (np.random.default_rng(0).random((1, 10, *g.input_shape)) < 0.2).astype(np.float32)
    before = emulate(prog, x, record=["3"]).spikes["3"].sum()
    next(p for p in prog.projections if p.post == "3").weight *= -1  # in place, same array
    assert not np.array_equal(emulate(prog, x, record=["3"]).spikes["3"].sum(), before)
    prog.populations["3"].params["threshold"] *= 0.25
    after = emulate(prog, x, record=["3"])
    ref = emulate(compile(g, S2Config(engine="torch")), x, record=["3"])
    assert after.spikes["3"].sum() != before
    torch_prog = compile(g, S2Config(engine="torch"))
    torch_prog.populations["3"].params["threshold"] *= 0.25
    next(p for p in torch_prog.projections if p.post == "3").weight *= -1
    expect = emulate(torch_prog, x, record=["3"])
    assert np.array_equal(after.spikes["3"].numpy(), expect.spikes["3"].numpy())
    assert ref.spikes["3"].sum() == before


def test_an_equal_program_does_not_share_the_engine_tables_of_an_edited_one(nir_paper):
    g = read_graph(nir_paper / "cnn_sinabs.nir")
    x = (np.random.default_rng(0).random((1, 10, *g.input_shape)) < 0.2).astype(np.float32)
    a, b = compile(g, S2Config(engine="events")), compile(g, S2Config(engine="events"))
    before = emulate(a, x, record=["12"]).v["12"]
    for p in a.projections:
        p.weight[...] = 0  # in place: a's tables are views of these
    assert not np.array_equal(emulate(a, x, record=["12"]).v["12"].numpy(), before.numpy())
    assert np.array_equal(emulate(b, x, record=["12"]).v["12"].numpy(), before.numpy())


def test_a_forked_child_emulates_on_threads_of_its_own(nir_paper):
    """The engine keeps a thread pool per process; a child forked after it was used must not
    hand work to the parent's threads (which do not exist in the child)."""
    import multiprocessing as mp

    g = read_graph(nir_paper / "cnn_sinabs.nir")
    x = (np.random.default_rng(5).random((4, 10, *g.input_shape)) < 0.2).astype(np.float32)
    prog = compile(g, S2Config(engine="events"))
    torch.set_num_threads(2)  # the autouse fixture restores the count
    want = emulate(prog, x, record=["12"]).spikes["12"].sum().item()
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=lambda: q.put(emulate(prog, x, record=["12"]).spikes["12"].sum()
                                         .item()))
    p.start()
    p.join(60)
    if p.is_alive():
        p.kill()
    assert p.exitcode == 0, "the child hung or failed"
    assert q.get(timeout=5) == want
