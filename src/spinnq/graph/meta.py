"""What a graph says about how it must be run: settings stored in NIR metadata.

A NIR file stores ODE parameters, not the rule its producer stepped them with. Graphs that
spinnq writes (training exports, `spinnq quantize`, `spinnq export`) record that rule in the
graph's own metadata, so every command that reads the file runs it as it was trained without
extra flags. Explicit flags win over the file; the file wins over spinnq's defaults.

Graph-level keys (`NIRGraph.metadata`), all optional:
    spinnq.reset        "zero" | "subtract"          reset after a spike
    spinnq.convention   "nir" | "snntorch" | "norse" | "spikingjelly" | "rockpool" | "sinabs"
                                                     neuron update rule of the producer
    spinnq.dt           float seconds                timestep the graph was trained with
    spinnq.bits         8 | 4 | "l1=4,l2=8"          weight bits chosen by calibration: one
                                                     width, or per population (NAME=WIDTH;
                                                     a bare width for the rest, `parse_bits`)
    spinnq.integrator   "forward" | "exponential"    how a decay is discretised
    spinnq.delayed_reset  bool                       snnTorch's one-step-late reset, as a
                                                     self-projection (an exported graph holds
                                                     the projection itself: false there)
A convention brings its producer's defaults (`CONVENTION_DEFAULTS`: snnTorch resets by
subtraction), so the full ranking of a run setting is: flags > the file > the convention's
default > spinnq's default (`run_settings`).

Weight-node keys (`node.metadata`): `w_scale` (the population's integer weight scale) and
`bits`, read by the compiler (`S2Config(graph_scales=True)`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from spinnq.config import DEFAULT_DT
from spinnq.errors import GraphError, InputError
from spinnq.settings import bits_value, parse_bits

PREFIX = "spinnq."
INTEGRATORS = ("forward", "exponential")  # how a decay is discretised (`decay_factors`)
SETTINGS: dict[str, tuple[type, tuple | None]] = {  # key -> (type, allowed values)
    "reset": (str, ("zero", "subtract")),
    "convention": (str, ("nir", "snntorch", "norse", "spikingjelly", "rockpool", "sinabs")),
    "dt": (float, None),
    "bits": (int, (8, 4)),
    "integrator": (str, INTEGRATORS),
    "delayed_reset": (bool, None),
}
CONVENTIONS: tuple[str, ...] = SETTINGS["convention"][1]
RESETS: tuple[str, ...] = SETTINGS["reset"][1]
# What a convention implies when neither a flag nor the file says otherwise: the producer's
# own defaults. snnTorch's Leaky/Synaptic reset by subtraction (dt: its exporter writes taus
# for 1e-4, spinnq's default); Norse's cells reset to v_reset and Rockpool's modules by
# subtraction, both stepping dt = 1 ms; SpikingJelly's exporter writes taus for dt = 1e-4.
# Sinabs's layers reset by subtraction and count time in steps (its taus are in steps: dt 1).
# Each convention's kernels and chip translation: `spinnq.graph.conventions.REGISTRY`.
CONVENTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "nir": {}, "snntorch": {"reset": "subtract"}, "norse": {"dt": 1e-3},
    "spikingjelly": {}, "rockpool": {"reset": "subtract", "dt": 1e-3},
    "sinabs": {"reset": "subtract", "dt": 1.0}}
RUN_DEFAULTS: dict[str, Any] = {"reset": "zero", "convention": "nir", "dt": DEFAULT_DT,
                                "integrator": "forward", "delayed_reset": False}


def _as_bool(raw: Any) -> bool:
    """A stored flag: a bool (numpy's too), 0/1, or the text true/false (HDF5 round trips)."""
    if isinstance(raw, bytes | bytearray):
        raw = raw.decode()
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    if isinstance(raw, bool | int) and raw in (0, 1):
        return bool(raw)
    raise ValueError(raw)


def read_settings(metadata: Mapping[str, Any] | None, source: str | None = None) -> dict:
    """The run settings a graph's metadata records: {name: value} for the keys present,
    each checked (type and allowed values); a bad value is a `GraphError` naming the file."""
    out: dict[str, Any] = {}
    for name, (kind, allowed) in SETTINGS.items():
        key = PREFIX + name
        if not metadata or key not in metadata:
            continue
        raw = metadata[key]
        if name == "bits":
            out[name] = _read_bits(raw, key, source)
            continue
        try:
            plain = raw.item() if isinstance(raw, np.generic | np.ndarray) else raw
            val = _as_bool(plain) if kind is bool else kind(plain)
        except (TypeError, ValueError):
            raise GraphError(f"metadata '{key}' must be a {kind.__name__}, got {raw!r}",
                             file=source) from None
        if isinstance(raw, bytes | bytearray) and kind is str:
            val = raw.decode()
        if allowed is not None and val not in allowed:
            raise GraphError(f"metadata '{key}' must be one of {allowed}, got {val!r}",
                             file=source)
        if name == "dt" and not (np.isfinite(val) and val > 0):
            raise GraphError(f"metadata '{key}' must be a positive number of seconds, "
                             f"got {val!r}", file=source)
        out[name] = val
    return out


def _read_bits(raw: Any, key: str, source: str | None) -> int | str:
    """`spinnq.bits`: one width (8 | 4) or a per-population spec ('l1=4,l2=8', '8,out=4'),
    as `spinnq.settings.bits_value` writes it; a bad value is a `GraphError` naming the file."""
    raw = raw.item() if isinstance(raw, np.generic | np.ndarray) else raw
    raw = raw.decode() if isinstance(raw, bytes | bytearray) else raw
    try:
        default, per = parse_bits(raw, f"metadata '{key}'")
    except InputError as e:
        raise GraphError(str(e), file=source) from None
    if default is None and not per:
        raise GraphError(f"metadata '{key}' is empty", file=source)
    return bits_value(default, per) if per else default


def stamp(metadata: Mapping[str, Any] | None, **settings: Any) -> dict:
    """A copy of `metadata` with `settings` (None values skipped) recorded under their keys."""
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown graph settings {sorted(unknown)}; known: {list(SETTINGS)}")
    out = dict(metadata or {})
    out.update({PREFIX + k: v for k, v in settings.items() if v is not None})
    stored = read_settings(out)  # the same checks as on reading
    if settings.get("bits") is not None:  # one width or a per-population spec, as text
        out[PREFIX + "bits"] = stored["bits"]
    return out


def resolve(explicit: Mapping[str, Any], metadata: Mapping[str, Any] | None,
            defaults: Mapping[str, Any], source: str | None = None) -> dict:
    """Flags given by the user (not None) > the graph's metadata > `defaults`."""
    stored = read_settings(metadata, source)
    out = dict(defaults)
    out.update(stored)
    out.update({k: v for k, v in explicit.items() if v is not None})
    return out


def run_settings(metadata: Mapping[str, Any] | None, source: str | None = None,
                 **flags: Any) -> dict:
    """How to run a graph: reset, convention, dt, integrator and delayed reset (and bits where
    the file records them).

    Ranking: `flags` given (not None) > the graph's metadata > the chosen convention's
    defaults (`CONVENTION_DEFAULTS`) > spinnq's defaults (`RUN_DEFAULTS`). The convention is
    resolved first (flag > file > nir), because it decides which defaults apply."""
    stored = read_settings(metadata, source)
    conv = flags.get("convention") or stored.get("convention") or RUN_DEFAULTS["convention"]
    if conv not in CONVENTIONS:
        raise InputError(f"convention must be one of {CONVENTIONS}, got {conv!r}")
    return resolve(flags, metadata, RUN_DEFAULTS | CONVENTION_DEFAULTS[conv], source)


def decay_factors(tau, dt: float, integrator: str = "forward") -> tuple[np.ndarray, np.ndarray]:
    """(alpha, a) in float64: the per-step decay and the input gain of `tau dv/dt = -v + u`
    (forward Euler: 1 - dt/tau and dt/tau; exponential: exp(-dt/tau) and 1 - exp(-dt/tau)).
    The one discretisation the reference simulator and the chip compiler share."""
    ratio = dt / np.asarray(tau, dtype=np.float64)
    if integrator == "exponential":
        alpha = np.exp(-ratio)
        return alpha, 1.0 - alpha
    return 1.0 - ratio, ratio
