"""`run_sweep`: plan the trials, run the missing ones on Ray, write the results and the report.

    out/sweep.json      what was swept (target, metric, seed, search, space): `--resume` checks it
    out/trials/*.json   one record per finished trial (see results.py)
    out/trials.csv, pareto.csv, report.md/.html, plots/front.png
    out/best.nir, best_x.npy, best.md   with a budget: the pick, its integer graph, the input
                                        its cost was modelled on, and the commands reproducing it
"""

from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from spinnq.errors import CheckpointError, InputError, Interrupted
from spinnq.files import atomic_write, write_json
from spinnq.graph import meta
from spinnq.graph.model import write_graph
from spinnq.helpers import progress, read_json
from spinnq.report.write import fmt
from spinnq.settings import (
    ACCURACY,
    ANY_NUMBER,
    SPACE_LIMITS,
    SWEEP_FLAGS,
    bits_value,
    check_flag,
)
from spinnq.sweep import engine, report
from spinnq.sweep.results import (
    Budget,
    Store,
    best,
    ok,
    order_kept,
    pareto,
    savings,
    write_tables,
)
from spinnq.sweep.space import Plan, key, plan, settings
from spinnq.sweep.trial import Problem, quant_function, quant_stages, tick_seconds
from spinnq.tasks.common import RunDir, config_sha256, differing_keys, read_marker

SPEC = "sweep.json"
PROPOSED = "optuna.json"  # how many optuna proposals a sweep folder has used


@dataclass(frozen=True)
class SweepConfig:
    space: dict = field(default_factory=dict)  # key -> values (space.parse_space)
    search: str = "grid"
    samples: int = 0  # random / optuna: trials to draw
    seed: int = 0
    budget: Budget = Budget()
    ray: engine.RayOptions = engine.RayOptions()
    resume: bool = False
    quiet: bool = False


def tolerance(metric: str, reference: dict | None) -> float:
    """The metric loss counted as "no loss": 0.5 pt of accuracy, or 0.5 % of the reference's
    return."""
    if metric == "accuracy":
        return 0.005
    return 0.005 * abs(reference[metric]) if reference and ok(reference, metric) else 0.0


def check_options(flags: dict, space: dict, metric: str, min_metric: float | None,
                  graph: bool, ray: engine.RayOptions) -> None:
    """Every sweep setting against its limit (`spinnq.settings`), before Ray starts or any
    file is written: flags, each --space value, the budget, the Ray address and CPUs."""
    for flag, value in flags.items():
        check_flag(flag, value, SWEEP_FLAGS[flag])
    for k, vals in space.items():
        for v in vals:
            if k in SPACE_LIMITS and not isinstance(v, str):
                check_flag(f"--space {k}", v, SPACE_LIMITS[k])
    if graph and flags.get("--episodes") is not None:
        raise InputError("--episodes is for control tasks (closed-loop episodes per trial); "
                         "a graph is scored on its --data")
    if min_metric is not None:
        check_flag("--min-accuracy", min_metric, ACCURACY if metric == "accuracy"
                   else ANY_NUMBER)
    if ray.address:
        engine.parse_address(ray.address)
    else:
        engine.check_embedded()
        cores = ray.cpus or os.cpu_count() or 1
        if ray.threads > cores:
            raise InputError(f"--threads {ray.threads} > the {cores} CPUs of the embedded Ray "
                             "(--cpus, default: this machine's cores): no trial could start")


def identity(target: str, problem: Problem | None, data: str | Path | None, seed: int,
             **task: object) -> dict:
    """What a trial's result depends on besides its own settings: the target (a task and
    its sizes, or a graph's and its data's hashes and run settings) and the seed."""
    if problem is None:
        return {"target": target, "seed": int(seed), **task}
    return {"target": "graph", "graph_sha256": file_sha256(target),
            "data_sha256": file_sha256(data), "convention": problem.convention,
            "dt": problem.dt, "reset": problem.reset, "metric": problem.metric,
            "seed": int(seed)}


def open_folder(out: str | Path, identity: dict, resume: bool) -> RunDir:
    """The sweep folder, locked: a new one (absent or empty `out`; the marker records the
    sweep's `identity`), or this very sweep's earlier folder. Another sweep's folder is
    refused naming what differs (graph or data hash, convention, seed, ...), so two sweeps
    never mix; a finished trial is only reused with `resume`."""
    out = Path(out)
    if not out.is_dir() or read_marker(out) is None:
        folder = RunDir.create("sweep", out, kind="sweep")  # refuses a foreign folder
        folder.record_config(identity)
        return folder
    folder = RunDir.open(out, kind="sweep")
    try:
        rec = folder.recorded_config()
        if rec is None:
            folder.record_config(identity)
        elif config_sha256(rec) != config_sha256(identity):
            raise InputError(f"holds another sweep: {describe_change(rec, identity)}; use "
                             "another --out", file=str(out))
        if not resume and Store(out).records():
            raise InputError("holds a sweep already: pass --resume to continue it, or "
                             "another --out", file=str(out))
    except BaseException:
        folder.release()
        raise
    return folder


