"""Run a graph on a real SpiNNaker2 through py-spinnaker2, when that package is importable.

It follows py-spinnaker2's API as the NIR paper used it (`paper/03_rnn/s2_apply.py`):
`s2_nir.ConversionConfig(...)`, `s2_nir.from_nir(graph, cfg) -> (net, inputs, outputs)`,
`population.set_max_atoms_per_core(n)`, `input.params = {neuron: [spike steps]}`,
`net.reset()`, `hardware.SpiNNaker2Chip(eth_ip=...).run(net, steps, sys_tick_in_s=...)`,
`output.get_spikes()` / `get_voltages()` / `nir_v_scale`.
The graph handed over is `export_graph`'s integer graph with `scale_weights=False`, so the
chip gets exactly the integers the emulator used. Not yet run against a board here: only
against a fake `spinnaker2` module that records the calls (tests/s2/test_backend.py).
"""

from __future__ import annotations

import importlib

import numpy as np
import torch

from spinnq.config import REALTIME_TICK_S
from spinnq.errors import BackendError, InputError
from spinnq.graph.model import Graph
from spinnq.s2.compile import S2Config, compile
from spinnq.s2.export import export_graph
from spinnq.s2.inputs import as_spikes, check_spikes
from spinnq.s2.program import Run

INSTALL_HINT = ("py-spinnaker2 is not importable here; it is not on PyPI: install it from "
                "https://gitlab.com/spinnaker2/py-spinnaker2 on a machine wired to a board, "
                "or use the emulator (--backend emulator)")
DEFAULT_TICK_S = REALTIME_TICK_S  # one chip step per system tick, as the NIR paper's runs


def _import():
    try:
        hardware = importlib.import_module("spinnaker2.hardware")
        s2_nir = importlib.import_module("spinnaker2.s2_nir")
    except ImportError as e:
        raise BackendError(f"{INSTALL_HINT} ({e})") from None
    return hardware, s2_nir


def available() -> bool:
    try:
        _import()
    except BackendError:
        return False
    return True


def run_spinnaker2(graph: Graph, x, cfg: S2Config, eth_ip: str, steps: int | None = None,
                   record: list[str] | None = None, tick_s: float = DEFAULT_TICK_S) -> Run:
    """Run `graph` on the chip at `eth_ip`, one sample at a time; arrays as `emulate` gives.

    The chip reports no activity counters: `Run.counters` is empty."""
    if not eth_ip:
        raise InputError("the spinnaker2 backend needs the board's address: --eth-ip IP")
    hardware, s2_nir = _import()
    program = compile(graph, cfg)
    xb = as_spikes(x, program.populations[program.input].shape)
    check_spikes(xb)
    B, T = int(xb.shape[0]), int(xb.shape[1])
    steps = T + program.depth if steps is None else int(steps)
    rec = list(dict.fromkeys(record)) if record else list(program.outputs)
    q = export_graph(graph, cfg)
    for r in rec:
        if r not in program.populations or r == program.input:
            raise InputError(f"cannot record '{r}': not a neuron population")
        if r not in program.outputs:
            s2_nir.add_output_to_node(r, q, f"spinnq_record_{r}")
    conv = s2_nir.ConversionConfig(
        output_record=["spikes", "v"], dt=cfg.dt, conn_delay=cfg.conn_delay,
        scale_weights=False,
        reset=s2_nir.ResetMethod.ZERO if cfg.reset == "zero" else s2_nir.ResetMethod.SUBTRACT,
        integrator=(s2_nir.IntegratorMethod.FORWARD if cfg.integrator == "forward"
                    else s2_nir.IntegratorMethod.EXPONENTIAL))
    net, inp, outp = s2_nir.from_nir(q, conv)
    if len(inp) != 1:
        raise BackendError(f"py-spinnaker2 made {len(inp)} input populations; expected 1")
    for pop in net.populations:
        n = cfg.neurons_per_pe.get(pop.name) or cfg.neurons_per_pe_default
        if n:
            pop.set_max_atoms_per_core(int(n))
    hw = hardware.SpiNNaker2Chip(eth_ip=eth_ip)
    by_name = {p.name: p for p in outp}
    missing = [r for r in rec if r not in by_name]
    if missing:
        raise BackendError(f"py-spinnaker2 returned no output population for {missing}")
    spikes = {r: np.zeros((B, steps, program.populations[r].size), np.float32) for r in rec}
    volts = {r: np.zeros((B, steps, program.populations[r].size), np.float32) for r in rec}
    flat = xb.reshape(B, T, -1).numpy()
    for b in range(B):
        inp[0].params = {i: np.nonzero(flat[b, :, i])[0].astype(int).tolist()
                         for i in range(flat.shape[2])}
        net.reset()
        hw.run(net, steps, sys_tick_in_s=tick_s)
        for r in rec:
            pop = by_name[r]
            for nrn, times in pop.get_spikes().items():
                t = np.asarray(times, dtype=int)
                spikes[r][b, t[t < steps], int(nrn)] = 1
            scale = np.asarray(getattr(pop, "nir_v_scale", 1.0), dtype=np.float32).ravel()
            for nrn, vs in pop.get_voltages().items():
                vs = np.asarray(vs, dtype=np.float32)[:steps]
                volts[r][b, :len(vs), int(nrn)] = vs / scale[int(nrn) if scale.size > 1 else 0]
    shape = {r: program.populations[r].shape for r in rec}
    return Run({r: torch.from_numpy(a.reshape(B, steps, *shape[r])) for r, a in spikes.items()},
               {r: torch.from_numpy(a.reshape(B, steps, *shape[r])) for r, a in volts.items()},
               {}, steps)
