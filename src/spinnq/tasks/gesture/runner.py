"""`spinnq run gesture`: data -> P-SNN training -> PTQ (percentile chosen on the emulated chip)
-> Q-SNN QAT fine-tuning -> every graph on the emulated SpiNNaker2 over the whole test split
-> energy, latency, memory -> report.json/md/html, all in one run folder.

Stages (accuracy on the test split; drops as in the seed: each chip number against the
network it came from):
  P-SNN float (torch)  ->  PTQ pXX on chip   (drop vs the P-SNN)
  Q-SNN QAT (torch)    ->  QAT on chip       (drop vs the Q-SNN)
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from spinnq import published, settings
from spinnq.config import REALTIME_TICK_S
from spinnq.errors import InputError, RunFolderError, SpinnqError
from spinnq.files import save_npy
from spinnq.graph.model import from_nir, write_graph
from spinnq.graph.simulate import SimConfig, simulate
from spinnq.helpers import progress, seed_everything, set_threads
from spinnq.published import SEED_B_GESTURE
from spinnq.quant.brevitas import brevitas_available, check_integers, export_qat, from_float
from spinnq.quant.calibration import calibrate, population_scales
from spinnq.quant.evaluation import chip_eval
from spinnq.resolver import RunSettings, resolve
from spinnq.s2 import S2Config, compile
from spinnq.s2.energy import LEVEL_NAMES, Cost, energy
from spinnq.s2.published_fit import SEED_NEURONS_PER_PE
from spinnq.tasks.common import RunDir, stopwatch, write_json
from spinnq.tasks.gesture import config as gconf
from spinnq.tasks.gesture.config import GestureConfig
from spinnq.tasks.gesture.data import Frames, dataset_root, real_frames, synthetic_frames
from spinnq.tasks.gesture.model import build_model, n_weights
from spinnq.tasks.gesture.train import accuracy, spike_counts, train

CACHE_DEFAULT = GestureConfig.cache_dir  # ./runs/cache beside the default run folders

# The seed paper's numbers (spinnq.published), shown beside ours, always "published".
PUBLISHED = {**published.SEED_B_ACCURACY, "energy_j": published.PUBLISHED_DVS_GESTURE_J,
             "pes": published.PUBLISHED_DVS_GESTURE_PES, "weights": published.SEED_B_WEIGHTS,
             "steps": published.PUBLISHED_DVS_GESTURE_STEPS}


def load_data(cfg: GestureConfig, quiet: bool = True) -> dict[str, Frames]:
    cache = Path(cfg.cache_dir) if cfg.cache_dir else None
    out = {}
    with progress(disable=quiet) as bar:
        task = bar.add_task("frames", total=3, info="")
        for split, n in (("train", cfg.n_train), ("val", cfg.n_val), ("test", cfg.n_test)):
            if cfg.data_dir:
                out[split] = real_frames(cfg.data_dir, split, cfg.frames, cache, cfg.limit)
            else:
                out[split] = synthetic_frames(split, n, cfg.seed, cfg.frames, cfg.synth, cache)
            if len(out[split]) == 0:
                raise InputError(f"the {split} split is empty")
            bar.update(task, advance=1, info=f"{split}: {len(out[split])}")
    return out


def _config(opts) -> tuple[GestureConfig, RunDir, bool]:
    if opts.resume is not None:
        if opts.out is not None or opts.force:
            raise InputError("--resume continues the run in its own folder; drop --out/--force")
        run = RunDir.open(opts.resume)
        if opts.preset is not None:
            run.release()
            raise InputError("--preset cannot change a resumed run (its config.json holds it)")
        try:
            saved = run.load_config()
            if run.task not in (None, "gesture"):
                raise RunFolderError(f"holds a run of {run.task}, not gesture; continue it with "
                                     f"spinnq run {run.task} --resume {run.path}",
                                     file=str(run.path))
            # --set on a resumed run: e.g. more epochs (training continues from the checkpoint)
            cfg = settings.from_json(GestureConfig, saved, file=str(run.path / "config.json"))
            cfg = settings.validate(settings.apply_sets(cfg, opts.overrides))
        except BaseException:
            run.release()
            raise
        run.task = "gesture"
        run.save_config(cfg)
        return cfg, run, True
    cfg = gconf.with_preset(GestureConfig(seed=opts.seed), opts.preset or "fast")
    if opts.data_dir is not None:
        cfg = dataclasses.replace(cfg, data_dir=str(opts.data_dir))
    if opts.quick:
        cfg = gconf.quick(cfg)
    if opts.steps is not None:
        cfg = dataclasses.replace(cfg, frames=dataclasses.replace(cfg.frames, steps=opts.steps))
    if opts.episodes is not None:
        raise InputError("--episodes is for control tasks; gesture evaluates whole splits")
    cfg = settings.validate(settings.apply_sets(cfg, opts.overrides))
    check_export(cfg)
    if cfg.data_dir is not None:  # a bad --data-dir refused before any folder is made
        dataset_root(cfg.data_dir)
    if cfg.cache_dir == CACHE_DEFAULT and opts.out is not None:  # inside --out, not ./runs/
        cfg = dataclasses.replace(cfg, cache_dir=str(Path(opts.out) / "cache"))
    run = RunDir.create("gesture", opts.out, force=opts.force)
    run.save_config(cfg)
    return cfg, run, False


def check_export(cfg: GestureConfig) -> None:
    """The untrained network exported as the run will export it: settings that make no
    valid graph (a `dt` that underflows every time constant) refused before any folder."""
    from spinnq.errors import GraphError, SettingsError

    try:
        from_nir(build_graph(build_model(cfg.model, "float"),
                             (2, cfg.frames.size, cfg.frames.size), cfg))
    except GraphError as e:
        raise SettingsError(f"setting dt={cfg.dt!r} gives no valid graph ({e})") from None


def _software_check(graph, model, f: Frames, cfg: GestureConfig, n: int = 16) -> dict:
    """The exported NIR on the float reference simulator vs the torch model (same spikes)."""
    x = torch.from_numpy(f.x[:n]).float()
    g = from_nir(graph)
    last = g.predecessors(g.outputs[0])[0]
    tr = simulate(g, x, SimConfig(dt=cfg.dt, reset="subtract", record=(last,)))
    sim_counts = tr.spikes[last].sum(1).reshape(len(x), -1)
    torch_counts = spike_counts(model, Frames(f.x[:n], f.y[:n]))
    return {"samples": len(x), "counts_equal": bool(torch.equal(sim_counts.float(),
                                                                torch_counts.float())),
            "max_count_diff": float((sim_counts.float() - torch_counts.float()).abs().max())}


def chip_settings(graph, cfg: GestureConfig) -> RunSettings:
    """The settings a chip stage runs an exported graph with: the resolver's, from the graph's
    metadata, at the run's tick (and the seed's placement with `placement=seed`), so
    `spinnq evaluate` on the exported NIR with `settings.flags(pricing=True)` runs this chip."""
    rs = resolve(graph, tick_s=cfg.tick_s)
    if cfg.placement == "seed":
        rs = rs.with_(neurons_per_pe_by_population=seed_placement(graph, rs.s2()).neurons_per_pe)
    return rs


def seed_placement(graph, s2: S2Config) -> S2Config:
    """`s2` with the seed paper's 147-PE placement: its neurons per PE for the network's six
    populations (input, three conv, two dense), in order."""
    pops = list(compile(graph, s2).populations)
    if len(pops) != len(SEED_NEURONS_PER_PE):
        raise InputError(f"the seed placement needs the seed network's "
                         f"{len(SEED_NEURONS_PER_PE)} populations; this graph has {len(pops)}")
    return s2.with_(neurons_per_pe=dict(zip(pops, SEED_NEURONS_PER_PE.values(), strict=True)))


def is_seed_workload(cfg: GestureConfig) -> bool:
    """The run does the seed paper's work: its frames, steps and placement, a 1 ms tick."""
    return (cfg.placement == "seed" and cfg.frames.bin_ms == 1.0 and cfg.tick_s == REALTIME_TICK_S
            and cfg.frames.steps == published.PUBLISHED_DVS_GESTURE_STEPS)


