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

from spinnq.errors import CheckpointError, InputError
from spinnq.files import atomic_write, write_json
from spinnq.sweep.space import KEYS, key
from spinnq.sweep.trial import COST_COLUMNS
from spinnq.tasks.common import held_run

TRIALS_DIR = "trials"


class Store:
    """The finished trials of a sweep folder, keyed by `space.key(settings, seed)`."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder) / TRIALS_DIR

    def path(self, k: str) -> Path:
        return self.folder / f"{k}.json"

    def put(self, rec: dict) -> Path:
        """Write a record; inside a sweep folder this process holds, its hash is recorded
        (a record swapped in from another sweep is refused on --resume)."""
        k = key(rec["settings"], rec["seed"])
        run = held_run(self.path(k))
        if run is not None:
            return run.write_json(self.path(k), {**rec, "key": k})
        return write_json(self.path(k), {**rec, "key": k})

    def records(self) -> dict[str, dict]:
        """Every record, read back like user input: a damaged, foreign or edited one is a
        `CheckpointError` naming its file (delete it to run that trial again)."""
        out = {}
        for p in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else ():
            run = held_run(p)
            if run is not None:
                run.verify(p)
            try:
                rec = json.loads(p.read_bytes().decode("utf-8"))
            except (OSError, ValueError) as e:
                raise CheckpointError(f"not a trial record ({type(e).__name__})",
                                      file=str(p)) from None
            out[p.stem] = check_record(rec, p)
        return out


def check_record(rec: object, p: Path) -> dict:
    """A trial record's shape: an object with its settings, seed and key (= its name)."""
    if not isinstance(rec, dict):
        raise CheckpointError(f"not a trial record (a JSON {type(rec).__name__})", file=str(p))
    try:
        ok_key = rec.get("key") == p.stem == key(rec["settings"], rec["seed"])
    except (KeyError, TypeError, ValueError, InputError):
        ok_key = False
    if not ok_key:
        raise CheckpointError("not a trial record of this sweep (its settings, seed and key "
                              "do not match its name); delete it to run that trial again",
                              file=str(p))
    for k in ("error", "wall_s", *COST_COLUMNS):
        v = rec.get(k)
        if v is not None and not isinstance(v, str | int | float | bool):
            raise CheckpointError(f"trial record field {k} is not a plain value", file=str(p))
    return rec


def columns(metric: str) -> list[str]:
    return [*KEYS, metric, *COST_COLUMNS, "error", "wall_s", "key"]


def ok(rec: dict, metric: str) -> bool:
    """A trial with a usable result (no error, finite metric and energy)."""
    if rec.get("error"):
        return False
    m, e = rec.get(metric), rec.get("energy_j")
    return all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
               for v in (m, e))


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


def order_kept(front: list[dict]) -> dict[str, bool | None]:
    """Per front point (by key): whether its rank by energy is the same with every energy
    constant at the low end of its sourced range, at its value and at the high end (None:
    records without a range)."""
    corners = ("energy_low_j", "energy_j", "energy_high_j")
    if any(not isinstance(r.get(c), int | float) for r in front for c in corners):
        return {r["key"]: None for r in front}
    ranks = [{r["key"]: i for i, r in enumerate(sorted(front, key=lambda r: r[c]))}
             for c in corners]
    return {r["key"]: ranks[0][r["key"]] == ranks[1][r["key"]] == ranks[2][r["key"]]
            for r in front}


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
