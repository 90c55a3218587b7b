"""Energy-aware design search: sweep quantization and chip settings of a graph or a task on Ray
Tune, keep every trial, and report the accuracy-energy front and the pick under a budget.

    from spinnq.sweep import GraphProblem, SweepConfig, parse_space, run_sweep
    problem = GraphProblem.from_files("net.nir", "data.npz")
    cfg = SweepConfig(space=parse_space(["bits=8,4", "operating_point=0.5V,0.8V"]))
    result = run_sweep(problem, "sweeps/net", cfg)   # trials.csv, pareto.csv, report.html

Ray is the optional extra `spinnq[sweep]`; it is imported only when trials run.
"""

from spinnq.sweep.results import Budget, Store, best, dominates, pareto
from spinnq.sweep.runner import SweepConfig, run_sweep
from spinnq.sweep.space import DEFAULTS, KEYS, parse_space, settings
from spinnq.sweep.trial import GraphProblem, run_trial

__all__ = ["DEFAULTS", "KEYS", "Budget", "GraphProblem", "Store", "SweepConfig", "best",
           "dominates", "parse_space", "pareto", "run_sweep", "run_trial", "settings"]