def _summary(c: Cost) -> dict:
    return {"energy_j": c.energy_j, "base_j": c.base_j, "dynamic_j": c.dynamic_j,
            "latency_s": c.latency_s, "tick_s": c.tick_s, "realtime": c.realtime,
            "pes": c.pes, "steps": c.steps, "kind": "modelled"}


def _costs(ev, cfg: GestureConfig) -> dict:
    """Modelled cost per gesture at the seed's point (0.8 V, the run's tick) and the cheapest
    of every DVFS level and automatic DVFS at the same tick and at the shortest feasible one."""
    seed_point = energy(ev.placement, ev.run, ev.program, op="0.8V", tick_s=cfg.tick_s)
    options = {f"{op}, tick {cfg.tick_s * 1e3:g} ms": energy(ev.placement, ev.run, ev.program,
                                                             op=op, tick_s=cfg.tick_s)
               for op in (*LEVEL_NAMES, "dvfs") if op != "0.8V"}
    options |= {f"{op}, fastest tick": energy(ev.placement, ev.run, ev.program, op=op)
                for op in (*LEVEL_NAMES, "dvfs")}
    best_name = min(options, key=lambda k: options[k].energy_j)
    return {"seed_point": seed_point, "best_name": best_name, "best": options[best_name],
            "all": {k: _summary(c) for k, c in options.items()}}


