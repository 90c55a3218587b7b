"""The memory budget: what one command may allocate, checked from sizes known up front.

A 50 KB file can ask for gigabytes (an HDF5 dataset that is all fill value, a compressed
npz of zeros, a graph with one huge Delay or Input): such sizes are read from headers and
graph shapes and compared with the budget *before* anything is allocated, and refused in
one line naming the file or node and the figure.

Budget: half of this machine's physical memory by default; the environment variable
`SPINNQ_MEMORY_BUDGET` sets it as bytes with an optional unit (`16G`, `512M`, `2.5GiB`) or
as a share of the machine's memory (`80%`).
"""

from __future__ import annotations

import os
import re

from spinnq.errors import InputError, SpinnqError

ENV = "SPINNQ_MEMORY_BUDGET"
DEFAULT_SHARE = 0.5  # of physical memory
FALLBACK = 4 << 30  # where the machine's memory cannot be read
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def total_memory() -> int | None:
    """Physical memory of this machine in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def parse_budget(text: str, total: int | None = None) -> int:
    """'16G', '512 MiB', '1000000', '80%' -> bytes; InputError naming the variable if not."""
    t = text.strip().lower()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(%|[kmgt]?)(?:i?b)?", t)
    if not m or float(m.group(1)) <= 0:
        raise InputError(f"{ENV}={text!r}: give bytes with an optional unit (16G, 512M) or "
                         "a share of this machine's memory (80%)")
    if m.group(2) == "%":
        return int((total or FALLBACK) * float(m.group(1)) / 100)
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def memory_budget() -> int:
    """Bytes one command may allocate for sizes it can know up front (see the module)."""
    total = total_memory()
    env = os.environ.get(ENV)
    if env:
        return parse_budget(env, total)
    return int(total * DEFAULT_SHARE) if total else FALLBACK


def gib(n: float) -> str:
    """Bytes as a short figure: '2.0 GiB', '300 MiB'."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_memory(nbytes: float, what: str, *, file: str | None = None,
                 node: str | None = None, error: type[SpinnqError] = InputError,
                 hint: str = "") -> None:
    """Refuse `what` (e.g. "dataset 'weight' (1,000,000,000 float32)") when it needs more
    than the budget; the message names the file/node, the figure, `hint` (what to change)
    and how to raise the budget."""
    budget = memory_budget()
    if nbytes > budget:
        raise error(f"{what} needs about {gib(nbytes)}, over the memory budget of "
                    f"{gib(budget)}; {hint + ', or ' if hint else ''}set {ENV} (e.g. 80% "
                    "or 64G) to raise it", file=file, node=node)


__all__ = ["ENV", "check_memory", "gib", "memory_budget", "parse_budget", "total_memory"]
