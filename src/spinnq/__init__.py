"""spinnq: spiking networks from PyTorch through NIR to SpiNNaker2, with the cost measured.

    import spinnq as sq
    g = sq.read_graph("net.nir")                       # any NIR graph (snnTorch, Norse, ...)
    cal = sq.calibrate(g, "calib.npz", bits=8)         # PTQ chosen on the emulated chip
    ft = sq.finetune(cal.graph, "train.npz")           # on the chip's arithmetic
    res = sq.evaluate(ft.graph, "test.npz", target="both")  # settings: res.settings
    cost = sq.energy(res.chip.placement, res.chip.run, res.chip.program, op="dvfs")
    model = sq.ChipModel.load("board.json")            # the energy model's constants as data
    fitted = sq.fit_energy(measurements).model          # ... fitted to measured runs

`calibrate`, `finetune`, `evaluate` and `deploy` take the commands' run settings as keywords
(convention=, reset=, dt=, bits=, weight_scale=, tick_s=, operating_point=, ...) or one
`settings=` object (`sq.resolve(graph, ...)`, a `RunSettings`), resolved as the commands do;
`energy` prices at the commands' operating point and tick (0.8V, 1 ms) unless given `op=`,
`tick_s=` (seconds or 'shortest') or `settings=`.

Names load on first use (importing `spinnq` stays cheap and cycle-free).
"""

from importlib import import_module

__version__ = "0.1.0"

_API = {
    "read_graph": "spinnq.graph.model", "write_graph": "spinnq.graph.model",
    "simulate": "spinnq.graph.simulate", "SimConfig": "spinnq.graph.simulate",
    "compile": "spinnq.s2.compile", "S2Config": "spinnq.s2.compile",
    "place": "spinnq.s2.place", "emulate": "spinnq.s2.emulate", "deploy": "spinnq.pipeline",
    "energy": "spinnq.pipeline", "ChipModel": "spinnq.s2.chip",
    "fit_energy": "spinnq.s2.energy_fit",
    "calibrate": "spinnq.quant.calibration", "finetune": "spinnq.quant.finetuning",
    "evaluate": "spinnq.quant.evaluation", "load_data": "spinnq.quant.data",
    "export": "spinnq.s2.export",
    "resolve": "spinnq.resolver", "RunSettings": "spinnq.resolver",
}
_RENAMED = {"export": "export_graph", "fit_energy": "fit", "energy": "price"}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(_API[name]), _RENAMED.get(name, name))
    raise AttributeError(f"module 'spinnq' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