def seed_workload_cost(graph, s2: S2Config, cfg: GestureConfig, quiet: bool = True
                       ) -> tuple[Cost, int]:
    """The modelled cost of the seed workload for `graph`: recordings of the test split binned
    like the seed (600 frames of 1 ms), on the seed's 147 PEs, 0.8 V, 1 ms tick; on the first
    `seed_workload_samples` recordings (a subset: the cost is activity, not accuracy)."""
    fcfg = dataclasses.replace(cfg.frames, bin_ms=1.0, steps=published.PUBLISHED_DVS_GESTURE_STEPS)
    n = cfg.seed_workload_samples
    cache = Path(cfg.cache_dir) if cfg.cache_dir else None
    synth = dataclasses.replace(cfg.synth, duration_ms=max(cfg.synth.duration_ms, 600))
    f = (real_frames(cfg.data_dir, "test", fcfg, cache, n) if cfg.data_dir
         else synthetic_frames("test", n, cfg.seed, fcfg, synth, cache)).subset(n)
    ev = chip_eval(graph, f.x, f.y, seed_placement(graph, s2), "count", cfg.chip_batch, quiet,
                   label="seed workload on chip (energy)")
    return energy(ev.placement, ev.run, ev.program, op="0.8V", tick_s=REALTIME_TICK_S), len(f)


def run_task(opts) -> dict:
    """The `spinnq run gesture` runner (see `spinnq.cli.run.RUNNERS`)."""
    t_start = time.perf_counter()
    cfg, run, resume = _config(opts)
    with run.guard("spinnq run gesture"):
        seed_everything(cfg.seed)
        set_threads(cfg.threads)
        timings: dict[str, float] = {}
        try:
            with stopwatch() as t:
                data = load_data(cfg, opts.quiet)
        except SpinnqError:
            if not resume:  # a refused --data-dir leaves no run folder behind
                run.discard()
            raise
        timings["data_s"] = t["s"]
        return _run(opts, cfg, run, resume, t_start, data, timings)


