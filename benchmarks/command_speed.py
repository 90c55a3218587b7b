"""Are the commands as fast as the engine they drive? Side by side in one run, on the seed
DVS-gesture network (benchmarks/seed_net.py):

- `spinnq deploy` and `spinnq evaluate` (one-thread processes) against `sq.emulate` in this
  process on the same arrays: marginal CPU time per sample, (t(batch) - t(small)) /
  (batch - small), so start-up, compile and placement (fixed costs) cancel out; also the
  same command in a fresh process timed after its imports (`_work_`: the import time's
  spread on a loaded box is larger than a batch's marginal cost) and run in this process;
- start-up: `spinnq --help` and a usage error (`spinnq deploy --nope`), wall and CPU time;
- `spinnq quantize` (default candidates) against k x one emulation of its calibration data
  plus one compile, all measured here; also run in this process (no interpreter start or
  imports), and next to what it cannot avoid: each candidate's program emulated once and the
  float reference simulated once on the calibration data; at two calibration sizes
  (--calib, --calib-large), so that the marginal cost per calibration sample (the difference
  over the extra samples: start-up, imports and compiles cancel) stands against k x the
  marginal emulation cost, as deploy/evaluate stand against the engine;
- training time per epoch on the seed network: spinnq's trainer (`spinnq_chunked`: the
  sequence in time chunks of about 640 frames, every layer over a chunk's frames at once,
  fused LIF scans carrying the membrane between chunks, channels-last images, uint8 input
  until the first convolution, what the backward pass keeps written into memory the model
  reuses from batch to batch, sum pooling that keeps nothing), the same model layer by
  layer over the whole sequence
  (`spinnq_fused`, `chunk_frames = 0`: the trainer before the time chunks, convolutions 640
  frames a call), stepping each LIF layer under autograd with every frame in one
  convolution call (`spinnq_stepped`: `LIF(fused=False)`, `conv_chunk = 0`, the trainer
  before the fused LIF) and snnTorch (its Leaky neurons, a step at a time, the usual snnTorch
  loop: each convolution on one step's 32 frames) on the same data, threads, loss and
  optimizer; the weights after the epoch are compared with the stepped trainer's (the same
  numbers, not just the same speed). Each contender trains one model object in every round,
  its weights reset to the same start, as the epochs of a training run train one model.

    .venv/bin/python benchmarks/command_speed.py [--rounds 5] [--parts deploy evaluate ...]
    -> benchmarks/results/command_speed.json (README lines: readme_numbers.py readme)
    .venv/bin/python benchmarks/command_speed.py --parts quantize
    -> benchmarks/results/command_speed_quantize.json (the quantize part alone, measured again
       without touching the other parts' file; the README's quantize clause reads it)

`--parts` measures some parts only and merges them into the existing JSON: the other parts'
medians, ratios and provenance (commit, arguments, rounds, load: `parts` in the JSON) stay.

Honest by construction: contenders interleaved in every round, medians over rounds; times are
CPU seconds of one-thread processes (os.wait4's rusage for the commands, process_time here),
so a loaded shared box slows but does not bias them; the load average is recorded per round.
Inputs are 0/1 spikes stored as float32 (the format of the issue that asked for this), 600
steps at 5 % density; data sets are np.savez archives.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # seed_net beside this file
for _k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_k, "1")

import nir  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from provenance import commit  # noqa: E402
from seed_net import seed_network  # noqa: E402

from spinnq.config import PERCENTILES  # noqa: E402

PARTS = ("deploy", "evaluate", "startup", "quantize", "train")
OUT = ROOT / "benchmarks" / "results" / "command_speed.json"
OUT_QUANTIZE = ROOT / "benchmarks" / "results" / "command_speed_quantize.json"
# how the float reference that quantize runs computes (the README says it beside its cost)
FLOAT_REFERENCE_HOW = ("chains of convolutions, pooling and neurons frame by frame in one "
                       "compiled pass (spikes handed on as lists of indices, inner layers not "
                       "written out), dense layers by torch a step at a time, neurons after "
                       "them by compiled scans")


def _checked() -> dict:
    """float_eval's `checked=True` (the data passed `load_data`, as in calibrate), where the
    sources have it."""
    import inspect

    from spinnq.quant.evaluation import float_eval
    return {"checked": True} if "checked" in inspect.signature(float_eval).parameters else {}



def spinnq_argv() -> list[str]:
    exe = Path(sys.executable).with_name("spinnq")
    return [str(exe)] if exe.exists() else [sys.executable, "-c",
                                            "from spinnq.cli import main; main()"]


def child(args: list[str], threads: int = 1, src: Path = ROOT / "src") -> dict:
    """One `spinnq` process (its sources from `src`): its CPU seconds (user + system, from
    wait4) and wall seconds."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(src), *filter(None, [os.environ.get("PYTHONPATH")])]),
        OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
        NUMBA_NUM_THREADS=str(threads), COLUMNS="100")
    t0 = time.perf_counter()
    p = subprocess.Popen([*spinnq_argv(), *args], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    err = p.stderr.read().decode(errors="replace")
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return {"cpu_s": ru.ru_utime + ru.ru_stime, "wall_s": time.perf_counter() - t0,
            "rc": p.returncode, "stderr_tail": err[-300:] if p.returncode not in (0, 2) else ""}


# A fresh `spinnq` process whose clock starts after its imports: the command's own work in a
# new process (fresh memory, the file's pages mapped anew) without the import time, whose
# run-to-run spread (tenths of a second on a loaded box) swamps a batch's marginal cost.
WARM_CHILD = """
import sys, time, resource
import numba, numpy, torch  # noqa: F401  (what every command imports)
import spinnq.cli, spinnq.cli.s2, spinnq.cli.quant, spinnq.s2.events, spinnq.quant.evaluation
spinnq.s2.events.available()
t = time.process_time()
sys.argv = ["spinnq", *sys.argv[2:]]
try:
    spinnq.cli.main()
except SystemExit as e:
    code = e.code or 0
else:
    code = 0
open(OUT, "w").write(repr(time.process_time() - t))
sys.exit(code)
"""


def child_work(args: list[str], out: Path) -> float:
    """CPU seconds of `spinnq ARGS` in a fresh one-thread process, counted after its imports
    (`WARM_CHILD`)."""
    code = WARM_CHILD.replace("OUT", repr(str(out)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]),
        OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1", COLUMNS="100")
    p = subprocess.run([sys.executable, "-c", code, "x", *args], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode:
        raise RuntimeError(f"spinnq {' '.join(args)}: {p.stderr.decode()[-300:]}")
    return float(out.read_text())


def in_process(args: list[str]) -> float:
    """CPU seconds of `spinnq ARGS` run by `spinnq.cli.main` in this process: the command's
    own work without the interpreter's start and imports (a low-noise second figure)."""
    import contextlib
    import io

    from spinnq.cli import main

    argv = sys.argv
    sys.argv = ["spinnq", *args]
    t = time.process_time()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            main()
    except SystemExit as e:
        if e.code:
            raise RuntimeError(f"spinnq {' '.join(args)} exited {e.code}") from None
    finally:
        sys.argv = argv
    return time.process_time() - t


def cpu(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def median(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(np.median(xs)) if xs else None


# ------------------------------------------------------------------------------ set-up
def make_files(tmp: Path, a) -> dict:
    """The seed network and its inputs: X.npy (B, T, 2, 32, 32) float32 0/1 at --small and
    --batch samples, D.npz (x, y) of the same, and the calibration set C.npz."""
    nir.write(tmp / "seed.nir", seed_network(0))
    rng = np.random.default_rng(0)
    files = {"graph": tmp / "seed.nir"}
    for n in sorted({a.small, a.batch, *calib_sizes(a)}):
        x = (rng.random((n, a.steps, 2, 32, 32)) < a.density).astype(np.float32)
        np.save(tmp / f"x{n}.npy", x)
        np.savez(tmp / f"d{n}.npz", x=x, y=rng.integers(0, 11, n))
    return files


def engine(tmp: Path, a) -> dict:
    """`sq.emulate` in this process, with each command's own chip settings, on the arrays
    as the files store them."""
    import spinnq as sq
    from spinnq.graph.meta import run_settings
    from spinnq.quant.settings import configs

    g = sq.read_graph(tmp / "seed.nir")
    st = run_settings(g.metadata, g.source)
    cfgs = {"deploy": sq.S2Config(dt=st["dt"], reset=st["reset"], convention=st["convention"]),
            "evaluate": configs(g)[0]}
    compile_s = cpu(lambda: sq.compile(g, cfgs["evaluate"]))
    progs = {k: sq.compile(g, c) for k, c in cfgs.items()}
    # quantize's candidates: the graph compiled at each default percentile, as calibrate does
    cands = [sq.compile(g, cfgs["evaluate"].with_(weight_scale=m)) for m in PERCENTILES]
    xs = {n: np.load(tmp / f"x{n}.npy") for n in {a.small, a.batch, *calib_sizes(a)}}
    for p in (*progs.values(), *cands):
        sq.emulate(p, xs[a.small][:1])  # numba loads its cache once
    return {"progs": progs, "xs": xs, "compile_s": compile_s, "graph": g, "cands": cands,
            "sim": configs(g)[1], "y": {n: np.load(tmp / f"d{n}.npz")["y"]
                                        for n in calib_sizes(a)}}


def calib_sizes(a) -> tuple[int, ...]:
    """The calibration sizes quantize is measured at (one without --calib-large)."""
    return (a.calib, a.calib_large) if a.calib_large else (a.calib,)


# ------------------------------------------------------------------------------ rounds
def round_commands(tmp: Path, a, eng: dict, warm_up: bool = False) -> dict:
    """One round of every command part, interleaved with the in-process engine (`warm_up`:
    quantize at the small calibration size only)."""
    import spinnq as sq

    r: dict = {}
    g = str(tmp / "seed.nir")
    for part in ("deploy", "evaluate"):
        if part not in a.parts:
            continue
        for n in (a.small, a.batch):
            args = (["deploy", g, "--input", str(tmp / f"x{n}.npy"), "--out",
                     str(tmp / "o.npz")] if part == "deploy" else
                    ["evaluate", g, "--data", str(tmp / f"d{n}.npz")])
            r[f"{part}_cli_{n}"] = child(args)
            r[f"{part}_work_{n}"] = child_work(args, tmp / "work.txt")
            r[f"{part}_inproc_{n}"] = in_process(args)
            r[f"{part}_engine_{n}"] = cpu(lambda p=eng["progs"][part], x=eng["xs"][n]:
                                          sq.emulate(p, x))
    if "startup" in a.parts:
        r["help"] = child(["--help"])
        r["bad_flag"] = child(["deploy", "--nope"])
    if "quantize" in a.parts:
        for n in calib_sizes(a)[:1] if warm_up else calib_sizes(a):
            r |= round_quantize(tmp, a, eng, n)
    return r


def round_quantize(tmp: Path, a, eng: dict, n: int) -> dict:
    """`spinnq quantize` on n calibration samples as a process and in this process, one
    emulation of the calibration data (the default program: the budget's unit), every
    candidate's program emulated once and the float reference simulated once (what quantize
    must run at the least). Keys of the small size are unsuffixed, others end in _N."""
    import spinnq as sq
    from spinnq.quant.evaluation import float_eval

    x = eng["xs"][n]
    args = ["quantize", str(tmp / "seed.nir"), "--data", str(tmp / f"d{n}.npz"),
            "--out", str(tmp / "q.nir")]
    r = {"quantize_cli": child(args)}
    if a.quantize_before:  # the same command from other sources (e.g. before a change)
        r["quantize_cli_before"] = child(args, src=a.quantize_before)
    r["quantize_inproc"] = in_process([*args[:-1], str(tmp / "q2.nir")])
    for f in ("q.nir", "q2.nir"):
        (tmp / f).unlink(missing_ok=True)  # --out must not exist next round
    r["calib_emulation"] = cpu(lambda: sq.emulate(eng["progs"]["evaluate"], x))
    r["candidate_emulations"] = sum(cpu(lambda p=p: sq.emulate(p, x)) for p in eng["cands"])
    r["candidate_emulations_shared"] = shared_emulations(eng["cands"], x)
    r["float_reference"] = cpu(lambda: float_eval(eng["graph"], x, eng["y"][n], eng["sim"],
                                                  **_checked()))
    return r if n == a.calib else {f"{k}_{n}": v for k, v in r.items()}


def shared_emulations(cands: list, x: np.ndarray) -> float:
    """CPU seconds of every candidate emulated on one decoded copy of x (the input checked
    and its spikes listed once, `prepare_input`, as calibrate shares it), decoding included."""
    import spinnq as sq
    from spinnq.s2.emulate import prepare_input

    t = time.process_time()
    prep = prepare_input(x, tuple(cands[0].populations[cands[0].input].shape))
    for p in cands:
        sq.emulate(p, prep)
    return time.process_time() - t


# ----------------------------------------------------------------------------- training
def snntorch_net(model, slope: float):
    """snnTorch's Leaky neurons (beta 0.93, threshold 1, subtract, fast-sigmoid surrogate of
    the same slope) on the spinnq model's own weight layers, stepped the usual way."""
    import snntorch as snn
    from snntorch import surrogate

    from spinnq.nn import LIF

    mods = list(model)
    neurons = {i: snn.Leaky(beta=m.beta, threshold=m.threshold, reset_mechanism="subtract",
                            spike_grad=surrogate.fast_sigmoid(slope=slope))
               for i, m in enumerate(mods) if isinstance(m, LIF)}

    def run(x: torch.Tensor) -> torch.Tensor:
        mems = {i: n.init_leaky() for i, n in neurons.items()}
        out = []
        for t in range(x.shape[1]):
            h = x[:, t]
            for i, m in enumerate(mods):
                if i in neurons:
                    h, mems[i] = neurons[i](h, mems[i])
                else:
                    h = m(h)
            out.append(h)
        return torch.stack(out, 1)

    return run


def train_epoch(run, params, x: np.ndarray, y: np.ndarray, batch: int, raw: bool = False
                ) -> float:
    """One epoch of the gesture trainer's loop (MSE on output spike counts, Adam); `raw`:
    the frames go in as stored (uint8, as spinnq's trainer passes them), else as float32."""
    import torch.nn.functional as F

    from spinnq.tasks.gesture.train import TrainConfig, as_input, count_targets

    cfg = TrainConfig()
    opt = torch.optim.Adam(params, lr=cfg.lr)
    tot = 0.0
    for i in range(0, len(x), batch):
        xb = torch.from_numpy(x[i:i + batch]) if raw else as_input(x[i:i + batch])
        yb = torch.from_numpy(y[i:i + batch])
        counts = run(xb).sum(1)
        loss = F.mse_loss(counts, count_targets(yb, x.shape[1], counts.shape[1], cfg))
        opt.zero_grad()
        loss.backward()
        opt.step()
        tot += loss.item()
    return tot


TRAINERS = ("spinnq_chunked", "spinnq_fused", "spinnq_stepped", "snntorch")


def trainer(name: str):
    """(model, its forward, whether it takes the uint8 frames) of contender `name`, from the
    same initial weights (seed 0)."""
    from spinnq.nn import LIF
    from spinnq.tasks.gesture.model import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig())
    for m in model:
        if isinstance(m, LIF):
            m.fused = name != "spinnq_stepped"
    if name != "spinnq_chunked":  # layer by layer over the whole sequence
        model.chunk_frames = 0
    if name == "spinnq_stepped":  # the trainer before the fused LIF: every frame in one call
        model.conv_chunk = 0
    run = snntorch_net(model, ModelConfig().slope) if name == "snntorch" else model
    return model, run, name == "spinnq_chunked"


BEFORE_EPOCH = """
import os, sys, time
import numpy as np, torch, torch.nn.functional as F
torch.set_num_threads(int(sys.argv[3]))
from spinnq.tasks.gesture.model import ModelConfig, build_model
from spinnq.tasks.gesture.train import TrainConfig, as_input, count_targets
z = np.load(sys.argv[1]); x, y, batch = z["x"], z["y"], int(sys.argv[2])
cfg = TrainConfig()
def epoch(x, y):
    torch.manual_seed(0)
    model = build_model(ModelConfig())
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    for i in range(0, len(x), batch):
        xb, yb = as_input(x[i:i + batch]), torch.from_numpy(y[i:i + batch])
        counts = model(xb).sum(1)
        loss = F.mse_loss(counts, count_targets(yb, x.shape[1], counts.shape[1], cfg))
        opt.zero_grad()
        loss.backward()
        opt.step()
epoch(x[:2, :4], y[:2])  # warm-up: numba's kernels load their cache (not counted)
t = time.process_time()
epoch(x, y)
print(time.process_time() - t)
"""


def before_epoch(a, data_file: Path) -> float:
    """CPU seconds of one epoch of the gesture trainer of the sources in --train-before (its
    own model defaults, float32 frames, the same loop, data, seed and threads), in a process
    of its own that warms up like this one."""
    env = dict(os.environ, PYTHONPATH=str(a.train_before), OMP_NUM_THREADS=str(a.threads),
               MKL_NUM_THREADS=str(a.threads), NUMBA_NUM_THREADS=str(a.threads))
    out = subprocess.run([sys.executable, "-c", BEFORE_EPOCH, str(data_file),
                          str(a.train_batch), str(a.threads)], env=env, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


CONTENDERS: dict[str, tuple] = {}  # name: (model, forward, raw, initial weights)


def contender(name: str) -> tuple:
    """Contender `name`'s model, forward and input kind, its weights reset to the initial
    ones: one model object per contender for the whole run, as the epochs of a training run
    train one model (what a trainer keeps from batch to batch, it keeps from round to
    round), every round from the same start (the same numbers each round)."""
    if name not in CONTENDERS:
        model, run, raw = trainer(name)
        CONTENDERS[name] = (model, run, raw,
                            {k: v.clone() for k, v in model.state_dict().items()})
    model, run, raw, init = CONTENDERS[name]
    model.load_state_dict(init)
    return model, run, raw


def round_train(a, data, before: bool = True) -> dict:
    """One epoch per contender from the same initial weights: CPU seconds, and the largest
    weight difference after the epoch of each spinnq trainer from the stepped one."""
    torch.set_num_threads(a.threads)
    x, y = data
    out, weights = {}, {}
    for name in TRAINERS:
        model, run, raw = contender(name)
        t = time.process_time()
        out[f"train_{name}_loss"] = train_epoch(run, list(model.parameters()), x, y,
                                                a.train_batch, raw)
        out[f"train_{name}_s"] = time.process_time() - t
        weights[name] = [p.detach().clone() for p in model.parameters()]
    for name in ("spinnq_fused", "spinnq_chunked"):
        key = "fused" if name == "spinnq_fused" else "chunked"
        out[f"{key}_vs_stepped_max_weight_diff"] = max(
            float((p - q).abs().max()) for p, q in zip(weights[name], weights["spinnq_stepped"],
                                                       strict=True))
    if a.train_before and before:
        out["train_before_s"] = before_epoch(a, a.train_data_file)
    torch.set_num_threads(1)
    return out


# ------------------------------------------------------------------------------ summary
def summarize(rounds: list[dict], a, eng: dict) -> dict:
    def marg(part: str, kind: str) -> list[float]:
        out = []
        for r in rounds:
            lo, hi = r.get(f"{part}_{kind}_{a.small}"), r.get(f"{part}_{kind}_{a.batch}")
            if lo is None or hi is None:
                continue
            lo, hi = (lo["cpu_s"], hi["cpu_s"]) if kind == "cli" else (lo, hi)
            out.append(1000 * (hi - lo) / (a.batch - a.small))
        return out

    med: dict = {}
    for part in ("deploy", "evaluate"):
        if part in a.parts:
            med[f"{part}_cli_ms_per_sample"] = median(marg(part, "cli"))
            med[f"{part}_engine_ms_per_sample"] = median(marg(part, "engine"))
            med[f"{part}_in_process_ms_per_sample"] = median(marg(part, "inproc"))
            if any(f"{part}_work_{a.small}" in r for r in rounds):
                med[f"{part}_cli_work_ms_per_sample"] = median(marg(part, "work"))
            med[f"{part}_cli_process_cpu_s_batch"] = median(
                r[f"{part}_cli_{a.batch}"]["cpu_s"] for r in rounds)
    for k in ("help", "bad_flag", "quantize_cli", "quantize_cli_before"):
        if rounds and k in rounds[0]:
            med[f"{k}_cpu_s"] = median(r[k]["cpu_s"] for r in rounds)
            med[f"{k}_wall_s"] = median(r[k]["wall_s"] for r in rounds)
    ratios: dict = {}
    for part in ("deploy", "evaluate"):
        c, e = med.get(f"{part}_cli_ms_per_sample"), med.get(f"{part}_engine_ms_per_sample")
        if c is not None and e:
            ratios[f"{part}_cli_over_engine"] = c / e
            ratios[f"{part}_in_process_over_engine"] = med[f"{part}_in_process_ms_per_sample"] / e
            if med.get(f"{part}_cli_work_ms_per_sample") is not None:
                ratios[f"{part}_cli_work_over_engine"] = (
                    med[f"{part}_cli_work_ms_per_sample"] / e)
    if "quantize_cli_cpu_s" in med:
        k = len(PERCENTILES)
        for key in ("calib_emulation", "candidate_emulations", "candidate_emulations_shared",
                    "float_reference", "quantize_inproc"):
            med[f"{key}_cpu_s"] = median(r.get(key) for r in rounds)
        budget = k * med["calib_emulation_cpu_s"] + eng["compile_s"]
        floor = med["candidate_emulations_cpu_s"] + med["float_reference_cpu_s"] + \
            eng["compile_s"]
        med["quantize_budget_cpu_s"] = budget
        med["quantize_floor_cpu_s"] = floor
        med["candidates"] = k
        ratios["quantize_over_k_emulations_plus_compile"] = med["quantize_cli_cpu_s"] / budget
        if "quantize_cli_before_cpu_s" in med:
            ratios["quantize_before_over_k_emulations_plus_compile"] = \
                med["quantize_cli_before_cpu_s"] / budget
        ratios["quantize_in_process_over_k_emulations_plus_compile"] = \
            med["quantize_inproc_cpu_s"] / budget
        ratios["quantize_in_process_over_candidates_float_reference_compile"] = \
            med["quantize_inproc_cpu_s"] / floor
        if a.calib_large:
            quantize_marginal(rounds, a, med, ratios)
    for name in TRAINERS:
        key = f"train_{name}_s"
        if rounds and key in rounds[0]:
            med[f"train_{name}_epoch_s"] = median(r[key] for r in rounds)
    if rounds and "train_before_s" in rounds[0]:
        med["train_before_epoch_s"] = median(r["train_before_s"] for r in rounds)
        ratios["train_before_over_chunked"] = (med["train_before_epoch_s"]
                                               / med["train_spinnq_chunked_epoch_s"])
    if "train_spinnq_chunked_epoch_s" in med:
        c, f = med["train_spinnq_chunked_epoch_s"], med["train_spinnq_fused_epoch_s"]
        ratios["train_fused_over_chunked"] = f / c
        ratios["train_stepped_over_chunked"] = med["train_spinnq_stepped_epoch_s"] / c
        ratios["train_snntorch_over_chunked"] = med["train_snntorch_epoch_s"] / c
        ratios["train_stepped_over_fused"] = med["train_spinnq_stepped_epoch_s"] / f
        ratios["train_snntorch_over_fused"] = med["train_snntorch_epoch_s"] / f
        for k in ("fused", "chunked"):
            med[f"{k}_vs_stepped_max_weight_diff"] = max(
                r[f"{k}_vs_stepped_max_weight_diff"] for r in rounds)
    return {"median": med, "ratios": ratios}


def quantize_marginal(rounds: list[dict], a, med: dict, ratios: dict) -> None:
    """Per extra calibration sample, (t(large) - t(small)) / (large - small) in each round,
    then medians: quantize (process and in process), one emulation, the candidates'
    emulations and the float reference; quantize's marginal cost against k x one emulation's
    (compiles, start-up and imports cancel out)."""
    lo, hi, k = a.calib, a.calib_large, len(PERCENTILES)

    def marg(key: str) -> float | None:
        def val(r, name):
            v = r.get(name)
            return v["cpu_s"] if isinstance(v, dict) else v
        return median(1000 * (val(r, f"{key}_{hi}") - val(r, key)) / (hi - lo)
                      for r in rounds if f"{key}_{hi}" in r)

    for key in ("quantize_cli", "quantize_inproc", "calib_emulation", "candidate_emulations",
                "candidate_emulations_shared", "float_reference"):
        med[f"{key}_ms_per_calib_sample"] = marg(key)
    for key in ("quantize_cli", "quantize_inproc", "calib_emulation", "candidate_emulations",
                "float_reference"):
        med[f"{key}_cpu_s_{hi}"] = median(
            (r[f"{key}_{hi}"]["cpu_s"] if key == "quantize_cli" else r[f"{key}_{hi}"])
            for r in rounds)
    unit = med["calib_emulation_ms_per_calib_sample"]
    ratios["quantize_marginal_over_k_emulations"] = \
        med["quantize_cli_ms_per_calib_sample"] / (k * unit)
    ratios["quantize_in_process_marginal_over_k_emulations"] = \
        med["quantize_inproc_ms_per_calib_sample"] / (k * unit)
    ratios["float_reference_marginal_over_one_emulation"] = \
        med["float_reference_ms_per_calib_sample"] / unit
    if med["candidate_emulations_shared_ms_per_calib_sample"] is not None:
        # what sharing one decoded input saves: the k candidates' runs on it (decoding once
        # included) against k separate emulations (the unit's definition is unchanged)
        ratios["candidate_emulations_shared_marginal_over_k_emulations"] = \
            med["candidate_emulations_shared_ms_per_calib_sample"] / (k * unit)
    budget = k * med[f"calib_emulation_cpu_s_{hi}"] + med["quantize_budget_cpu_s"] - \
        k * med["calib_emulation_cpu_s"]  # k emulations of the large set plus one compile
    med[f"quantize_budget_cpu_s_{hi}"] = budget
    ratios[f"quantize_over_k_emulations_plus_compile_{hi}"] = \
        med[f"quantize_cli_cpu_s_{hi}"] / budget
    ratios[f"quantize_in_process_over_k_emulations_plus_compile_{hi}"] = \
        med[f"quantize_inproc_cpu_s_{hi}"] / budget


def part_of(key: str) -> str:
    """Which part a round's or a median's key belongs to."""
    for prefix, part in (("deploy", "deploy"), ("evaluate", "evaluate"), ("help", "startup"),
                         ("bad_flag", "startup"), ("quantize", "quantize"),
                         ("calib", "quantize"), ("candidate", "quantize"),
                         ("float_reference", "quantize"),
                         ("train", "train"), ("fused", "train"), ("chunked", "train")):
        if key.startswith(prefix):
            return part
    raise KeyError(key)


def provenance(res: dict) -> dict:
    """{part: commit, arguments, rounds and load} of a results JSON (one written before
    `parts` existed: its top-level fields, for every part it measured)."""
    if "parts" in res:
        return res["parts"]
    measured = res["args"]["parts"]
    return {p: {"commit": res["commit"], "args": res["args"],
                "load_average": res["machine"]["load_average"],
                "rounds": [{k: v for k, v in r.items() if part_of(k) == p}
                           for r in res["rounds"]]} for p in measured}


def merge(old: dict, new: dict, parts: list[str]) -> dict:
    """`new` (these `parts` measured) over `old`: every other part's medians, ratios and
    provenance kept as they were."""
    def keep(d: dict) -> dict:
        return {k: v for k, v in d.items() if part_of(k) not in parts}

    out = dict(new)
    out["parts"] = {p: v for p, v in provenance(old).items() if p not in parts} | new["parts"]
    out["median"] = keep(old["median"]) | new["median"]
    out["ratios"] = keep(old["ratios"]) | new["ratios"]
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    ap.add_argument("--small", type=int, default=4)
    ap.add_argument("--batch", type=int, default=36)
    ap.add_argument("--calib", type=int, default=16, help="quantize: calibration samples")
    ap.add_argument("--calib-large", type=int, default=128, help="quantize: also this many "
                    "calibration samples, for the marginal cost per sample (0: only --calib)")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--train-samples", type=int, default=64)
    ap.add_argument("--train-steps", type=int, default=600)
    ap.add_argument("--train-batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="training threads")
    ap.add_argument("--quantize-before", type=Path, default=None, help="quantize: also run "
                    "the command from this src/ folder (a checkout before a change), "
                    "interleaved")
    ap.add_argument("--quantize-before-label", default="other sources", help="what those "
                    "sources are, for the README (e.g. 'commit 2b9112a, before this work')")
    ap.add_argument("--train-before", type=Path, default=None, help="train: also time an "
                    "epoch of the trainer in this src/ folder (a checkout before a change), "
                    "in a process of its own, interleaved")
    ap.add_argument("--train-before-label", default="other sources", help="what those "
                    "sources are, for the README")
    ap.add_argument("--out", type=Path, default=None, help="default: command_speed.json, "
                    "command_speed_quantize.json for --parts quantize alone")
    a = ap.parse_args(argv)
    if a.out is None:
        a.out = OUT_QUANTIZE if a.parts == ["quantize"] else OUT
    torch.set_num_threads(1)
    rounds, loads = [], []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        eng: dict = {"compile_s": None}
        if {"deploy", "evaluate", "quantize"} & set(a.parts):  # the engine and its files
            make_files(tmp, a)
            eng = engine(tmp, a)
        round_commands(tmp, a, eng, warm_up=True)  # numba caches, page cache (not counted)
        rng = np.random.default_rng(1)
        data = ((rng.random((a.train_samples, a.train_steps, 2, 32, 32)) < a.density
                 ).astype(np.uint8), rng.integers(0, 11, a.train_samples))
        a.train_data_file = tmp / "train.npz"
        if a.train_before:
            np.savez(a.train_data_file, x=data[0], y=data[1])
        if "train" in a.parts:  # warm-up: numba's LIF kernels load their cache (not counted)
            round_train(a, (data[0][:2, :4], data[1][:2]), before=False)
        for i in range(a.rounds):
            before = os.getloadavg()
            r = round_commands(tmp, a, eng)
            if "train" in a.parts:
                r |= round_train(a, data)
            rounds.append(r)
            loads.append({"before": before, "after": os.getloadavg()})
            print(f"round {i + 1}/{a.rounds}: load {loads[-1]['after'][0]:.1f}",
                  file=sys.stderr)
    res = {"benchmark": "command_speed", "commit": commit(), "args": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()
        if k != "train_data_file"},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "torch": torch.__version__, "load_average": loads},
        "compile_cpu_s": eng["compile_s"], "timing": "CPU seconds of one-thread processes "
        "(commands: os.wait4 rusage; engine, training, the in-process quantize, its "
        "candidates' emulations and float reference: time.process_time in this process); "
        "medians over interleaved rounds", "rounds": rounds}
    res |= summarize(rounds, a, eng)
    if "quantize" in a.parts:
        res["float_reference"] = FLOAT_REFERENCE_HOW
    res["parts"] = {p: {"commit": res["commit"], "args": res["args"], "load_average": loads,
                        "rounds": [{k: v for k, v in r.items() if part_of(k) == p}
                                   for r in rounds]} for p in a.parts}
    if set(a.parts) != set(PARTS) and a.out.exists():
        res = merge(json.loads(a.out.read_text()), res, a.parts)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({"median": res["median"], "ratios": res["ratios"]}, indent=1))
    return res


if __name__ == "__main__":
    main()