def describe_change(old: dict, new: dict) -> str:
    """'data_sha256 3fa1b2c4.. -> 9d0e.., convention nir -> snntorch' (at most 4 keys)."""
    def short(v):
        t = str(v)
        return t[:10] + ".." if len(t) > 12 else t

    keys = differing_keys(old, new)
    return ", ".join(f"{k} {short(old.get(k))} -> {short(new.get(k))}" for k in keys[:4])


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_sweep(problem: Problem, out: str | Path, cfg: SweepConfig, target: str = "") -> dict:
    """Run the sweep into `out`; returns {"records", "pareto", "best", "ran", "skipped", ...}."""
    out = Path(out)
    spec = {"target": target or problem.name, "metric": problem.metric, "seed": cfg.seed,
            "search": cfg.search, "samples": cfg.samples,
            "space": {k: list(v) for k, v in cfg.space.items()},
            "budget": asdict(cfg.budget)}
    extra = [problem.default(), problem.seed_config()]
    for stage in quant_stages(cfg.space):  # checked before anything runs
        quant_function(stage)
    for bits in cfg.space.get("bits", ()):  # per-population widths name its populations
        if isinstance(bits, str):
            problem.run_settings(settings({**extra[0], "bits": bits}))
    if cfg.search == "optuna":
        todo_plan = Plan(tuple(map(settings, extra)))
    else:
        todo_plan = plan(cfg.space, cfg.search, cfg.samples, cfg.seed, extra)
    write_json(out / SPEC, spec)
    store = Store(out)
    known = store.records()
    keys = [key(s, cfg.seed) for s in todo_plan.trials]
    todo = [s for s, k in zip(todo_plan.trials, keys, strict=True) if k not in known]
    state = {"ran": 0}
    phase = {"optuna": False}

    def proposed() -> int:
        p = out / PROPOSED
        d = read_json(p) if p.exists() else {"proposed": 0}
        if not (isinstance(d, dict) and isinstance(d.get("proposed"), int)
                and d["proposed"] >= 0):
            raise CheckpointError("not a proposals record ({\"proposed\": N})", file=str(p))
        return d["proposed"]

    total = len(todo_plan) + (cfg.samples if cfg.search == "optuna" else 0)
    done_before = len(todo_plan) - len(todo)

    with progress(disable=cfg.quiet) as bar:
        task = bar.add_task(f"sweep {spec['target']}", total=total, completed=done_before,
                            info=_best_info(list(known.values()), problem.metric, cfg.budget))

        def on_record(rec: dict) -> None:
            if phase["optuna"]:  # proposals drawn so far, finished or found in the store
                write_json(out / PROPOSED, {"proposed": proposed() + 1})
            if rec.get("cached"):
                bar.update(task, advance=1)
                return
            store.put(rec)
            state["ran"] += 1
            recs = list(store.records().values())
            bar.update(task, advance=1, info=_best_info(recs, problem.metric, cfg.budget))

        try:
            if todo:
                engine.run(problem, todo, out, cfg.seed, cfg.ray, on_record, "grid")
            if cfg.search == "optuna":
                phase["optuna"] = True
                left = max(0, cfg.samples - proposed())
                bar.update(task, completed=done_before + cfg.samples - left)
                if left:
                    engine.run(problem, [], out, cfg.seed, cfg.ray, on_record, "optuna", left,
                               cfg.space, store.records())
                bar.update(task, completed=total)
        except KeyboardInterrupt:
            n = len(store.records())
            raise Interrupted(f"interrupted: {n} of {total} trials finished ({state['ran']} "
                              f"in this session), kept in {out / 'trials'}; continue with the "
                              "same command and --resume") from None
    return finish(problem, out, cfg, target or problem.name, ran=state["ran"],
                  skipped=done_before)


def _best_info(records: list[dict], metric: str, budget: Budget) -> str:
    b = best(records, metric, budget)
    if b is None:
        return ""
    m = f"{b[metric]:.2%}" if metric == "accuracy" else f"{b[metric]:.1f}"
    return f"best {metric} {m} at {fmt(b['energy_j'], 'J')}"