def _run(opts, cfg: GestureConfig, run: RunDir, resume: bool, t_start: float, data: dict,
         timings: dict) -> dict:
    quiet = opts.quiet
    fl = _float_stage(cfg, run, data, resume, quiet, timings)
    ptq = _ptq_stage(cfg, data, fl["graph"], quiet, timings)
    qat = _qat_stage(cfg, run, data, fl["model"], resume, quiet, timings)
    ev_qat = qat["ev"]
    costs = _costs(ev_qat, cfg)
    summary = _summary_of(cfg, data, fl, ptq, qat, costs,
                          _seed_work(cfg, ev_qat, costs, qat["graph"], qat["s2"], quiet))
    timings["total_s"] = time.perf_counter() - t_start
    summary["timings"] = timings
    _write_report(run, cfg, summary, ev_qat, costs, qat["notes"], fl["model"], data)
    summary["run_dir"] = str(run.path)
    return summary


def _float_stage(cfg: GestureConfig, run: RunDir, data, resume: bool, quiet: bool,
                 timings: dict) -> dict:
    """P-SNN: float training, its NIR export and the export's check against torch."""
    model = build_model(cfg.model, "float")
    with stopwatch() as t:
        hist = train(model, data, cfg.train, run, "float", resume, quiet)
    timings["train_float_s"] = t["s"]
    g_float = build_graph(model, (2, cfg.frames.size, cfg.frames.size), cfg)
    write_graph(g_float, run.path / "psnn_float.nir")
    return {"model": model, "hist": hist, "nir": g_float, "graph": from_nir(g_float),
            "accuracy": accuracy(spike_counts(model, data["test"]), data["test"].y),
            "software_check": _software_check(g_float, model, data["test"], cfg)}


def _ptq_stage(cfg: GestureConfig, data, graph_f, quiet: bool, timings: dict) -> dict:
    """PTQ: one global percentile chosen on the validation split on the emulated chip, then
    the test split on chip (and the float graph deployed as it is, max scale)."""
    test, val = data["test"], data["val"]
    rs = chip_settings(graph_f, cfg)
    s2 = rs.s2()
    with stopwatch() as t:
        cal = calibrate(graph_f, (val.x, val.y), percentiles=cfg.percentiles, cfg=s2,
                        batch=cfg.chip_batch, quiet=quiet)
    timings["ptq_sweep_s"] = t["s"]
    mode = next(iter(cal.modes.values()))  # one global choice, as in the seed
    ev = chip_eval(graph_f, test.x, test.y, s2.with_(weight_scale=mode), "count",
                   cfg.chip_batch, quiet, label=f"PTQ {mode} on chip (test)")
    # the float graph deployed as it is (the compiler's default scale: max = 100th pct.)
    asis = ev.accuracy if mode == "max" else chip_eval(
        graph_f, test.x, test.y, s2.with_(weight_scale="max"), "count", cfg.chip_batch, quiet,
        label="float graph as is on chip (test)").accuracy
    return {"s2": s2, "settings": rs.with_(weight_scale=mode), "mode": mode,
            "table": cal.table, "ev": ev, "asis": asis,
            "scales": population_scales(graph_f, s2.with_(weight_scale=mode))}


def _qat_stage(cfg: GestureConfig, run: RunDir, data, model, resume: bool, quiet: bool,
               timings: dict) -> dict:
    """Q-SNN: QAT fine-tuned from the P-SNN (Brevitas, or spinnq's layers without it), its
    integers deployed as they are, on the emulated chip over the test split."""
    layers, notes = cfg.qat_layers, []
    if layers == "brevitas" and not brevitas_available():
        layers = "spinnq"
        notes.append("Brevitas is not installed (pip install 'spinnq[qat]'): QAT used spinnq's "
                     "chip-exact fake-quant layers instead")
    qmodel = from_float(model, build_model(cfg.model, layers))
    with stopwatch() as t:
        hist = train(qmodel, data, cfg.qat, run, "qat", resume, quiet)
    timings["train_qat_s"] = t["s"]
    g_qat = export_qat(qmodel, (2, cfg.frames.size, cfg.frames.size), cfg.dt)
    write_graph(g_qat, run.path / "qsnn_qat.nir")
    graph_q = from_nir(g_qat)
    rsq = chip_settings(graph_q, cfg)  # its w_scale metadata: graph scales, no flag needed
    s2q = rsq.s2()
    test = data["test"]
    ev = chip_eval(graph_q, test.x, test.y, s2q, "count", cfg.chip_batch, quiet,
                   label="QAT on chip (test)")
    return {"layers": layers, "notes": notes, "hist": hist, "graph": graph_q, "s2": s2q,
            "settings": rsq, "ev": ev, "accuracy": accuracy(spike_counts(qmodel, test), test.y),
            "integers": check_integers(qmodel, ev.program, graph_q)}


