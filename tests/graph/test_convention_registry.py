"""One `Convention` per framework: the registry, meta's settings list and defaults agree, and
no module outside the registry branches on a convention's name (issue 20)."""

from __future__ import annotations

import re
from pathlib import Path

import nir
import numpy as np
import pytest

from spinnq.errors import InputError
from spinnq.graph import conventions
from spinnq.graph.meta import CONVENTION_DEFAULTS, CONVENTIONS, run_settings

SRC = Path(conventions.__file__).resolve().parents[1]
NAMES = "|".join(CONVENTIONS[1:])


def test_registry_meta_and_defaults_name_the_same_conventions():
    assert tuple(conventions.REGISTRY) == CONVENTIONS == tuple(CONVENTION_DEFAULTS)
    for name, conv in conventions.REGISTRY.items():
        assert conv.name == name
        assert conv.defaults == CONVENTION_DEFAULTS[name]
        assert conventions.CONVENTION_KERNELS[name] is conv.kernels
        assert {k: v for k, v in run_settings({}, convention=name).items()
                if k in conv.defaults} == conv.defaults


def test_unknown_convention_is_an_input_error():
    with pytest.raises(InputError, match="convention must be one of"):
        conventions.get("brian2")


def test_no_module_outside_the_registry_branches_on_a_convention_name():
    pattern = re.compile(rf"""(==|!=|\bin\b)\s*\(?["'](nir|{NAMES})["']|["']({NAMES})["']\s*(==|!=)""")
    hits = []
    for path in SRC.rglob("*.py"):
        if path.name in ("conventions.py", "meta.py"):
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{path.relative_to(SRC)}:{i}: {line.strip()}")
    assert not hits, hits


@pytest.mark.parametrize("name", CONVENTIONS)
def test_every_convention_translates_every_neuron_node_for_the_chip(name):
    conv = conventions.get(name)
    n, dt = 3, 1e-3 if name != "sinabs" else 1.0
    ones = np.ones(n, np.float32)
    nodes = [nir.LIF(tau=ones * 0.02, r=ones, v_leak=ones * 0, v_threshold=ones),
             nir.IF(r=ones, v_threshold=ones, v_reset=ones * 0),
             nir.LI(tau=ones * 0.02, r=ones, v_leak=ones * 0),
             nir.CubaLIF(tau_syn=ones * 0.01, tau_mem=ones * 0.02, r=ones, v_leak=ones * 0,
                         v_threshold=ones, w_in=ones)]
    for node in nodes:
        alpha, gain, leak = conv.membrane(node, n, dt, "forward")
        assert alpha.shape == gain.shape == leak.shape == (n,)
        assert np.all((alpha > 0) & (alpha <= 1)) and np.all(gain > 0)
    syn_alpha, syn_gain = conv.synapse(nodes[-1], n, dt, "forward")
    assert np.all((syn_alpha > 0) & (syn_alpha < 1)) and np.all(syn_gain > 0)
