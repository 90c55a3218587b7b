"""The node registry (`spinnq.graph.nodes`) is the one declaration of node families, and every
stage's dispatch table agrees with what it says the stage supports."""

from __future__ import annotations

import ast
from pathlib import Path

import nir

from spinnq.graph import nodes
from spinnq.graph.kernels import KERNELS
from spinnq.graph.model import SHAPE_RULES
from spinnq.s2.compile import CHAIN_RULES, NEURON_RULES

SRC = Path(__file__).resolve().parents[2] / "src" / "spinnq"


def test_reader_and_simulator_take_exactly_the_simulated_types():
    assert set(SHAPE_RULES) == set(nodes.SIMULATED)
    assert set(KERNELS) == set(nodes.SIMULATED)


def test_compiler_takes_exactly_the_compiled_types():
    # AvgPool2d becomes a SumPool2d before the chain rules run (graph.rewrite)
    rules = set(CHAIN_RULES) | set(NEURON_RULES) | set(nodes.PORTS) | {nir.AvgPool2d}
    assert rules == set(nodes.COMPILED)
    assert set(NEURON_RULES) == set(nodes.NEURONS)
    assert set(nodes.COMPILED) <= set(nodes.SIMULATED)


def test_families_partition_as_their_names_say():
    assert set(nodes.SPIKING_NEURONS) | set(nodes.READOUTS) == set(nodes.NEURONS)
    assert not set(nodes.SPIKING_NEURONS) & set(nodes.READOUTS)
    assert set(nodes.INPUT_GAIN) == set(nodes.NEURONS)
    assert {t for t, g in nodes.INPUT_GAIN.items() if g == "w_in"} == set(nodes.CURRENT_BASED)
    assert set(nodes.CHIP_WEIGHTS) <= set(nodes.WEIGHTS)
    assert nir.Conv1d in nodes.WEIGHTS and nir.Conv1d not in nodes.COMPILED
    # a readout's NEURON_RULES entry says "never fires": the same split as the registry
    assert {t for t, rule in NEURON_RULES.items() if rule[3]} == set(nodes.READOUTS)


def _nir_family(value: ast.expr) -> bool:
    """A literal tuple/list/set of two or more `nir.X` node types."""
    if not isinstance(value, ast.Tuple | ast.List | ast.Set):
        return False
    elts = [e for e in value.elts if not isinstance(e, ast.Starred)]
    return len(elts) >= 2 and all(
        isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name) and e.value.id == "nir"
        for e in elts)


def test_no_module_but_the_registry_declares_a_node_family():
    found = []
    for path in SRC.rglob("*.py"):
        if path == SRC / "graph" / "nodes.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None \
                    and _nir_family(node.value):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
                # `nir.A | nir.B` in an isinstance: a family spelled out inline
                sides = (node.left, node.right)
                if all(isinstance(s, ast.Attribute) and isinstance(s.value, ast.Name)
                       and s.value.id == "nir" for s in sides):
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert found == []