def _seed_work(cfg: GestureConfig, ev_qat, costs: dict, graph_q, s2q: S2Config,
               quiet: bool) -> dict | None:
    """The modelled energy of the seed's own workload (600 x 1 ms on its 147 PEs) beside the
    published 0.459 J: this run's, or the QAT graph's on a subset re-binned that way."""
    if is_seed_workload(cfg):
        work = {**_summary(costs["seed_point"]), "samples": ev_qat.samples,
                "how": "this run's own workload"}
    elif cfg.seed_workload_samples > 0:
        c, n_seed = seed_workload_cost(graph_q, s2q, cfg, quiet)
        work = {**_summary(c), "samples": n_seed,
                "how": f"the QAT graph on {n_seed} test recordings binned 600 x 1 ms, "
                       "on the seed's 147 PEs (a subset: emulated activity)"}
    else:
        return None
    return work | {"workload": SEED_B_GESTURE, "published_j": PUBLISHED["energy_j"],
                   "error": work["energy_j"] / PUBLISHED["energy_j"] - 1}


def _summary_of(cfg: GestureConfig, data, fl: dict, ptq: dict, qat: dict, costs: dict,
                seed_work: dict | None) -> dict:
    """summary.json: every stage's accuracy, PTQ/QAT details, memory, chip cost, emulator."""
    ev_qat, ev_ptq, seed = qat["ev"], ptq["ev"], costs["seed_point"]
    nw = n_weights(fl["model"])
    chip_steps = ev_qat.run.steps
    return {
        "accuracy": {"psnn_float": fl["accuracy"], "ptq_chip": ev_ptq.accuracy,
                     "float_graph_chip_max_scale": ptq["asis"],
                     "qsnn_qat": qat["accuracy"], "qat_chip": ev_qat.accuracy,
                     "ptq_drop_pt": 100 * (fl["accuracy"] - ev_ptq.accuracy),
                     "qat_drop_pt": 100 * (qat["accuracy"] - ev_qat.accuracy),
                     "kind": "measured (torch); *_chip: emulated (bit-exact chip emulator)"},
        "ptq": {"chosen": ptq["mode"], "sweep_on_val": ptq["table"],
                "populations": ptq["scales"]},
        "qat": {"layers": qat["layers"], "integers_equal_on_chip": qat["integers"]},
        # what each chip stage ran with (`spinnq.resolver`, as `spinnq evaluate` resolves the
        # exported NIR): PTQ on psnn_float.nir, QAT on qsnn_qat.nir
        "settings": {"ptq_chip": ptq["settings"].to_dict(), "qat_chip": qat["settings"].to_dict()},
        "software_check": fl["software_check"],
        "memory": {"weights": nw, "fp32_bytes": 4 * nw, "int8_bytes": nw,
                   "reduction": 1 - nw / (4 * nw), "kind": "measured"},
        "chip": {"pes": ev_qat.placement.pes, "chips": ev_qat.placement.chips,
                 "steps_per_gesture": chip_steps, "input_steps": cfg.frames.steps,
                 "bin_ms": cfg.frames.bin_ms, "depth": ev_qat.program.depth,
                 "energy_j_seed_point": seed.energy_j, "base_j_seed_point": seed.base_j,
                 "dynamic_j_seed_point": seed.dynamic_j,
                 "placement": cfg.placement, "preset": cfg.preset,
                 "latency_s_seed_point": seed.latency_s, "realtime_seed_point": seed.realtime,
                 "best_point": costs["best_name"], "energy_j_best": costs["best"].energy_j,
                 "latency_s_best": costs["best"].latency_s, "operating_points": costs["all"],
                 "kind": "modelled"},
        "emulator": {"samples": ev_qat.samples, "seconds": ev_qat.seconds,
                     "samples_per_s": ev_qat.samples_per_s,
                     "realtime_factor_vs_1ms_tick": ev_qat.samples * chip_steps * cfg.tick_s
                     / ev_qat.seconds, "threads": cfg.threads, "kind": "measured"},
        "seed_workload": seed_work,
        "published": PUBLISHED,
        "data": {"source": cfg.data_dir or "synthetic", **{k: len(v) for k, v in data.items()}},
        "training": {"float": fl["hist"], "qat": qat["hist"]},
    }


