"""Reading and validating NIR graphs: good graphs load, bad ones get a named error."""

import nir
import numpy as np
import pytest

from spinnq.errors import GraphError
from spinnq.graph import from_nir, read_graph, write_graph


def _lif(n=2, tau=1e-3):
    o = np.ones(n)
    return nir.LIF(tau=o * tau, r=o, v_leak=0 * o, v_threshold=o, v_reset=0 * o)


def _chain(*mid, n_in=3):
    nodes = {"in": nir.Input(input_type=np.array([n_in]))}
    edges, prev = [], "in"
    for i, node in enumerate(mid):
        nodes[f"n{i}"] = node
        edges.append((prev, f"n{i}"))
        prev = f"n{i}"
    nodes["out"] = nir.Output(output_type=np.array([2]))
    edges.append((prev, "out"))
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_paper_graphs_load_with_expected_shapes(nir_paper):
    cnn = read_graph(nir_paper / "cnn_sinabs.nir")
    assert cnn.input_shape == (2, 34, 34)
    assert cnn.shapes["0"] == (16, 16, 16) and cnn.shapes["8"] == (128,)
    assert cnn.shapes["12"] == (10,)
    for name, hidden in [("braille_noDelay_bias_zero", 38), ("braille_noDelay_noBias_subtract", 40)]:
        g = read_graph(nir_paper / f"{name}.nir")
        assert g.input_shape == (12,) and g.shapes["lif1.lif"] == (hidden,)
        assert g.recurrent == {("lif1.lif", "lif1.w_rec")}


def test_nested_subgraph_is_flattened_and_rewired():
    inner = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([2])), "lif": _lif(),
               "w_rec": nir.Linear(np.eye(2)), "output": nir.Output(output_type=np.array([2]))},
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
        type_check=False)
    g = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([3])),
                            "fc": nir.Linear(np.ones((2, 3))), "rnn": inner,
                            "out": nir.Output(output_type=np.array([2]))},
                     edges=[("in", "fc"), ("fc", "rnn"), ("rnn", "out")], type_check=False)
    G = from_nir(g)
    assert set(G.nodes) == {"in", "fc", "rnn.lif", "rnn.w_rec", "out"}
    assert ("fc", "rnn.lif") in G.edges and ("rnn.lif", "out") in G.edges
    assert G.recurrent == {("rnn.lif", "rnn.w_rec")}


def test_write_then_read_round_trips(tmp_path):
    g = from_nir(_chain(nir.Linear(np.ones((2, 3))), _lif()))
    p = write_graph(g, tmp_path / "g.nir")
    assert read_graph(p).order == g.order


@pytest.mark.parametrize("graph, match, node", [
    (_chain(nir.Linear(np.ones((2, 4))), _lif()), "expects input", "n0"),
    (_chain(nir.Linear(np.full((2, 3), np.nan)), _lif()), "NaN", "n0"),
    (_chain(nir.Linear(np.ones((2, 3))), _lif(tau=0.0)), "must be > 0", "n1"),
    (_chain(nir.Linear(np.ones((2, 3))), _lif(tau=-1.0)), "must be > 0", "n1"),
    (_chain(nir.Linear(np.ones((2, 3))), _lif(n=5)), "parameters have shape", "n1"),
])
def test_bad_graphs_are_refused_naming_the_node(graph, match, node):
    with pytest.raises(GraphError, match=match) as e:
        from_nir(graph, source="x.nir")
    assert e.value.node == node and "x.nir" in str(e.value)


def test_unsupported_node_type_is_named():
    class Weird(nir.Scale):  # a node type spinnq does not know
        pass
    g = _chain(nir.Linear(np.ones((2, 3))), _lif())
    g.nodes["n1"] = Weird(np.ones(2))
    with pytest.raises(GraphError, match="unsupported node type Weird"):
        from_nir(g)


def test_algebraic_loop_is_refused():
    g = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([2])),
                            "a": nir.Linear(np.eye(2)), "b": nir.Linear(np.eye(2)),
                            "out": nir.Output(output_type=np.array([2]))},
                     edges=[("in", "a"), ("a", "b"), ("b", "a"), ("b", "out")], type_check=False)
    with pytest.raises(GraphError, match="algebraic loop"):
        from_nir(g)


def test_empty_graph_and_missing_edge_targets_are_refused():
    with pytest.raises(GraphError, match="empty"):
        from_nir(nir.NIRGraph(nodes={}, edges=[], type_check=False))
    g = _chain(nir.Linear(np.ones((2, 3))))
    g.edges.append(("n0", "ghost"))
    with pytest.raises(GraphError, match="does not exist"):
        from_nir(g)


def test_missing_file_non_hdf5_and_non_nir_hdf5_are_refused(tmp_path):
    import h5py
    with pytest.raises(GraphError, match="no such file"):
        read_graph(tmp_path / "nope.nir")
    (tmp_path / "text.nir").write_text("hello")
    with pytest.raises(GraphError, match="not an HDF5 file"):
        read_graph(tmp_path / "text.nir")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(GraphError, match="not a NIR graph"):
        read_graph(tmp_path / "other.h5")


def test_scalar_neuron_parameters_broadcast_to_the_node_shape(tmp_path):
    """Norse's default cells export 0-d parameters (nir.write cannot store them): after
    import every neuron parameter is an array of the node's shape, the file writes, and the
    caller's nodes are left as they were."""
    lif = nir.CubaLIF(tau_syn=np.array(5e-3), tau_mem=np.array(1e-2), r=np.array(1.0),
                      v_leak=np.array(0.0), v_threshold=np.array(1.0), w_in=np.array(1.0))
    src = nir.NIRGraph(nodes={"input": nir.Input(np.array([3])),
                              "fc": nir.Linear(np.ones((4, 3))), "lif": lif,
                              "output": nir.Output(np.array([4]))},
                       edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
                       type_check=False)
    g = from_nir(src)
    for a in ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "w_in"):
        assert np.shape(getattr(g.nodes["lif"], a)) == (4,), a
    assert np.shape(lif.tau_mem) == ()
    back = read_graph(write_graph(g, tmp_path / "g.nir"))
    assert np.allclose(back.nodes["lif"].tau_syn, 5e-3)


def test_neuron_parameter_that_cannot_broadcast_is_named():
    lif = nir.CubaLIF(tau_syn=np.array(5e-3), tau_mem=np.array(1e-2), r=np.array(1.0),
                      v_leak=np.array(0.0), v_threshold=np.array(1.0), w_in=np.array(1.0))
    lif.tau_mem = np.full(3, 1e-2)  # nir checks shapes only when a node is built
    src = nir.NIRGraph(nodes={"input": nir.Input(np.array([3])),
                              "fc": nir.Linear(np.ones((4, 3))), "lif": lif,
                              "output": nir.Output(np.array([4]))},
                       edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
                       type_check=False)
    with pytest.raises(GraphError, match=r"node 'lif'.*parameter 'tau_mem' of shape \(3,\) does "
                       r"not fit the node's shape \(4,\)"):
        from_nir(src)
