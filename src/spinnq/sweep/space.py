"""The design space of a sweep: which settings a trial has, how `--space KEY=V1,V2` is read,
and which trials a grid or a random search plans.

A trial is a complete settings dict over `KEYS` (every key has a default, so two trials with the
same settings are the same trial whatever the space they came from); its identity is `key()`,
a hash of those settings and the sweep seed, used by the results store so that `--resume`
never runs a finished trial twice.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from spinnq.config import DEFAULT_OP, REALTIME_TICK_S, SHORTEST_TICK
from spinnq.errors import InputError
from spinnq.settings import bits_value, parse_bits, parse_tick_text

CALIBRATE = "calibrate"
GRAPH_SCALES = "graph"  # weight_scale: the scales the graph's weight nodes carry (w_scale)
SHORTEST = SHORTEST_TICK
# key -> default (spinnq's default configuration). timesteps 0: all steps of the data / the
# task's own T; neurons_per_pe 0: the chip model's default; finetune 0: no fine-tuning.
DEFAULTS: dict[str, Any] = {
    "timesteps": 0,
    "bits": 8,
    "weight_scale": "max",
    "operating_point": DEFAULT_OP,  # the defaults every door shares (`spinnq.resolver`)
    "tick_ms": REALTIME_TICK_S * 1e3,
    "neurons_per_pe": 0,
    "finetune": 0,
}
KEYS = tuple(DEFAULTS)
SEARCHES = ("grid", "random", "optuna")


def operating_points() -> tuple[str, ...]:
    """The operating points the energy model knows (read, not copied: the model grows)."""
    from spinnq.s2.energy import OP_CHOICES

    return tuple(OP_CHOICES)


def _int(key: str, text: str, low: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise InputError(f"--space {key}: expected an integer, got {text!r}") from None
    if v < low:
        raise InputError(f"--space {key}: must be >= {low}, got {v}")
    return v


def parse_value(key: str, text: str) -> Any:
    """One value of `key`, checked; the error names the key and what it takes."""
    t = str(text).strip()
    if key in ("timesteps", "neurons_per_pe", "finetune"):
        return _int(key, t, 1 if key == "timesteps" else 0)
    if key == "bits":  # 8, 4, or per population: 'l1=4+l2=8' on --space, 'l1=4,l2=8' in code
        default, per = parse_bits(t, "--space bits:")
        return bits_value(default, per)
    if key == "weight_scale":
        from spinnq.s2.formats import ScaleMode  # torch: only when a scale is parsed

        if t.lower() in (CALIBRATE, GRAPH_SCALES):
            return t.lower()
        try:
            return str(ScaleMode.parse(t))
        except InputError as e:
            raise InputError(f"--space weight_scale: {e} (or 'calibrate', 'graph')") from None
    if key == "operating_point":
        ops = operating_points()
        if t not in ops:
            raise InputError(f"--space operating_point: one of {', '.join(ops)}, got {t!r}")
        return t
    if key == "tick_ms":
        return parse_tick_text(t, "--space tick_ms:")
    raise InputError(f"--space: unknown key {key!r}; known: {', '.join(KEYS)}")


def parse_space(items: list[str] | tuple[str, ...]) -> dict[str, tuple]:
    """`["bits=8,4", "operating_point=0.5V,0.8V"]` -> {"bits": (8, 4), ...} (order kept,
    duplicates dropped); a key given twice is an error. A per-population bits choice joins
    its items with '+' (commas separate choices): `bits=8,4,l1=4+l2=8` -> (8, 4,
    'l1=4,l2=8')."""
    space: dict[str, tuple] = {}
    for item in items or ():
        key, sep, vals = str(item).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not vals.strip():
            raise InputError(f"--space takes KEY=V1,V2,..., got {item!r}")
        if key not in DEFAULTS:
            raise InputError(f"--space: unknown key {key!r}; known: {', '.join(KEYS)}")
        if key in space:
            raise InputError(f"--space {key} given twice")
        space[key] = tuple(dict.fromkeys(parse_value(key, v) for v in vals.split(",")))
    return space


def settings(partial: dict[str, Any] | None = None) -> dict[str, Any]:
    """A complete settings dict: `partial` over the defaults, in `KEYS` order."""
    unknown = set(partial or {}) - set(DEFAULTS)
    if unknown:
        raise InputError(f"unknown settings {sorted(unknown)}; known: {', '.join(KEYS)}")
    merged = {**DEFAULTS, **(partial or {})}
    return {k: merged[k] for k in KEYS}


def key(s: dict[str, Any], seed: int) -> str:
    """The identity of a trial: its complete settings and the sweep seed."""
    blob = json.dumps({"settings": settings(s), "seed": int(seed)}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    """The trials of a sweep, in the order they are submitted."""

    trials: tuple[dict, ...]

    def __len__(self) -> int:
        return len(self.trials)


def grid(space: dict[str, tuple], base: dict | None = None) -> list[dict]:
    """Every combination of the space's values (other keys from `base`, then defaults)."""
    keys = list(space)
    out = []
    for combo in itertools.product(*(space[k] for k in keys)):
        out.append(settings({**(base or {}), **dict(zip(keys, combo, strict=True))}))
    return out


def plan(space: dict[str, tuple], search: str, samples: int, seed: int,
         extra: list[dict] = (), base: dict | None = None) -> Plan:
    """grid: all combinations; random: `samples` distinct combinations drawn with `seed`
    (all of them when the grid is smaller). `extra` trials (the default and the seed's
    configuration) come first so the report can mark them; duplicates are dropped."""
    if search not in ("grid", "random"):
        raise InputError(f"--search must be one of {', '.join(SEARCHES)}, got {search!r}")
    full = grid(space, base)
    if search == "random":
        if samples < 1:
            raise InputError(f"--samples must be >= 1, got {samples}")
        rng = np.random.default_rng(seed)
        idx = rng.permutation(len(full))[:samples]
        full = [full[i] for i in sorted(idx)]
    seen: dict[str, dict] = {}
    for s in [*map(settings, extra), *full]:
        seen.setdefault(json.dumps(s, sort_keys=True), s)
    return Plan(tuple(seen.values()))
