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

import contextlib
import json
import math
import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from spinnq.errors import BackendError, InputError
from spinnq.sweep.space import key, settings
from spinnq.sweep.trial import Problem, run_trial

WORST = 1e300  # stands in for a failed trial's objective values (searchers need numbers)
LOOPBACK = ("127.0.0.1", "localhost")
LOG = "sweep.log"  # Ray's own messages (start-up, shutdown), in the sweep folder
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


def parse_address(address: str) -> tuple[str, int] | None:
    """--address: "auto" (None: Ray finds its cluster) or HOST:PORT / [IPv6]:PORT, checked
    before anything starts; the other forms Ray knows are refused in one line."""
    a = address.strip()
    if a == "auto":
        return None
    if "://" in a:
        scheme = a.split("://", 1)[0]
        why = ("a Ray Client address; spinnq joins a cluster as a driver" if scheme == "ray"
               else "a web (dashboard) address")
        raise InputError(f"--address {a}: {why}: give the head's GCS address HOST:PORT "
                         "(`ray start --head` prints it, e.g. 127.0.0.1:6379) or auto")
    host, sep, port = a.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--address {a}: expected HOST:PORT (port 1-65535), [IPv6]:PORT or "
                         "auto")
    return host, int(port)


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(3) + b"\x04" + bytes(5)


def reachable(address: str, timeout_s: float = 3.0) -> None:
    """A HOST:PORT where no Ray head answers is one line within seconds, not minutes of Ray
    retries: the port must accept a connection and speak gRPC (a Ray head's GCS answers the
    HTTP/2 preface with a SETTINGS frame; another service does not)."""
    hp = parse_address(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=timeout_s) as sock:
            if os.environ.get("RAY_USE_TLS", "0") not in ("0", ""):
                return  # a TLS head: the plain preface would not be answered
            sock.sendall(H2_PREFACE)
            head = sock.recv(9)
    except TimeoutError:
        head = b""
    except OSError as e:
        raise BackendError(f"no Ray head at {address} ({(e.strerror or type(e).__name__)}); "
                           "start one with `ray start --head` or drop --address") from None
    if len(head) < 4 or head[3] != 0x04:
        raise BackendError(f"{address} answers, but not as a Ray head (no gRPC reply within "
                           f"{timeout_s:g} s); check the port `ray start --head` printed")


@contextlib.contextmanager
def to_log(log: Path | None) -> Iterator[None]:
    """Ray's own start-up and shutdown messages (token notices, worker warnings) go to the
    sweep's log file, not the user's terminal (file descriptors 1 and 2 redirected)."""
    if log is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log, "ab") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def check_embedded() -> None:
    """An embedded Ray must not join whatever RAY_ADDRESS names (ray.init reads it)."""
    if os.environ.get("RAY_ADDRESS"):
        raise InputError(f"RAY_ADDRESS={os.environ['RAY_ADDRESS']} is set in the environment: "
                         "give it as --address to use that cluster, or unset it for the "
                         "embedded Ray")


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


def connect(opts: RayOptions, log: Path | None = None) -> bool:
    """Start (or join) Ray; True when this call started it (and must shut it down)."""
    hp = parse_address(opts.address) if opts.address else ("127.0.0.1", 0)
    if not opts.address:
        check_embedded()
    if hp is not None and hp[0] in LOOPBACK:  # a head on loopback: this driver joins it there
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
        with to_log(log):
            if opts.address:
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
    log = Path(out) / LOG
    started = connect(opts, log)
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Ctrl-C: KeyboardInterrupt, exit 130
    try:
        threads = max(1, int(opts.threads))
        cpus = int(ray.cluster_resources().get("CPU", 1))
        if threads > cpus:  # a trial that can never be scheduled would wait forever
            raise InputError(f"--threads {threads} > the {cpus} CPUs of the Ray cluster")
        fn = tune.with_parameters(_trainable, problem=problem, seed=int(seed), threads=threads,
                                  known=dict(known or {}))
        fn = tune.with_resources(fn, {"cpu": threads})
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
            with to_log(log):
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
