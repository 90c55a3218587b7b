"""The stages chained for a user's whole job: compile -> place -> emulate in one call.

A thin layer over `spinnq.s2` (and, for reports, `spinnq.report`): the place for orchestration,
so the stage modules stay single-purpose and the CLI stays a mapping of flags onto calls.
"""

from __future__ import annotations

from spinnq.s2.compile import S2Config
from spinnq.s2.compile import compile as compile_graph
from spinnq.s2.emulate import emulate
from spinnq.s2.place import place


def deploy(graph, x, cfg: S2Config = S2Config(), steps: int | None = None,
           record: list[str] | None = None):
    """Compile, place and emulate in one call: (Program, Placement, Run)."""
    program = compile_graph(graph, cfg)
    placement = place(program, cfg)
    return program, placement, emulate(program, x, steps, record)
