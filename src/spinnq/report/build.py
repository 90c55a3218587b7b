"""Assemble report.json's content: stages, chip cost, baselines, ratios. Only formats: every
number comes in computed and labelled (`kind`):

- measured: run here (a software stage's accuracy/return, CPU/GPU time and power);
- emulated: the compiled program on the bit-exact SpiNNaker2 emulator (what the chip computes);
- modelled: chip latency, power, energy from the emulator's counters and a power model;
- published: a paper's figure.

`drop` = reference value - stage value (same metric): positive = worse than the reference.

Like for like: a ratio (baseline / chip, "> 1: the chip wins") is computed only against a row
of the chip's own workload: rows measured here run the same network (they carry no
`workload`); a published row counts only when its `workload` equals the chip's and it is not
the SpiNNaker2 chip itself. And only on the same basis: a row's `energy_basis` "dynamic"
(above idle: RAPL/NVML rows subtract idle power) is divided by the chip's dynamic energy,
"total" by the chip's total; "unknown" gets no energy ratio. A row that also carries
`energy_total_j` (measured rows) gets a total / total ratio as well (`energy_total_x`). A
row without `energy_basis` is taken as "total". Each energy ratio comes with its range from
the chip's (`energy_x_range`: the chip at the high / low end of its constants' ranges).
Every other row stands as a reference, without a ratio."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from spinnq.errors import InputError

KINDS = ("measured", "emulated", "modelled", "published")
CHIP_KEYS = ("pes", "chips", "timesteps", "tick_s", "latency_s", "power_w", "energy_j",
             "operating_point")


def stage(name: str, metric: str, value: float, kind: str = "measured", **extra) -> dict:
    """One row of the per-stage table, e.g. stage("float", "accuracy", 0.95)."""
    if kind not in KINDS:
        raise InputError(f"kind must be one of {KINDS}, got {kind!r}")
    return {"name": name, "metric": metric, "value": float(value), "kind": kind, **extra}


def _with_drops(stages: list[dict]) -> list[dict]:
    """`drop` of each stage: the first stage's value minus this one (same metric), unless
    given."""
    out, first = [], {}
    for s in stages:
        s = dict(s)
        for k in ("name", "metric", "value"):
            if k not in s:
                raise InputError(f"stage {s} lacks '{k}'")
        s.setdefault("kind", "measured")
        ref = first.setdefault(s["metric"], s["value"])
        s.setdefault("drop", float(ref - s["value"]))
        out.append(s)
    return out


def _chip_entry(cost, workload: str | None = None) -> dict | None:
    if cost is None:
        return None
    d = cost.chip_table() if hasattr(cost, "chip_table") else dict(cost)
    missing = [k for k in CHIP_KEYS if k not in d]
    if missing:
        raise InputError(f"chip entry lacks {', '.join(missing)}")
    d["kind"] = "modelled"
    per_pop = getattr(cost, "per_population", None) or d.get("per_population") or {}
    d["per_population"] = {n: {k: v for k, v in p.items() if k != "counters"}
                           for n, p in per_pop.items()}
    if workload is not None:
        d["workload"] = workload
    return d


def _baseline_row(b) -> dict:
    d = b.row() if hasattr(b, "row") else dict(b)
    for k in ("device", "latency_s", "kind"):
        if k not in d:
            raise InputError(f"baseline row {d} lacks '{k}'")
    d.setdefault("energy_j", None)
    if d["kind"] not in KINDS:
        raise InputError(f"baseline kind must be one of {KINDS}, got {d['kind']!r}")
    return d


def _ratio(num, den) -> float | None:
    if num is None or den is None or den <= 0 or not math.isfinite(num):
        return None
    return float(num) / float(den)


def comparable(chip: dict, row: dict) -> bool:
    """Whether `row` ran the chip's own workload (see the module docstring)."""
    if row.get("workload") is None:
        return row.get("kind") != "published"
    return (row["workload"] == chip.get("workload")
            and "spinnaker2" not in str(row.get("device", "")).lower())


CHIP_BASIS = {"dynamic": ("dynamic_j", "dynamic_low_j", "dynamic_high_j"),
              "total": ("energy_j", "energy_low_j", "energy_high_j")}


def _energy_ratio(value, chip: dict, basis: str) -> tuple[float | None, list | None]:
    """value / the chip's energy on `basis`, and its range; (None, None) off-basis."""
    if basis not in CHIP_BASIS:
        return None, None
    mine, lo, hi = (chip.get(k) for k in CHIP_BASIS[basis])
    x = _ratio(value, mine)
    rng = [_ratio(value, hi), _ratio(value, lo)] if x is not None and lo and hi else None
    return x, rng


def ratios(chip: dict | None, baselines: list[dict]) -> list[dict]:
    """Baseline / chip for energy and latency (> 1: the chip is better), for each baseline of
    the chip's own workload; energy only on the same basis (see the module docstring)."""
    if not chip:
        return []
    out = []
    for b in baselines:
        if not comparable(chip, b):
            continue
        basis = b.get("energy_basis") or "total"
        x, rng = _energy_ratio(b.get("energy_j"), chip, basis)
        row = {"baseline": b["device"], "baseline_kind": b["kind"], "basis": basis,
               "energy_x": x, "energy_x_range": rng,
               "latency_x": _ratio(b.get("latency_s"), chip["latency_s"])}
        if basis != "total" and b.get("energy_total_j") is not None:
            row["energy_total_x"], row["energy_total_x_range"] = _energy_ratio(
                b["energy_total_j"], chip, "total")
        out.append(row)
    return out


def build_report(task: str, stages: Iterable[dict] = (), cost=None, baselines: Iterable = (),
                 notes: Iterable[str] = (), workload: str | None = None, **extra) -> dict:
    """The report dict: `task`, `stages` (with drops), `chip` (a `Cost` or a dict with
    CHIP_KEYS, kind "modelled", its `workload` when given), `baselines` (`Measured` or dict
    rows), `ratios` (same workload only), `notes`; `extra` keys are stored as they are (they
    must be JSON-able)."""
    chip = _chip_entry(cost, workload)
    rows = [_baseline_row(b) for b in baselines]
    for b in rows:
        b["compared"] = bool(chip) and comparable(chip, b)
    return {"task": task, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "stages": _with_drops(list(stages)), "chip": chip, "baselines": rows,
            "ratios": ratios(chip, rows), "notes": list(notes), **extra}
