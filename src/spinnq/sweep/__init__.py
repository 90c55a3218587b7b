"""Energy-aware design search: sweep quantization and chip settings of a graph or a task on Ray
Tune, keep every trial, and report the accuracy-energy front and the pick under a budget.

    from spinnq.sweep import GraphProblem, SweepConfig, parse_space, run_sweep
    problem = GraphProblem.from_files("net.nir", "data.npz")
    cfg = SweepConfig(space=parse_space(["bits=8,4", "operating_point=0.5V,0.8V"]))
    result = run_sweep(problem, "sweeps/net", cfg)   # trials.csv, pareto.csv, report.html

Ray is the optional extra `spinnq[sweep]`; it is imported only when trials run.
"""

from importlib import import_module

# Names load on first use: `spinnq.sweep.space` (the CLI's help text) stays free of torch.
_NAMES = {"Budget": "results", "Store": "results", "best": "results", "dominates": "results",
          "pareto": "results", "SweepConfig": "runner", "run_sweep": "runner",
          "DEFAULTS": "space", "KEYS": "space", "parse_space": "space", "settings": "space",
          "GraphProblem": "trial", "run_trial": "trial"}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(import_module(f"spinnq.sweep.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'spinnq.sweep' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_NAMES])
