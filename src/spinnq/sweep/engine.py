"""Run trials on Ray Tune: an embedded Ray on this machine's cores by default, or an existing
cluster (`address="auto"` or "HOST:PORT").

Each trial is one Tune trial with `threads` CPUs reserved and `threads` torch/numba threads, so
concurrent trials never oversubscribe the cores. The problem (graph, data) travels through
Ray's object store (`tune.with_parameters`), so a remote cluster needs no shared files. Records
come back to this process, which writes them into the store as each trial finishes: killing
the sweep loses only the trials still running.

grid / random: the planned trials missing from the store are submitted, nothing else.
optuna: Tune's OptunaSearch (seeded, two objectives: metric up, energy down) proposes the
settings; a proposal whose trial is already in the store returns the stored record without
running again.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spinnq.errors import BackendError, InputError
from spinnq.sweep.space import key, settings
from spinnq.sweep.trial import Problem, run_trial

WORST = 1e300  # stands in for a failed trial's objective values (searchers need numbers)
LOOPBACK = ("127.0.0.1", "localhost")
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's single-machine mode


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: embedded local Ray; "auto" or "HOST:PORT": a cluster
    cpus: int = 0  # embedded Ray's CPUs (0: this machine's cores)
    threads: int = 1  # CPUs (= torch threads) per trial


def _trainable(config: dict, problem: Problem, seed: int, threads: int, known: dict) -> dict:
    s = settings(config["settings"] if "settings" in config else config)
    k = key(s, seed)
    if k in known:  # optuna proposed a finished trial: its stored result, not a re-run
        rec = dict(known[k], cached=True)
    else:
        rec = run_trial(problem, s, seed, threads)
    m = rec.get(problem.metric)
    bad = rec.get("error") or m is None
    return {"objective": -WORST if bad else float(m),
            "energy_objective": WORST if bad else float(rec["energy_j"]),
            "record": json.dumps(rec)}


def _trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


def reachable(address: str, timeout_s: float = 5.0) -> None:
    """A HOST:PORT that accepts no connection is one line now, not minutes of Ray retries."""
    if address == "auto" or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as e:
        raise BackendError(f"no Ray head at {address} ({type(e).__name__}: {e}); start one "
                           "with `ray start --head` or drop --address") from None


def loopback_only() -> None:
    """Make an embedded Ray bind every server to 127.0.0.1. On Linux Ray advertises (and its
    GCS, raylets and workers listen on) the machine's routable address; its single-machine
    mode (the one it uses on macOS and Windows) keeps everything on loopback. The switch is an
    environment variable read when Ray is imported, so it is set before the import, or, when
    Ray is already imported, on the constant it was read into."""
    os.environ[LOCAL_ONLY_ENV] = "0"
    if "ray" in sys.modules:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False


def connect(opts: RayOptions) -> bool:
    """Start (or join) Ray; True when this call started it (and must shut it down)."""
    host = (opts.address or "127.0.0.1").rpartition(":")[0] or opts.address
    if not opts.address or host in LOOPBACK:  # a head on loopback: this driver joins it there
        loopback_only()
    try:
        import ray
    except ImportError:
        raise BackendError("spinnq sweep needs Ray Tune: pip install 'spinnq[sweep]'") from None
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's own tables off (verbose=0)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    common = {"log_to_driver": False, "configure_logging": False, "logging_level": "ERROR"}
    try:
        if opts.address:
            reachable(opts.address)
            ray.init(address=opts.address, **common)
        else:  # loopback only: nothing of this Ray is reachable from another machine
            ray.init(num_cpus=opts.cpus or os.cpu_count() or 1, include_dashboard=False,
                     **common)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = opts.address or "a local Ray"
        raise BackendError(f"cannot start or reach Ray at {where}: {str(e).splitlines()[0]}"
                           ) from None
    return True


def run(problem: Problem, todo: list[dict], out: Path, seed: int, opts: RayOptions,
        on_record: Callable[[dict], None], search: str = "grid", samples: int = 0,
        space: dict | None = None, known: dict | None = None) -> None:
    """Run `todo` (grid/random) or `samples` optuna proposals over `space` on Ray Tune,
    calling `on_record(record)` in this process as each trial ends."""
    import ray
    from ray import tune

    if search != "optuna" and not todo:
        return
    started = connect(opts)
    try:
        threads = max(1, int(opts.threads))
        fn = tune.with_parameters(_trainable, problem=problem, seed=int(seed), threads=threads,
                                  known=dict(known or {}))
        fn = tune.with_resources(fn, {"cpu": threads})
        cpus = int(ray.cluster_resources().get("CPU", 1))
        tune_kw: dict = {"max_concurrent_trials": max(1, cpus // threads), "reuse_actors": True,
                         "trial_dirname_creator": _trial_dirname}  # no values in paths
        if search == "optuna":
            param_space, tune_kw = _optuna(space or {}, seed, samples, problem, tune_kw)
        else:
            param_space = {"settings": tune.grid_search(list(todo))}
        recorder = _recorder(on_record, problem, int(seed))
        tuner = tune.Tuner(
            fn, param_space=param_space, tune_config=tune.TuneConfig(**tune_kw),
            run_config=tune.RunConfig(storage_path=str(Path(out).resolve() / "ray"),
                                      name="tune", verbose=0, callbacks=[recorder],
                                      failure_config=tune.FailureConfig(max_failures=0)))
        tuner.fit()
    finally:
        if started:
            ray.shutdown()


def _optuna(space: dict, seed: int, samples: int, problem: Problem, tune_kw: dict):
    from ray import tune

    try:
        import optuna
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise BackendError("--search optuna needs optuna: pip install 'spinnq[sweep]'") from None
    if samples < 1:
        raise InputError(f"--samples must be >= 1 with --search optuna, got {samples}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    param_space = {k: tune.choice(list(v)) for k, v in space.items()}
    alg = OptunaSearch(metric=["objective", "energy_objective"], mode=["max", "min"],
                       sampler=optuna.samplers.TPESampler(seed=int(seed)))
    return param_space, {**tune_kw, "search_alg": alg, "num_samples": int(samples),
                         "max_concurrent_trials": 1}


def _recorder(on_record: Callable[[dict], None], problem: Problem, seed: int):
    from ray import tune

    class Recorder(tune.Callback):
        """Writes each trial's record as it arrives (the driver owns the store). Tune pickles
        its callbacks with the experiment state: the sink (a live progress bar and store)
        stays in this process, reached through `_SINKS`, and is never pickled."""

        def __init__(self, sink_id: int, metric: str, seed: int):
            self.sink_id, self.metric, self.seed = sink_id, metric, seed

        def on_trial_result(self, iteration, trials, trial, result, **info):
            sink = _SINKS.get(self.sink_id)
            if "record" in result and sink is not None:
                sink(json.loads(result["record"]))

        def on_trial_error(self, iteration, trials, trial, **info):
            sink = _SINKS.get(self.sink_id)
            if sink is None:
                return
            cfg = trial.config.get("settings", trial.config)
            err = getattr(trial, "error_file", None) or "the trial's worker failed"
            sink({"settings": settings(cfg), "seed": self.seed, "error": f"RayError: {err}",
                  self.metric: math.nan})

    Recorder.__module__ = __name__
    Recorder.__qualname__ = "Recorder"
    globals()["Recorder"] = Recorder
    _SINKS[id(on_record)] = on_record
    return Recorder(id(on_record), problem.metric, seed)


_SINKS: dict[int, Callable[[dict], None]] = {}
