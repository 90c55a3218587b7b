"""s2 stage of the spinnq pipeline: compile -> place -> emulate (or a real board) -> energy.

    program = compile(graph, S2Config())      # populations, integer projections
    placement = place(program)                # PEs, chips, memory per PE
    run = emulate(program, x)                 # spikes, voltages (NIR units), counters
    program, placement, run = deploy(graph, x, S2Config())
    silent_outputs(program, run)              # output populations that never fired
"""

from spinnq.s2.compile import S2Config, compile
from spinnq.s2.emulate import deploy, emulate, silent_outputs
from spinnq.s2.place import place, summarize

__all__ = ["S2Config", "compile", "deploy", "emulate", "place", "silent_outputs",
           "summarize"]