def chip_line(settings: dict) -> str:
    """A chip stage's settings line and the flags that make `spinnq evaluate` run it so."""
    rs = RunSettings(**settings)
    return f"ran with {rs.line()} (spinnq evaluate flags: {' '.join(rs.flags(pricing=True))})"


def _baselines(cfg: GestureConfig, model, data, notes: list[str]) -> list:
    """The float P-SNN measured on this CPU, plus the seed's published row."""
    from spinnq.baseline import MeasureConfig, measure, published_rows
    rows: list = published_rows("gesture")
    if not cfg.baseline:
        notes.append("CPU baseline switched off (baseline=false)")
        return rows
    try:
        x1 = torch.from_numpy(data["test"].x[:1]).float()
        rows.insert(0, measure(model, x1, "cpu", MeasureConfig(batch=16, repeats=5, warmup=1,
                                                                energy_s=1.0, idle_s=0.5)))
    except Exception as e:  # a baseline must never sink the run; say why it is missing
        notes.append(f"CPU baseline not measured: {type(e).__name__}: {e}")
    return rows


def _plots(cfg: GestureConfig, rep: dict, ev, costs, run: RunDir) -> dict:
    from spinnq.report import standard_plots
    try:
        spikes = {n: v[0].detach().cpu().numpy() for n, v in ev.run.spikes.items()}
        return standard_plots(rep, cost=costs["seed_point"], placement=ev.placement,
                              spikes=spikes, training_csv=run.path / "float.csv")
    except Exception as e:  # plots are a convenience; the numbers are in report.json
        rep["notes"].append(f"plots skipped: {type(e).__name__}: {e}")
        return {}


def build_graph(model, shape, cfg: GestureConfig):
    from spinnq.nn import to_nir
    return to_nir(model, shape, cfg.dt)