def finish(problem: Problem, out: Path, cfg: SweepConfig, title: str, ran: int = 0,
           skipped: int = 0) -> dict:
    """Tables, report and (with a budget) the pick, from the store."""
    metric = problem.metric
    by_key = Store(out).records()
    order = {key(s, cfg.seed): i for i, s in enumerate(
        [problem.default(), problem.seed_config()])}
    records = sorted(by_key.values(), key=lambda r: (order.get(r["key"], 2),
                                                     [str(v) for v in r["settings"].values()]))
    paths = write_tables(out, records, metric)
    default = by_key.get(key(problem.default(), cfg.seed))
    seed = by_key.get(key(problem.seed_config(), cfg.seed))
    info: dict = {"default": default, "seed": seed, "notes": list(getattr(problem, "notes", [])),
                  "saved_vs_default": savings(records, default, metric,
                                              tolerance(metric, default)),
                  "saved_vs_seed": savings(records, seed, metric, tolerance(metric, seed))}
    pick = None
    if cfg.budget:
        info["budget"] = cfg.budget.describe(metric)
        pick = info["best"] = best(records, metric, cfg.budget)
        if pick is not None:
            paths |= write_best(problem, out, pick)
    info["pareto_order_kept"] = order_kept(pareto(records, metric))
    paths |= report.write(out, title, records, metric, info)
    write_json(out / "summary.json", {k: v for k, v in info.items()} | {
        "trials": len(records), "ran": ran, "skipped": skipped,
        "pareto": [r["key"] for r in pareto(records, metric)]})
    return {"records": records, "pareto": pareto(records, metric), "best": pick, "ran": ran,
            "skipped": skipped, "paths": paths, "info": info}


def write_best(problem: Problem, out: Path, rec: dict) -> dict[str, Path]:
    """best.nir (the integer graph of the pick, its run settings in metadata), best_x.npy (the
    input its cost was modelled on) and best.md (the commands that reproduce its numbers)."""
    from spinnq.s2.compile import compile
    from spinnq.s2.export import export_graph

    s = rec["settings"]
    g = problem.graph(s)
    cfg = problem.s2_config(s)
    q = export_graph(g, cfg)
    q.metadata = meta.stamp(q.metadata, reset=cfg.reset, dt=float(cfg.dt))
    paths = {"best_nir": write_graph(q, out / "best.nir")}
    x = np.asarray(problem.energy_input(compile(g, cfg), s), dtype=np.uint8)
    paths["best_x"] = out / "best_x.npy"
    np.save(paths["best_x"], x)
    y = problem.labels(s)
    if y is not None:
        paths["best_data"] = out / "best_data.npz"
        np.savez_compressed(paths["best_data"], x=x, y=np.asarray(y))
    paths["best_md"] = atomic_write(out / "best.md", best_commands(problem, out, rec,
                                                                   labelled=y is not None))
    return paths


def chip_flags(problem: Problem, s: dict) -> list[str]:
    """The flags that make `spinnq deploy/energy` run best.nir as the trial ran."""
    cfg = problem.s2_config(s)
    flags = ["--weight-scale", "none", "--bits", str(bits_value(cfg.bits,
                                                                cfg.bits_by_population)),
             "--reset", cfg.reset,
             "--dt", repr(float(cfg.dt))]
    if s["neurons_per_pe"]:
        flags += ["--neurons-per-pe", str(s["neurons_per_pe"])]
    return flags


def energy_flags(s: dict) -> list[str]:
    tick = tick_seconds(s)
    return ["--operating-point", s["operating_point"],
            "--tick-ms", "shortest" if tick is None else repr(float(s["tick_ms"]))]


def best_commands(problem: Problem, out: Path, rec: dict, labelled: bool = False) -> str:
    s, metric = settings(rec["settings"]), problem.metric
    nir, x = shlex.quote(str(out / "best.nir")), shlex.quote(str(out / "best_x.npy"))
    flags = " ".join(map(shlex.quote, chip_flags(problem, s)))
    eflags = " ".join(map(shlex.quote, energy_flags(s)))
    m = f"{rec[metric]:.6g}"
    evaluate = ([f"spinnq evaluate {nir} --data {shlex.quote(str(out / 'best_data.npz'))} "
                 f"--target chip --batch {len(problem.labels(s))} {flags} {eflags} "
                 "--json best_eval.json"] if labelled else [])
    return "\n".join([
        "# The best trial under the budget", "",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in s.items()), "",
        f"{metric} {m} (emulated); energy {rec['energy_j']!r} J, dynamic {rec['dynamic_j']!r} J,"
        f" latency {rec['latency_s']!r} s (modelled); {rec['pes']} PEs on {rec['chips']} chip(s).",
        "", "`best.nir` holds the integer weights (`spinnq export` format) and the run settings;"
        " `best_x.npy` the input the cost was modelled on (`best_data.npz`: with its labels). "
        "Reproduce (`evaluate`: the accuracy; `energy`: the modelled cost of the same "
        "emulator run the trial costed):", "", "```",
        *evaluate,
        f"spinnq deploy {nir} --input {x} --out best_out.npz {flags}",
        f"spinnq energy {nir} --input {x} {flags} {eflags} --json best_energy.json", "```", "",
        f"{metric}: " + ("the share of samples whose output spike count is largest at the label"
                         " (labels: `y` of the data file)" if metric == "accuracy" else
                         "closed-loop mean return (`spinnq run` evaluation)"), ""])
