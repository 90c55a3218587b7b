"""A sweep's results: one JSON file per finished trial (the store `--resume` reads), the tables
built from them (trials.csv, pareto.csv) and the pick under a budget.

    DIR/trials/<key>.json   written atomically when a trial finishes (or fails)
    DIR/trials.csv          settings columns, metric, cost columns, error, wall_s, key
    DIR/pareto.csv          exactly the non-dominated trials: higher metric, lower energy

A trial is "finished" when its file exists, whatever its outcome: a failed trial is not re-run
on `--resume` either (its error is the result; delete its file to try it again).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

from spinnq.errors import CheckpointError
from spinnq.files import atomic_write, write_json
from spinnq.sweep.space import KEYS, key
from spinnq.sweep.trial import COST_COLUMNS

TRIALS_DIR = "trials"


class Store:
    """The finished trials of a sweep folder, keyed by `space.key(settings, seed)`."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder) / TRIALS_DIR

    def path(self, k: str) -> Path:
        return self.folder / f"{k}.json"

    def put(self, rec: dict) -> Path:
        k = key(rec["settings"], rec["seed"])
        return write_json(self.path(k), {**rec, "key": k})

    def records(self) -> dict[str, dict]:
        out = {}
        for p in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else ():
            try:
                rec = json.loads(p.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise CheckpointError(f"not a trial record ({e})", file=str(p)) from None
            out[p.stem] = rec
        return out


def columns(metric: str) -> list[str]:
    return [*KEYS, metric, *COST_COLUMNS, "error", "wall_s", "key"]


def ok(rec: dict, metric: str) -> bool:
    """A trial with a usable result (no error, finite metric and energy)."""
    if rec.get("error"):
        return False
    m, e = rec.get(metric), rec.get("energy_j")
    return m is not None and e is not None and math.isfinite(m) and math.isfinite(e)


def dominates(a: dict, b: dict, metric: str) -> bool:
    """a is at least as good as b in both (higher metric, lower energy) and better in one."""
    return (a[metric] >= b[metric] and a["energy_j"] <= b["energy_j"]
            and (a[metric] > b[metric] or a["energy_j"] < b["energy_j"]))


def pareto(records: list[dict], metric: str) -> list[dict]:
    """The non-dominated trials among those with a result, by energy then metric (ties in
    both numbers are all kept: none dominates the other)."""
    good = [r for r in records if ok(r, metric)]
    front = [r for r in good if not any(dominates(o, r, metric) for o in good)]
    return sorted(front, key=lambda r: (r["energy_j"], -r[metric]))


def row(rec: dict, metric: str) -> dict:
    """A record flattened into the CSV's columns."""
    out = dict(rec["settings"])
    for c in (metric, *COST_COLUMNS, "error", "wall_s", "key"):
        out[c] = rec.get(c, "")
    return out


def to_csv(records: list[dict], metric: str) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns(metric), lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v)
                    for k, v in row(r, metric).items()})
    return buf.getvalue()


def write_tables(folder: str | Path, records: list[dict], metric: str) -> dict[str, Path]:
    """trials.csv (every record, in the given order) and pareto.csv (its front)."""
    folder = Path(folder)
    return {"trials": atomic_write(folder / "trials.csv", to_csv(records, metric)),
            "pareto": atomic_write(folder / "pareto.csv", to_csv(pareto(records, metric),
                                                                  metric))}


@dataclass(frozen=True)
class Budget:
    """Limits a picked trial must meet (None: no limit)."""

    max_energy_j: float | None = None
    max_latency_s: float | None = None
    min_metric: float | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.max_energy_j, self.max_latency_s,
                                           self.min_metric))

    def meets(self, rec: dict, metric: str) -> bool:
        return ok(rec, metric) and (
            (self.max_energy_j is None or rec["energy_j"] <= self.max_energy_j)
            and (self.max_latency_s is None or rec["latency_s"] <= self.max_latency_s)
            and (self.min_metric is None or rec[metric] >= self.min_metric))

    def describe(self, metric: str) -> str:
        parts = []
        if self.max_energy_j is not None:
            parts.append(f"energy <= {self.max_energy_j * 1e3:g} mJ")
        if self.max_latency_s is not None:
            parts.append(f"latency <= {self.max_latency_s * 1e3:g} ms")
        if self.min_metric is not None:
            parts.append(f"{metric} >= {self.min_metric:g}")
        return ", ".join(parts) or "no budget"


def best(records: list[dict], metric: str, budget: Budget = Budget()) -> dict | None:
    """The best trial under the budget: with a minimum metric, the least energy among those
    reaching it; otherwise the highest metric (then the least energy, then latency)."""
    fit = [r for r in records if budget.meets(r, metric)]
    if not fit:
        return None
    if budget.min_metric is not None:
        return min(fit, key=lambda r: (r["energy_j"], -r[metric], r["latency_s"]))
    return min(fit, key=lambda r: (-r[metric], r["energy_j"], r["latency_s"]))


def savings(records: list[dict], reference: dict | None, metric: str, tolerance: float
            ) -> dict | None:
    """The least-energy trial whose metric is at most `tolerance` below the reference's, and
    the energy it saves against it (a share of the reference's energy)."""
    if reference is None or not ok(reference, metric):
        return None
    fit = [r for r in records if ok(r, metric) and r[metric] >= reference[metric] - tolerance]
    pick = min(fit, key=lambda r: (r["energy_j"], -r[metric]))
    return {"reference": reference, "pick": pick, "tolerance": tolerance,
            "saved": 1.0 - pick["energy_j"] / reference["energy_j"],
            "metric_change": pick[metric] - reference[metric]}
