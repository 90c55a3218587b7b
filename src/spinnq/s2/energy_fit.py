"""Fit the energy model's free constants to a user's measured runs (a board's power log).

    fit(measurements, model=None, free=None) -> FitResult

A measurement is one run on the chip at a fixed operating point and tick with its measured
energy per inference (`Measurement`), total (the power log as it is) or dynamic (the board's
idle power subtracted: the static power of the chip and of what the model leaves out cancels,
so the cycle costs stand out of the noise; a total measures the unmodelled static power).
At a fixed tick the model's energy is linear in the cycle costs and the unmodelled static
power (the level each PE-tick runs at depends on the activity only, never on a constant), so

    E = E_fixed + sum over free constants k of theta_k * a_k

and the fit is a bounded linear least-squares problem on the relative residuals
(E_model / E_measured - 1), each constant kept inside its sourced range (`ChipModel`).
What the measurements cannot tell apart is said, not guessed: a constant is "pinned" when its
standard error (from the residual scatter and the design matrix) is at most `PIN_REL` of its
value; constants whose work always comes in fixed proportion (the delay-buffer move and the
neuron update: both per neuron) are not free by default. Every number is "modelled" (the fit)
against "measured" (the user's file).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spinnq.errors import InputError
from spinnq.s2 import chip
from spinnq.s2.chip import ChipModel
from spinnq.s2.energy import (
    LEVEL_E_CYCLE_J,
    LEVEL_E_MAC_J,
    LEVEL_SLEEP_W,
    energy,
    run_levels,
    work,
)
from spinnq.s2.program import Placement, Program, Run

# constants fitted by default: every cycle cost but the delay-buffer move (its work is always
# SYNAPSE_TYPES x the neuron update's: only their sum per neuron is identifiable), and the
# unmodelled static power
DEFAULT_FREE = ("tick_overhead", "packet_rx", "lookup_step", "syn_word", "neuron_update",
                "recorded_neuron", "packet_sent", "unmodelled_static_w")
BASES = ("total", "dynamic")
PIN_REL = 0.05  # a constant is pinned when its standard error is <= 5 % of its value


@dataclass
class Measurement:
    """One measured run: the deployed program, its activity, where it ran, what it cost."""

    name: str
    placement: Placement
    run: Run
    program: Program | None
    op: str
    tick_s: float
    measured_j: float  # energy per inference, measured
    basis: str = "total"  # total (the power log as it is) | dynamic (idle power subtracted)


@dataclass
class FitResult:
    model: ChipModel  # the fitted chip model (free constants replaced)
    values: dict[str, float]  # fitted value per free constant
    initial: dict[str, float]
    std_rel: dict[str, float]  # standard error / value (inf: not identifiable)
    pinned: list[str]
    not_pinned: list[str]
    at_bound: list[str]
    residuals: list[dict] = field(default_factory=list)  # per run: measured, modelled, error
    rms_rel: float = 0.0

    def to_dict(self) -> dict:
        return {"values": self.values, "initial": self.initial, "std_rel": self.std_rel,
                "pinned": self.pinned, "not_pinned": self.not_pinned,
                "at_bound": self.at_bound, "residuals": self.residuals,
                "rms_rel": self.rms_rel, "chip_model": self.model.to_dict(),
                "kind": {"fit": "modelled", "measured_j": "measured"}}


def design_row(m: Measurement, model: ChipModel, free: tuple[str, ...]
               ) -> tuple[float, np.ndarray]:
    """(E_fixed, a) of one measurement: its modelled energy is E_fixed + a . theta."""
    if m.tick_s is None or not (np.isfinite(m.tick_s) and m.tick_s > 0):
        raise InputError(f"measurement '{m.name}': a measured run needs its tick (tick_ms)")
    if not np.isfinite(m.measured_j) or m.measured_j <= 0:
        raise InputError(f"measurement '{m.name}': measured_j must be a positive number")
    w = work(m.placement, m.run, m.program)
    lvl, _ = run_levels(m.placement, m.program, w, m.op, model)
    vals = model.values()
    e_cyc = LEVEL_E_CYCLE_J[lvl] * vals["energy_per_cycle_scale"]
    run_s = w.macs.shape[1] * m.tick_s
    chips = m.placement.chips
    coef = {k: float((w.units[k] * e_cyc).sum()) for k in w.units}
    if m.basis not in BASES:
        raise InputError(f"measurement '{m.name}': basis must be one of {', '.join(BASES)}, "
                         f"got {m.basis!r}")
    dynamic = m.basis == "dynamic"  # idle subtracted: no static term survives
    coef["unmodelled_static_w"] = 0.0 if dynamic else chips * run_s
    fixed = float((w.macs * LEVEL_E_MAC_J[lvl]).sum())
    if not dynamic:
        fixed += chips * chip.CHIP_OFF_W * run_s + float((LEVEL_SLEEP_W[lvl] * m.tick_s).sum())
    for k, c in coef.items():
        if k not in free:
            fixed += c * vals[k]
    return fixed, np.array([coef[k] for k in free])


def _bounded_lsq(a: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray
                 ) -> np.ndarray:
    """min |a x - b| with lo <= x <= hi: an active-set method (variables held at a bound
    while the gradient pushes them outward; a feasible step towards the least-squares
    solution of the others, cut at the first bound it meets)."""
    x = np.clip(np.linalg.lstsq(a, b, rcond=None)[0], lo, hi)
    for _ in range(20 * a.shape[1] + 20):
        g = a.T @ (a @ x - b)
        active = ((x <= lo) & (g >= 0)) | ((x >= hi) & (g <= 0))
        free = ~active
        if not free.any():
            break
        target = np.linalg.lstsq(a[:, free], b - a[:, active] @ x[active], rcond=None)[0]
        d = target - x[free]
        with np.errstate(divide="ignore", invalid="ignore"):
            room = np.where(d < 0, (lo[free] - x[free]) / d,
                            np.where(d > 0, (hi[free] - x[free]) / d, np.inf))
        t = min(1.0, float(room.min(initial=np.inf)))
        x[free] = np.clip(x[free] + t * d, lo[free], hi[free])
        if t >= 1.0:
            g = a.T @ (a @ x - b)
            if not (((x <= lo) & (g < 0)) | ((x >= hi) & (g > 0))).any():
                break
    return x


def fit(measurements: list[Measurement], model: ChipModel | None = None,
        free: tuple[str, ...] | None = None) -> FitResult:
    """Fit the free constants (default `DEFAULT_FREE`) to the measurements (see the module
    docstring)."""
    model = model or ChipModel.default()
    free = tuple(free or DEFAULT_FREE)
    consts = model.constants()
    unknown = [k for k in free if k not in consts]
    if unknown:
        raise InputError(f"cannot fit '{unknown[0]}': free constants are among "
                         f"{', '.join(consts)}")
    if len(measurements) < 2:
        raise InputError("fitting needs at least 2 measured runs")
    rows = [design_row(m, model, free) for m in measurements]
    e = np.array([m.measured_j for m in measurements])
    a = np.array([r[1] for r in rows]) / e[:, None]  # relative: each run weighs the same
    b = 1 - np.array([r[0] for r in rows]) / e
    lo = np.array([consts[k].low for k in free])
    hi = np.array([consts[k].high for k in free])
    scale = np.maximum(hi, 1e-30)  # columns scaled to their range, for conditioning
    x = _bounded_lsq(a * scale, b, lo / scale, hi / scale) * scale
    values = dict(zip(free, x.tolist(), strict=True))
    fitted = model.with_values(values, source=f"fitted to {len(measurements)} measured runs")
    resid = a @ x - b
    dof = max(len(e) - len(free), 1)
    sigma = float(np.sqrt((resid ** 2).sum() / dof))
    std = dict(zip(free, _std(a, x, sigma), strict=True))
    at_bound = [k for k, v, lo_k, hi_k in zip(free, x, lo, hi, strict=True)
                if np.isclose(v, lo_k, rtol=1e-6, atol=1e-12) or np.isclose(v, hi_k, rtol=1e-6)]
    pinned = [k for k in free if std[k] <= PIN_REL and k not in at_bound]
    return FitResult(fitted, values, {k: model.values()[k] for k in free}, std, pinned,
                     [k for k in free if k not in pinned], at_bound,
                     _residuals(measurements, fitted), float(np.sqrt((resid ** 2).mean())))


def _std(a: np.ndarray, x: np.ndarray, sigma: float) -> list[float]:
    """Relative standard error of each fitted value (inf where the design cannot tell it
    from the others or it is zero)."""
    norm = np.linalg.norm(a, axis=0)
    an = a / np.where(norm > 0, norm, 1)
    lam, vec = np.linalg.eigh(an.T @ an)
    tiny = lam <= lam.max(initial=0) * 1e-10
    var = (vec[:, ~tiny] ** 2 / lam[~tiny]).sum(axis=1) * sigma ** 2
    null = (vec[:, tiny] ** 2).sum(axis=1) > 1e-6
    return [float("inf") if null[i] or norm[i] == 0 or x[i] == 0
            else float(np.sqrt(var[i]) / norm[i] / abs(x[i])) for i in range(len(x))]


def _residuals(measurements: list[Measurement], model: ChipModel) -> list[dict]:
    out = []
    for m in measurements:
        c = energy(m.placement, m.run, m.program, op=m.op, tick_s=m.tick_s, model=model)
        e = c.dynamic_j if m.basis == "dynamic" else c.energy_j
        out.append({"run": m.name, "basis": m.basis, "measured_j": m.measured_j,
                    "modelled_j": e, "error": e / m.measured_j - 1, "realtime": c.realtime})
    return out


def synthetic(measurements: list[Measurement], truth: ChipModel, noise: float = 0.05,
              seed: int = 0) -> list[Measurement]:
    """The same runs 'measured' on a chip that follows `truth`, with relative Gaussian noise:
    to check that `fit` recovers what it did not see."""
    rng = np.random.default_rng(seed)
    out = []
    for m in measurements:
        c = energy(m.placement, m.run, m.program, op=m.op, tick_s=m.tick_s, model=truth)
        e = c.dynamic_j if m.basis == "dynamic" else c.energy_j
        out.append(Measurement(m.name, m.placement, m.run, m.program, m.op, m.tick_s,
                               e * (1 + noise * rng.standard_normal()), m.basis))
    return out


__all__ = ["DEFAULT_FREE", "FitResult", "Measurement", "fit", "synthetic"]