def _write_report(run: RunDir, cfg: GestureConfig, s: dict, ev, costs, notes, model, data
                  ) -> None:
    from spinnq.report import build_report, stage, write_report

    a = s["accuracy"]
    stages = [
        stage("P-SNN float (torch)", "accuracy", a["psnn_float"], drop=0.0),
        stage(f"PTQ {s['ptq']['chosen']} on chip (emulated)", "accuracy", a["ptq_chip"],
              kind="emulated", drop=a["psnn_float"] - a["ptq_chip"]),
        stage("float graph as is on chip (max scale)", "accuracy",
              a["float_graph_chip_max_scale"], kind="emulated", drop=a["psnn_float"]
              - a["float_graph_chip_max_scale"]),
        stage(f"Q-SNN QAT ({s['qat']['layers']}, torch)", "accuracy", a["qsnn_qat"],
              drop=a["psnn_float"] - a["qsnn_qat"]),
        stage("QAT on chip (emulated)", "accuracy", a["qat_chip"], kind="emulated",
              drop=a["qsnn_qat"] - a["qat_chip"]),
        stage("seed P-SNN float", "accuracy", PUBLISHED["float_psnn"], kind="published",
              drop=0.0),
        stage("seed PTQ on chip", "accuracy", PUBLISHED["ptq_chip"], kind="published",
              drop=PUBLISHED["float_psnn"] - PUBLISHED["ptq_chip"]),
        stage("seed Q-SNN QAT", "accuracy", PUBLISHED["float_qsnn"], kind="published",
              drop=PUBLISHED["float_psnn"] - PUBLISHED["float_qsnn"]),
        stage("seed QAT on chip", "accuracy", PUBLISHED["qat_chip"], kind="published",
              drop=PUBLISHED["float_qsnn"] - PUBLISHED["qat_chip"]),
    ]
    baselines = _baselines(cfg, model, data, notes)
    ch = s["chip"]
    notes += [
        f"Data: {s['data']['source']}; {s['data']['train']} train / {s['data']['val']} val / "
        f"{s['data']['test']} test recordings; frames {cfg.frames.size}x{cfg.frames.size}, "
        f"{cfg.frames.steps} bins of {cfg.frames.bin_ms:g} ms (binary spikes).",
        f"The chip runs {ch['steps_per_gesture']} ticks per gesture ({ch['input_steps']} input "
        f"frames + {ch['depth']} of pipeline depth) on {ch['pes']} PEs (preset {cfg.preset}, "
        f"placement {cfg.placement}); each tick consumes one {cfg.frames.bin_ms:g} ms frame "
        f"at a {cfg.tick_s * 1e3:g} ms tick"
        + (" (real time)." if cfg.frames.bin_ms == cfg.tick_s * 1e3 else
           f" ({cfg.frames.bin_ms / (cfg.tick_s * 1e3):g}x faster than real time).")
        + f" Chip energy per gesture (modelled, 0.8 V): {ch['energy_j_seed_point']:.4g} J = "
        f"base {ch['base_j_seed_point']:.4g} J + dynamic {ch['dynamic_j_seed_point']:.4g} J.",
        f"PTQ percentile {s['ptq']['chosen']} chosen on the validation split on the emulated "
        f"chip; thresholds scaled by each population's weight scale.",
        f"QAT integers on chip equal the Q-SNN's own: {s['qat']['integers_equal_on_chip']}.",
        f"PTQ on chip (psnn_float.nir) {chip_line(s['settings']['ptq_chip'])}.",
        f"QAT on chip (qsnn_qat.nir) {chip_line(s['settings']['qat_chip'])}.",
        f"Float NIR on the reference simulator vs torch ({s['software_check']['samples']} "
        f"samples): spike counts equal = {s['software_check']['counts_equal']}.",
        f"Weights: {s['memory']['weights']} ({s['memory']['fp32_bytes']} B fp32 -> "
        f"{s['memory']['int8_bytes']} B int8, -{100 * s['memory']['reduction']:.0f} %).",
        f"Emulator: {s['emulator']['samples_per_s']:.1f} gestures/s on {cfg.threads} threads, "
        f"{s['emulator']['realtime_factor_vs_1ms_tick']:.2f}x real time at a 1 ms tick "
        f"(measured).",
    ]
    sw = s.get("seed_workload")
    if sw:
        notes.append(
            f"Seed workload ({SEED_B_GESTURE}, 0.8 V; {sw['how']}): modelled {sw['energy_j']:.4g}"
            f" J per gesture (base {sw['base_j']:.4g} J + dynamic {sw['dynamic_j']:.4g} J) "
            f"beside the published {sw['published_j']} J ({sw['error']:+.0%}): same network, "
            "placement and ticks; this run's own trained weights and data.")
    if not is_seed_workload(cfg):
        notes.append("This run's own workload differs from the seed paper's: the published "
                     "SpiNNaker2 rows stand as references, without a ratio "
                     "(`spinnq run gesture --preset seed` runs the seed's workload).")
    rep = build_report("gesture", stages, costs["seed_point"], baselines, notes,
                       workload=SEED_B_GESTURE if is_seed_workload(cfg) else
                       f"spinnq gesture run, preset {cfg.preset}",
                       gesture=s, best_operating_point={"name": costs["best_name"],
                                                        **costs["best"].chip_table()})
    plots = _plots(cfg, rep, ev, costs, run) if cfg.plots else {}
    write_report(run.path, rep, plots)
    write_json(run.path / "summary.json", {k: v for k, v in s.items() if k != "training"})
    save_npy(run.path / "test_counts_qat_chip.npy", ev.scores)
