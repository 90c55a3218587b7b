"""README figures from what the current code measures, never typed by hand.

Two steps, so the expensive one runs once and the README can be regenerated any time:

    # 1. run `spinnq run TASK` on defaults for each seed (cartpole = the `make demo` run)
    .venv/bin/python benchmarks/readme_numbers.py measure [--task cartpole] --seeds 0 1 2
    -> benchmarks/results/readme_<task>.json  (per seed: chip/float return or accuracy,
       PEs, modelled energy, wall time; the code's git commit)

    # 2. rewrite the README sections between <!-- readme:NAME --> and <!-- /readme:NAME -->
    .venv/bin/python benchmarks/readme_numbers.py readme [--check]

`readme --check` exits 1 when the README differs from what the JSON gives (a test runs it).
A seed missing from the JSON is left out of the sentence rather than invented.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import commit  # noqa: E402

TASKS = ("cartpole", "acrobot", "gesture")


def results(task: str) -> Path:
    return ROOT / "benchmarks" / "results" / f"readme_{task}.json"
README = ROOT / "README.md"


def measure_gesture(seed: int) -> dict:
    """One default `spinnq run gesture --seed SEED` (synthetic recordings)."""
    from spinnq.cli.run import RunOptions
    from spinnq.tasks.gesture.runner import run_task

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        s = run_task(RunOptions("gesture", seed, out=Path(tmp) / "run", quiet=True,
                                overrides={"cache_dir": ""}))
        wall = time.perf_counter() - t0
    a = s["accuracy"]
    return {"seed": seed, "psnn_float": a["psnn_float"], "ptq_chip": a["ptq_chip"],
            "ptq_chosen": s["ptq"]["chosen"], "qsnn_qat": a["qsnn_qat"],
            "qat_chip": a["qat_chip"], "qat_layers": s["qat"]["layers"],
            "integers_equal": s["qat"]["integers_equal_on_chip"].get("equal"),
            "weights": s["memory"]["weights"], "fp32_bytes": s["memory"]["fp32_bytes"],
            "int8_bytes": s["memory"]["int8_bytes"], "pes": s["chip"]["pes"],
            "data": s["data"], "wall_s": wall, "load_average_after": os.getloadavg()[0]}


def measure_seed(seed: int, task: str = "cartpole") -> dict:
    """One default `spinnq run TASK --seed SEED` (cartpole seed 0 = what `make demo` runs)."""
    if task == "gesture":
        return measure_gesture(seed)
    from spinnq.tasks.control.run import default_config, run_control

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rep = run_control(default_config(task, seed=seed), out=Path(tmp) / "run",
                          quiet=True)
        wall = time.perf_counter() - t0
    by = {s["name"]: s for s in rep["stages"]}
    chip = rep.get("chip") or {}
    return {"seed": seed, "chip_mean_return": by["chip"]["mean_return"],
            "float_mean_return": by["float"]["mean_return"],
            "episodes": by["chip"]["episodes"], "pes": chip.get("pes"),
            "chip_steps_per_decision": chip.get("timesteps"),
            "energy_j_per_decision": chip.get("energy_j"),
            "operating_point": chip.get("operating_point"), "tick_s": chip.get("tick_s"),
            "wall_s": wall, "load_average_after": os.getloadavg()[0]}


def measure(seeds: list[int], task: str = "cartpole") -> dict:
    out = results(task)
    old = json.loads(out.read_text()) if out.exists() else {}
    rows = {r["seed"]: r for r in old.get("seeds", [])}
    for s in seeds:
        rows[s] = measure_seed(s, task)
        print(f"{task} seed {s}: {rows[s]}", flush=True)
        data = {"benchmark": f"readme_{task}", "command": f"spinnq run {task} --seed SEED",
                "commit": commit(), "machine": {"platform": platform.platform(),
                                                 "cpus": os.cpu_count()},
                "kinds": {"returns": "measured (closed loop; chip = emulated SpiNNaker2)",
                          "energy": "modelled", "wall": "measured (shared box)"},
                "seeds": [rows[k] for k in sorted(rows)]}
        out.write_text(json.dumps(data, indent=2) + "\n")
    return data


def _pct(v: float) -> str:
    return f"{100 * v:.2f} %"


def _minsec(s: float) -> str:
    m, sec = divmod(round(s), 60)
    return f"{m} min {sec} s" if m else f"{sec} s"


def cartpole_section(data: dict) -> str:
    """The README sentence about `make demo`, from the JSON."""
    rows = data["seeds"]
    seeds = "/".join(str(r["seed"]) for r in rows)
    chip = " / ".join(f"{r['chip_mean_return']:.1f}" for r in rows)
    flt = " / ".join(f"{r['float_mean_return']:.1f}" for r in rows)
    walls = [r["wall_s"] for r in rows]
    r0 = rows[0]
    text = (f"Seeds {seeds}: on-chip (emulated) mean return {chip} (float {flt}) over "
            f"{r0['episodes']} episodes; {_minsec(min(walls))} to {_minsec(max(walls))} wall "
            f"on the shared 2-core box (measured, commit {data['commit']}). {r0['pes']} PEs, "
            f"{r0['chip_steps_per_decision']} chip steps per decision")
    # the chip's energy per decision (base + dynamic, modelled) is in each run's report: the
    # energy model changes more often than these runs are repeated
    return text + (" (the chip's modelled energy per decision: each run's report). "
                   "Regenerate: `benchmarks/readme_numbers.py measure` then `readme`.")


def acrobot_section(data: dict) -> str:
    rows = data["seeds"]
    chip = " / ".join(f"{r['chip_mean_return']:.1f}" for r in rows)
    flt = " / ".join(f"{r['float_mean_return']:.1f}" for r in rows)
    seeds = "/".join(str(r["seed"]) for r in rows)
    return (f"Seed{'s' if len(rows) > 1 else ''} {seeds}: on-chip (emulated) mean return {chip} "
            f"(float {flt}) over {rows[0]['episodes']} episodes; "
            f"{_minsec(max(r['wall_s'] for r in rows))} wall on the shared 2-core box, load "
            f"average {max(r['load_average_after'] for r in rows):.0f} at the end (measured, "
            f"commit {data['commit']}).")


def gesture_section(data: dict) -> str:
    r = data["seeds"][0]
    d = r["data"]
    return (f"Seed {r['seed']}, {d['source']} data ({d['train']} / {d['val']} / {d['test']} "
            f"recordings): P-SNN float {_pct(r['psnn_float'])}, PTQ ({r['ptq_chosen']}) on chip "
            f"{_pct(r['ptq_chip'])}, {r['qat_layers']} QAT {_pct(r['qsnn_qat'])}, QAT on chip "
            f"{_pct(r['qat_chip'])} (chip = emulated; chip integers equal the QAT network's: "
            f"{'yes' if r['integers_equal'] else 'no'}); weights {r['fp32_bytes']:,} B fp32 -> "
            f"{r['int8_bytes']:,} B int8; {r['pes']} PEs; {_minsec(r['wall_s'])} wall on the "
            f"shared 2-core box, load average {r['load_average_after']:.0f} at the end (measured, "
            f"commit {data['commit']}).")


def gesture_4bit_section(d: dict) -> str:
    """`benchmarks/gesture_4bit.py`: `spinnq quantize --finetune` (defaults, then the
    variants tried) on the fast preset's exported float graph and splits, and the task's own
    stages at bits=4 when its run is in the JSON."""
    c = d["command"]
    cmds = []
    for v in c["variants"]:
        got = "PTQ kept" if not v["kept"] else f"epoch {v['best_epoch']} kept"
        ws = v["won_back_share"]
        cmds.append(f"{' '.join(v['flags']) or 'default options'}: {_pct(v['qat4_test'])} "
                    f"({got} on val" + ("" if ws is None else f"; {100 * ws:.0f} % of the drop "
                                        "won back") + ")")
    where = ("the run's exported float graph and splits" if c["same_float_graph_as_task"]
             else "the float graph an earlier run of the same preset and seed exported (its "
             "trainer before the time-chunk change) and the run's splits (the same files, by "
             "hash)" if c["same_splits_as_task"] else "another run's float graph and splits")
    text = (f"Seed {d['seed']}, preset {d['preset']} ({d['steps']} frames), synthetic data "
            f"({d['data']['train']} / {d['data']['val']} / {d['data']['test']} recordings); the "
            f"command on {where}: `spinnq quantize psnn_float.nir --data "
            "val.npz --bits 4 --finetune train.npz --val val.npz`, then `spinnq evaluate "
            f"--data test.npz` once per graph: float reference {_pct(c['float_test'])}, PTQ-4 "
            f"on chip {_pct(c['ptq4_test'])} (-{c['ptq4_drop_pt']:.2f} pt); fine-tuned on "
            "chip, " + "; ".join(cmds) + " (chip = emulated, float = the float reference "
            f"simulator; measured, commit {d['commit']}).")
    t = d.get("task")
    if t is None:
        return text + (" The task's own run (`spinnq run gesture --set bits=4`) is not in "
                       "this JSON yet.")
    f = t["psnn_float"]

    def row(name: str, v: float) -> str:
        return f"| {name} | {_pct(v)} | {100 * (f - v):+.2f} pt |"

    kept = (f"epoch {t['qat4_best_epoch']} kept" if t["qat4_kept"] else "PTQ-4 kept")
    lines = ["| stage of `spinnq run gesture --set bits=4` (test split, once) | accuracy | float "
             "minus stage |", "| --- | --- | --- |", row("P-SNN float (torch)", f),
             row(f"PTQ-8 ({t['ptq8_chosen']}) on chip", t["ptq8_chip"]),
             row(f"QAT-8 ({t['qat8_layers']}) on chip", t["qat8_chip"]),
             row(f"PTQ-4 ({t['ptq4_chosen']}) on chip", t["ptq4_chip"]),
             row(f"QAT-4 on chip (fine-tuned on the chip's 4-bit arithmetic, {kept} on val)",
                 t["qat4_chip"])]
    m = t["memory"]
    return ("\n".join(lines) + f"\n\nWeights {m['int4_bytes']:,} B int4 "
            f"(-{100 * m['reduction_int4']:.1f} % against fp32); the run took "
            f"{_minsec(t['wall_s'])} wall, {_minsec(t['cpu_s'])} CPU on the shared 2-core box "
            f"(load average {t['load_average_after']:.0f} at the end). " + text)


def _seed_time(m: dict) -> str:
    """The run's wall and CPU time (measured.json, GNU time) with the machine's load."""
    ld, prev = m["load_average_1min"], m.get("previous")
    text = (f"{_minsec(m['wall_s'])} wall, {_minsec(m['cpu_s'])} CPU on the shared "
            f"{m['machine']['cpus']}-core box, one torch thread, commit {m['commit']} (load "
            f"average {ld['min']:.1f}-{ld['max']:.1f} while it ran: other jobs beside it, so "
            "the CPU time is the comparable figure")
    if prev:
        text += (f"; the run it replaces, commit {prev['commit'] or 'unrecorded'}: "
                 f"{_minsec(prev['wall_s'])} wall, " + (
                     "CPU time not recorded" if prev.get("cpu_s") is None else
                     f"{_minsec(prev['cpu_s'])} CPU (load average "
                     f"{prev['load_average_1min']['min']:.1f}-"
                     f"{prev['load_average_1min']['max']:.1f})"))
    return text + ")"


def _seed_energy(c: dict, pub: dict, cal: dict, rp: dict) -> str:
    """The run's chip energy on the basis of the Energy section's seed DVS row (total with
    the unused PEs off, 0.8 V, 1 ms tick; benchmarks/energy_calibration.py), its range, the
    published figure and what `spinnq energy` gives on the stored graph."""
    row = next(r for r in cal["points"] if r["point"] == "seed DVS gesture")
    lo, hi, p = c["energy_low_j"], c["energy_high_j"], pub["energy_j"]
    inside = "inside" if lo <= p <= hi else "outside"
    e = rp["energy"]
    return (f"chip energy per gesture {c['energy_j']:.3f} J modelled ({lo:.3f}-{hi:.3f}: "
            f"every constant at the low / high end of its sourced range; base "
            f"{c['base_j']:.3f} + dynamic {c['dynamic_j']:.3f} ({c['dynamic_low_j']:.3f}-"
            f"{c['dynamic_high_j']:.3f})) on the basis of the Energy section's seed DVS row "
            f"({row['basis']}, {c['operating_point']}, {c['timesteps']} ticks of "
            f"{c['tick_s'] * 1e3:g} ms, {c['pes']} PEs), beside the published {p} J "
            f"({100 * (c['energy_j'] / p - 1):+.0f} %, the published figure {inside} the "
            f"range); that row prices the same workload at assumed activity "
            f"({1e3 * row['model_j']:.1f} mJ), this run at its emulated activity (its own "
            f"trained weights and data). `spinnq energy` on the stored QAT graph and the run's "
            f"test split, with the settings the run recorded, gives {e['energy_j']:.3f} J "
            f"({e['energy_low_j']:.3f}-{e['energy_high_j']:.3f}; largest relative difference "
            f"to the run's figures {rp['max_rel_diff_energy']:.2g}; the command in "
            "`reprice.json`)")


def gesture_seed_section(d: dict, rep: dict, m: dict, rp: dict, cal: dict) -> str:
    """The full `--preset seed` run (benchmarks/results/gesture_seed_preset/: summary.json,
    report.json, measured.json and reprice.json from benchmarks/gesture_seed_preset.py),
    its energy set beside benchmarks/results/energy_calibration.json's seed DVS row."""
    a, pub, n = d["accuracy"], d["published"], d["data"]
    return (f"`spinnq run gesture --preset seed` (the seed's 600 frames of 1 ms on its "
            f"{rep['chip']['pes']} PEs; {n['source']} data, {n['train']} / {n['val']} / "
            f"{n['test']} recordings; {_seed_time(m)}): P-SNN float "
            f"{_pct(a['psnn_float'])}, PTQ on chip {_pct(a['ptq_chip'])}, QAT "
            f"{_pct(a['qsnn_qat'])}, QAT on chip {_pct(a['qat_chip'])} (measured / emulated; "
            f"the paper, on DVS128 Gesture: {_pct(pub['float_psnn'])} / "
            f"{_pct(pub['ptq_chip'])} / {_pct(pub['float_qsnn'])} / {_pct(pub['qat_chip'])}); "
            f"{_seed_energy(rep['chip'], pub, cal, rp)}. Files: "
            "`benchmarks/results/gesture_seed_preset/` (regenerate: "
            "`benchmarks/gesture_seed_preset.py`).")


def emulator_section(d: dict, th: dict, ba: dict) -> str:
    """benchmarks/emulator_speed.py: the event engine against the one-core limit and its
    peers (`d`), 1 vs 2 threads alone (`th`, the same script with only the engine), and
    benchmarks/engine_before_after.py against an earlier revision (`ba`)."""
    r, lim = d["ratios"], d["one_core_limit"]
    loads = [x["after"][0] for x in d["machine"]["load_average"]]
    peers = [(name, r.get(f"{key}_1t_over_events_1t")) for name, key in
             (("snnTorch", "snntorch"), ("the float reference", "reference"),
              ("the torch engine", "torch_engine"))]
    peers = [(n, v) for n, v in peers if v is not None]
    text = (f"`benchmarks/emulator_speed.py` (seed DVS network, {d['steps']} steps, "
            f"{100 * d['density']:.0f} % input; medians of {d['rounds']} interleaved rounds of "
            f"the marginal time per sample, load average {min(loads):.1f}-{max(loads):.1f} on "
            f"{d['machine']['cpus']} cores): the event engine takes "
            f"{d['events_1t']['marginal_ms_per_sample']:.1f} ms per sample on one thread "
            f"({r['events_1t_vs_chip_realtime']:.0f}x faster than the chip's real time), "
            f"{r['events_1t_over_one_core_limit']:.2f}x the one-core limit measured in the same "
            f"run ({lim['ms_per_sample']:.1f} ms with the fastest add loop; "
            f"{r['events_1t_over_engine_loop_limit']:.2f}x the "
            f"{lim['engine_loop_ms_per_sample']:.1f} ms of the engine's own add loop)")
    if peers:
        text += (", and is " + " / ".join(f"{v:.1f}x" for _, v in peers) + " faster than "
                 + " / ".join(n for n, _ in peers) + " on one thread")
    def ceiling(rt: dict) -> str:  # the machine's own 2-thread gain, when the run measured it
        c = rt.get("two_thread_ceiling")
        return f" (the machine's own 2-thread gain on such work in the same rounds: {c:.2f}x)" \
            if c is not None else ""

    if "events_2t_speedup_over_1t" in r:
        text += (f"; 2 threads: {r['events_2t_speedup_over_1t']:.2f}x one thread in that run"
                 + ceiling(r))
    tl = [x["after"][0] for x in th["machine"]["load_average"]]
    m = ba["marginal_ms_per_sample"]
    return text + (f", {th['ratios']['events_2t_speedup_over_1t']:.2f}x in a run of the engine "
                   f"alone ({th['rounds']} rounds, batch {th['batch']}, load average "
                   f"{min(tl):.1f}-{max(tl):.1f}){ceiling(th['ratios'])}. "
                   "`benchmarks/engine_before_after.py`: one "
                   f"thread {ba['speedup']['1t']:.1f}x faster than the engine of "
                   f"{ba['before_rev']} ({m['before_1t']:.1f} -> {m['after_1t']:.1f} ms per "
                   "sample) (measured).")


def brian2_section(d: dict) -> str:
    """benchmarks/brian2_contender.py: Brian2 cpp_standalone on the same integer program."""
    m = d["median"]
    loads = [x[0] for x in d["load_average_per_round"]]
    return (f"`benchmarks/brian2_contender.py` (Brian2 cpp_standalone, the engine of "
            f"py-spinnaker2's software backend, running the same integer program; equal spike "
            f"counts in every population, checked): its simulation loop takes "
            f"{m['brian2_loop_ms']:.0f} ms per sample ({m['brian2_run_ms']:.0f} ms for the whole "
            f"binary with its synapse set-up), {d['brian2_loop_over_events']:.0f}x the event "
            f"engine's time in the same rounds ({d['median']['events_ms']:.1f} ms; "
            f"{len(loads)} rounds, load average {min(loads):.0f}-{max(loads):.0f} while Brian2 "
            "compiled beside it) (measured).")


def scaling_section(dense_1m: dict, big: dict, small: dict) -> str:
    """benchmarks/scaling.py: deploy time and peak memory of large generated networks."""
    d = dense_1m["runs"][0]
    cli = d["deploy_cli"]
    peak = {(x["kind"], x["n"]): x.get("deploy_cli", {}).get("peak_mb",
                                                             x["peak"]["process_mb"])
            for x in small["runs"] + big["runs"]}
    gb = lambda mb: f"{mb / 1024:.1f} GB"  # noqa: E731
    return (f"`benchmarks/scaling.py`: `spinnq deploy` of a {d['neurons'] / 1e6:.0f}M-neuron "
            f"dense network ({d['synapses'] / 1e6:.0f} M synapses, gzip .nir, {d['pes']:,} PEs "
            f"on {d['chips']} chips) takes {cli['wall_s']:.1f} s and peaks at "
            f"{gb(cli['peak_mb'])}; 10M neurons (1 G synapses) peak at "
            f"{gb(peak[('dense', 10_000_000)])}; conv networks of 1M / 10M neurons at "
            f"{gb(peak[('conv', 1_000_000)])} / {gb(peak[('conv', 10_000_000)])} (measured). "
            "Weights stay int8 from the quantizer to the emulator.")


def rl_vs_sb3_section(*runs: dict) -> str:
    """benchmarks/rl_vs_sb3.py: environment steps to a CartPole mean return of 475."""
    rows = sorted((r for d in runs for r in d["results"]), key=lambda r: r["seed"])
    ours = [r["spinnq"]["steps_to_475"] for r in rows]
    sb3 = [r["sb3"]["steps_to_475"] for r in rows]
    k = lambda v: f"{v / 1000:.1f}k"  # noqa: E731
    return (f"`benchmarks/rl_vs_sb3.py` (seeds {', '.join(str(r['seed']) for r in rows)}): "
            f"the spiking DQN reaches a mean return of {runs[0]['threshold']:.0f} in "
            f"{k(min(ours))}-{k(max(ours))} environment steps vs SB3 DQN's "
            f"{k(min(sb3))}-{k(max(sb3))} (rl-zoo hyperparameters; measured).")


def _steps_gap(rows: list[dict], k) -> str:
    """Per environment, the spiking DQN's median steps to threshold against SB3's (a run that
    never reached it counts as its budget, so 'never' is never the better median)."""
    def med(agent: str, env: str) -> float | None:
        v = [r[agent]["steps_to_threshold"] or r[agent].get("budget", float("inf"))
             for r in rows if r["env"] == env and agent in r]
        return float(statistics.median(v)) if v else None

    parts = []
    for env in dict.fromkeys(r["env"] for r in rows):
        o, b = med("spinnq", env), med("sb3", env)
        if o is None or b is None:
            continue
        verdict = "no worse" if o <= b else f"{k(o - b)} more"
        parts.append(f"{env} {k(o)} vs {k(b)} ({verdict})")
    return ("Median steps to threshold, spinnq vs SB3: " + "; ".join(parts) + ". ") \
        if parts else ""


# Issue 26's targets for the chip's mean return over seeds (each seed: 100 test episodes):
# (what, threshold from the SB3 mean over the same seeds or None for a fixed one, value)
RL_TARGETS = {"cartpole": ("every seed >= 475", None, 475.0),
              "acrobot": ("mean >= SB3's mean - 2", "sb3", -2.0),
              "mountaincar": ("mean >= -110", None, -110.0),
              "lunarlander": ("mean >= 200", None, 200.0)}


def rl_targets(rows: list[dict]) -> list[dict]:
    """Per environment, the chip's mean return over the seeds measured against its target
    (`RL_TARGETS`); SB3-relative targets use SB3's mean over the same rows."""
    out = []
    for env in dict.fromkeys(r["env"] for r in rows):
        if env not in RL_TARGETS:
            continue
        what, rel, value = RL_TARGETS[env]
        both = [r for r in rows if r["env"] == env and "spinnq" in r
                and (rel is None or rel in r)]
        if not both:
            continue
        chip = [r["spinnq"]["chip_test_mean"] for r in both]
        line = value if rel is None else statistics.fmean(
            r[rel]["test_mean"] for r in both) + value
        got = min(chip) if env == "cartpole" else statistics.fmean(chip)
        out.append({"env": env, "target": what, "seeds": [r["seed"] for r in both],
                    "chip": got, "line": line, "met": got >= line})
    return out


def targets_text(rows: list[dict]) -> str:
    parts = [f"{t['env']} ({t['target']}, seeds {', '.join(map(str, t['seeds']))}): "
             f"{'lowest' if t['env'] == 'cartpole' else 'mean'} {t['chip']:.1f} against "
             f"{t['line']:.1f}, " + ("met" if t["met"] else
                                     f"missed by {t['line'] - t['chip']:.1f}")
             for t in rl_targets(rows)]
    return ("Targets on the emulated chip: " + "; ".join(parts) + ". ") if parts else ""


def rl_vs_sb3_envs_section(d: dict) -> str:
    """benchmarks/rl_vs_sb3.py on the four control tasks: one table row per (env, seed)."""
    k = lambda v: "never" if v is None else f"{v / 1000:.1f}k"  # noqa: E731
    lines = ["| env | seed | spinnq float | spinnq chip | SB3 DQN | steps to threshold "
             "spinnq / SB3 | train wall spinnq / SB3 | chip per decision (1 ms tick) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in d["results"]:
        o, b = r.get("spinnq"), r.get("sb3")
        c = o["chip_per_decision"] if o else None
        load = r.get("load_avg_1min_after")
        lines.append(
            f"| {r['env']} | {r['seed']} | "
            + (f"{o['float_test_mean']:.1f} | {o['chip_test_mean']:.1f}" if o else "- | -")
            + (f" | {b['test_mean']:.1f} +- {b['test_std']:.1f}" if b else " | -")
            + f" | {k(o['steps_to_threshold']) if o else '-'} / "
            f"{k(b['steps_to_threshold']) if b else '-'}"
            + f" | {_wall(o['train_wall_s'], load) if o else '-'} / "
            f"{_wall(b['train_wall_s'], r.get('sb3_load_avg_1min_after', load)) if b else '-'}"
            + (f" | {c['latency_s'] * 1e3:.0f} ms, {c['energy_j'] * 1e3:.2f} mJ "
               f"({c['fastest_latency_s'] * 1e6:.0f} us, {c['fastest_energy_j'] * 1e6:.1f} uJ "
               "at the shortest tick) |" if c else " | - |"))
    return ("\n".join(lines) + "\n\n" + targets_text(d["results"])
            + _steps_gap(d["results"], k)
            + f"Mean return over {d['test_episodes']} greedy test episodes "
            "(seeds apart from training and model selection); steps to the solve threshold "
            "from greedy validation evaluations during training; returns and wall time "
            "measured on the shared 2-core box (1 torch thread; with the 1-minute load average "
            "when the run ended: walls at different loads do not compare), chip energy and latency "
            "modelled. SB3: rl-zoo hyperparameters. Regenerate: `benchmarks/rl_vs_sb3.py "
            "--envs ... --seeds ...`, then `readme_numbers.py readme` (commits "
            f"{', '.join(_commits(d['results']))}).")


def rl_more_seeds_section(main: dict, more: dict) -> str:
    """Seeds past the targets' (benchmarks/rl_vs_sb3.py --seeds 3 4 ... --out
    rl_vs_sb3_more_seeds.json): each seed's returns, then every target over all the seeds
    measured, so a target met on its own seeds says how it fares on more."""
    if not more["results"]:
        return ""
    lines = []
    for env in dict.fromkeys(r["env"] for r in more["results"]):
        rows = [r for r in more["results"] if r["env"] == env]
        seeds = "/".join(str(r["seed"]) for r in rows)
        chip = " / ".join(f"{r['spinnq']['chip_test_mean']:.1f}" for r in rows)
        flt = " / ".join(f"{r['spinnq']['float_test_mean']:.1f}" for r in rows)
        sb3 = " / ".join(f"{r['sb3']['test_mean']:.1f}" for r in rows if "sb3" in r)
        lines.append(f"{env} seeds {seeds}: chip {chip} (float {flt}), SB3 {sb3}")
    envs = {r["env"] for r in more["results"]}
    both = sorted([r for r in main["results"] if r["env"] in envs] + more["results"],
                  key=lambda r: (r["env"], r["seed"]))
    return ("Beyond the targets' seeds (run once, after every setting was chosen; nothing "
            "was chosen on them): " + "; ".join(lines) + ". Over all seeds measured: "
            + targets_text(both).removeprefix("Targets on the emulated chip: ").rstrip(". ")
            + f" (measured; commit {', '.join(_commits(more['results']))}; "
            f"`benchmarks/rl_vs_sb3.py --envs {' '.join(sorted(envs))} --seeds "
            f"{' '.join(map(str, sorted({r['seed'] for r in more['results']})))} --out "
            "benchmarks/results/rl_vs_sb3_more_seeds.json`, then `readme_numbers.py readme`).")


def _wall(seconds: float, load: float | None) -> str:
    """A wall time with the box's 1-minute load average when the run ended (the box is
    shared: walls at different loads do not compare)."""
    return _minsec(seconds) + ("" if load is None else f" (load {load:.1f})")


def _commits(rows: list[dict]) -> list[str]:
    """Every commit a row's numbers come from: the row's, and its SB3 part's where that was
    measured apart (`sb3_commit`)."""
    return sorted({r[c] for r in rows for c in ("commit", "sb3_commit") if c in r})


def command_speed_section(d: dict) -> str:
    """benchmarks/command_speed.py: the commands next to the engine, start-up, quantize and
    training per epoch."""
    m, r, a = d["median"], d["ratios"], d["args"]
    parts = []
    if "deploy_cli_over_engine" in r:
        parts.append(
            f"`spinnq deploy` / `spinnq evaluate` take {m['deploy_cli_ms_per_sample']:.1f} / "
            f"{m['evaluate_cli_ms_per_sample']:.1f} ms per extra sample, "
            f"{r['deploy_cli_over_engine']:.2f}x / {r['evaluate_cli_over_engine']:.2f}x "
            f"`sq.emulate` in process ({m['deploy_engine_ms_per_sample']:.1f} / "
            f"{m['evaluate_engine_ms_per_sample']:.1f} ms; the commands run in process: "
            f"{r['deploy_in_process_over_engine']:.2f}x / "
            f"{r['evaluate_in_process_over_engine']:.2f}x"
            + (f"; in a fresh process timed after its imports: "
               f"{r['deploy_cli_work_over_engine']:.2f}x / "
               f"{r['evaluate_cli_work_over_engine']:.2f}x"
               if "deploy_cli_work_over_engine" in r else "") + ")")
    if "help_cpu_s" in m:
        parts.append(f"`spinnq --help` {m['help_cpu_s']:.2f} s CPU ({m['help_wall_s']:.2f} s "
                     f"wall), a bad flag {m['bad_flag_cpu_s']:.2f} s CPU "
                     f"({m['bad_flag_wall_s']:.2f} s wall)")
    quant = _bench("command_speed_quantize")  # the quantize part measured again alone
    if quant.exists():
        parts.append(quantize_clause(json.loads(quant.read_text())))
    elif "quantize_over_k_emulations_plus_compile" in r:
        qa = d.get("parts", {}).get("quantize", {}).get("args", a)  # its own run's arguments
        parts.append(f"`spinnq quantize` ({m['candidates']} candidates, {qa['calib']} "
                     f"calibration samples) {m['quantize_cli_cpu_s']:.1f} s CPU, "
                     f"{r['quantize_over_k_emulations_plus_compile']:.1f}x {m['candidates']} "
                     "emulations of its data plus one compile")
    if "train_snntorch_over_chunked" in r:
        parts.append(_train_speed(d))
    elif "train_snntorch_over_fused" in r:
        def faster(v: float) -> str:
            return f"{v:.1f}x faster than" if v >= 1 else f"{1 / v:.1f}x slower than"

        diff = m["fused_vs_stepped_max_weight_diff"]
        ta = d.get("parts", {}).get("train", {}).get("args", a)
        parts.append(f"training the seed network ({ta['train_samples']} recordings of "
                     f"{ta['train_steps']} steps, batch {ta['train_batch']}, {ta['threads']} "
                     f"thread): {m['train_spinnq_fused_epoch_s']:.1f} s per epoch, "
                     f"{faster(r['train_stepped_over_fused'])} the trainer before (each LIF "
                     f"layer stepped under autograd, every frame in one convolution call; "
                     f"weights after the epoch differ by at most {diff:.1g}) and "
                     f"{faster(r['train_snntorch_over_fused'])} snnTorch")
    prov = d.get("parts") or {"all": {"commit": d["commit"], "rounds": d["rounds"],
                                       "load_average": d["machine"]["load_average"]}}
    groups: dict[str, list[str]] = {}  # parts measured together: one commit, rounds, load
    for name, p in prov.items():
        if not (name == "quantize" and quant.exists()):  # that clause cites its own run
            groups.setdefault(p["commit"], []).append(name)

    def measured(names: list[str]) -> str:
        p = prov[names[0]]
        loads = [x["after"][0] for x in p["load_average"]]
        return (f"medians of {len(p['rounds'])} interleaved rounds at load average "
                f"{min(loads):.1f}-{max(loads):.1f}, commit {p['commit']}")

    how = (measured(next(iter(groups.values()))) if len(groups) == 1 else "; ".join(
        f"{'/'.join(names)}: {measured(names)}" for names in groups.values()))
    return (f"`benchmarks/command_speed.py` (seed DVS network, {a['steps']} steps, "
            f"{100 * a['density']:.0f} % input stored as float32; CPU time of one-thread "
            f"processes on {d['machine']['cpus']} cores): " + "; ".join(parts)
            + f" (measured; {how}).")


def _train_speed(d: dict) -> str:
    """command_speed's training part: the time-chunked trainer beside the trainer of other
    sources (before a change), the whole-sequence one, the stepped one and snnTorch."""
    m, r = d["median"], d["ratios"]
    a = d.get("parts", {}).get("train", {}).get("args", d["args"])  # its own run's arguments
    return (f"training the seed network ({a['train_samples']} recordings of "
            f"{a['train_steps']} steps, batch {a['train_batch']}, {a['threads']} thread): "
            f"{m['train_spinnq_chunked_epoch_s']:.1f} s per epoch in time chunks, "
            + (f"{r['train_before_over_chunked']:.1f}x faster than the trainer of "
               f"{a.get('train_before_label', 'other sources')} (its own process), "
               if "train_before_over_chunked" in r else "")
            + f"{r['train_fused_over_chunked']:.1f}x faster than the same "
            f"model layer by layer over the whole sequence, "
            f"{r['train_stepped_over_chunked']:.1f}x faster than each LIF layer stepped under "
            f"autograd and {r['train_snntorch_over_chunked']:.1f}x faster than snnTorch (Leaky "
            "neurons stepped one time step at a time, each convolution on one step's frames, "
            "its tutorials' loop); weights after the epoch within "
            f"{m['chunked_vs_stepped_max_weight_diff']:.1g} of the stepped trainer's")


def quantize_clause(d: dict) -> str:
    """command_speed.py --parts quantize: quantize as a process and in process, against k
    emulations plus one compile and against what it must run (its candidates' emulations and
    the float reference), with that run's own rounds, load and commit."""
    m, r, a = d["median"], d["ratios"], d["args"]
    loads = [x["after"][0] for x in d["machine"]["load_average"]]
    return (f"`spinnq quantize` ({m['candidates']} candidates, {a['calib']} calibration "
            f"samples; measured alone: {len(loads)} rounds, load {min(loads):.1f}-"
            f"{max(loads):.1f}, commit {d['commit']}) {m['quantize_cli_cpu_s']:.1f} s CPU as a "
            f"process, {r['quantize_over_k_emulations_plus_compile']:.1f}x {m['candidates']} "
            f"emulations of its data plus one compile ({m['quantize_budget_cpu_s']:.2f} s); "
            f"run in process {m['quantize_inproc_cpu_s']:.2f} s, "
            f"{r['quantize_in_process_over_k_emulations_plus_compile']:.1f}x that and "
            f"{r['quantize_in_process_over_candidates_float_reference_compile']:.2f}x what it "
            f"must run (each candidate emulated once, {m['candidate_emulations_cpu_s']:.2f} s, "
            f"and the float reference once, {m['float_reference_cpu_s']:.2f} s)"
            + (f"; the command from {a['quantize_before_label']}, in the same rounds: "
               f"{m['quantize_cli_before_cpu_s']:.1f} s CPU, "
               f"{r['quantize_before_over_k_emulations_plus_compile']:.1f}x"
               if "quantize_cli_before_cpu_s" in m else "")
            + (quantize_marginal_clause(d) if "quantize_marginal_over_k_emulations" in r
               else ""))


def quantize_marginal_clause(d: dict) -> str:
    """The same at a second calibration size: cost per extra calibration sample (start-up,
    imports and compiles cancel) against k emulations' and the float reference's."""
    m, r, a = d["median"], d["ratios"], d["args"]
    hi, k = a["calib_large"], m["candidates"]
    return (f"; per extra calibration sample ({a['calib']} to {hi} samples) quantize costs "
            f"{m['quantize_cli_ms_per_calib_sample']:.0f} ms CPU as a process and "
            f"{m['quantize_inproc_ms_per_calib_sample']:.0f} ms in process, "
            f"{r['quantize_marginal_over_k_emulations']:.1f}x / "
            f"{r['quantize_in_process_marginal_over_k_emulations']:.1f}x {k} emulations' "
            f"{k * m['calib_emulation_ms_per_calib_sample']:.0f} ms; what it must run per "
            f"sample: the float reference {m['float_reference_ms_per_calib_sample']:.0f} ms "
            f"({r['float_reference_marginal_over_one_emulation']:.1f} emulations; "
            f"{_float_reference_how(d)}) and the "
            f"candidates' emulations {m['candidate_emulations_ms_per_calib_sample']:.0f} ms; "
            f"at {hi} samples the command takes {m[f'quantize_cli_cpu_s_{hi}']:.1f} s CPU, "
            f"{r[f'quantize_over_k_emulations_plus_compile_{hi}']:.1f}x {k} emulations plus "
            f"one compile ({r[f'quantize_in_process_over_k_emulations_plus_compile_{hi}']:.1f}x"
            f" in process)")


def _float_reference_how(d: dict) -> str:
    """How the measured float reference ran: by the JSON's own account (`float_reference`
    written by command_speed.py since its convolutions go event by event), else as before."""
    return d.get("float_reference", "dense convolutions every step where the chip's "
                                    "emulator works per spike")


def qat_recovery_section(d: dict) -> str:
    """benchmarks/qat_recovery.py: 4-bit PTQ vs fine-tuning on networks trained outside
    spinnq, on the test split that neither training nor selection saw."""
    rows = d["networks"]
    pct = lambda v: f"{100 * v:.2f} %"  # noqa: E731
    lines = ["| network (trained in snnTorch) | steps | float | PTQ-4 on chip | QAT-4 on chip | "
             "drop | won back | QAT-4 + learnt thresholds |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        share = "" if r["won_back_share"] is None else f" ({100 * r['won_back_share']:.0f} %)"
        kept = "" if r["finetune_kept"] else ", PTQ kept"
        lines.append(f"| {r['what']} | {r['steps']} | {pct(r['float_test'])} | "
                     f"{pct(r['ptq4_test'])} | {pct(r['qat4_test'])} | {r['drop_pt']:.2f} pt | "
                     f"{r['won_back_pt']:+.2f} pt{share}{kept} | "
                     f"{pct(r['qat_thr4_test']) if 'qat_thr4_test' in r else ''} |")
    big = [r for r in rows if r["drop_pt"] >= 2]
    won = [r for r in big if (r["won_back_share"] or 0) >= 0.8]
    below = [r["network"] for r in rows if r["qat4_test"] < r["ptq4_test"]]
    n = rows[0]["samples"]
    return ("\n".join(lines) + f"\n\nTest split {n['test']} digits, validation {n['val']} "
            f"(calibration and the fine-tuning epoch/keep choice), training {n['train']}; "
            f"chip = emulated, float = snnTorch's own forward (measured; commit {d['commit']}). "
            f"{len(big)} of {len(rows)} networks lose >= 2 pt at 4 bits; fine-tuning wins back "
            f">= 80 % of the drop on {len(won)} of them; "
            + (f"below PTQ on test: {', '.join(below)}." if below else
               "it never ends below PTQ on test.")
            + " Regenerate: `benchmarks/qat_recovery.py`, then `readme_numbers.py readme`.")


def quant_digits_section(d: dict) -> str:
    """benchmarks/quant_digits.py: snnTorch networks through `spinnq.quant.quantize` (the
    command's function and defaults) at 8 and 4 bits, on the test split."""
    pct = lambda v: f"{100 * v:.2f} %"  # noqa: E731

    def cell(r: dict) -> str:
        if "refused" in r:
            return f"refused: {r['refused']}"
        mode = ", ".join(sorted(set(r["ptq_modes"].values())))
        return f"{pct(r['ptq_chip_accuracy'])} ({mode})"

    def ft(r: dict) -> str:
        return "; ".join(
            f"int{b}: " + (f"kept (epoch {r[f'int{b}']['finetune_best_epoch']}): "
                           f"{pct(r[f'int{b}']['final_chip_accuracy'])}"
                           if r[f"int{b}"].get("finetune_kept") else "PTQ kept")
            for b in (8, 4) if "refused" not in r[f"int{b}"])

    lines = ["| network (snnTorch) | snnTorch float | int8 PTQ on chip | int4 PTQ on chip | "
             "fine-tuning (chosen on validation) |", "| --- | --- | --- | --- | --- |"]
    for r in d["networks"]:
        lines.append(f"| {r['network']} | {pct(r['snntorch_float_accuracy'])} | "
                     f"{cell(r['int8'])} | {cell(r['int4'])} | {ft(r)} |")
    n = d["networks"][0]["samples"]
    return ("\n".join(lines) + f"\n\nTest split {n['test']} digits, validation {n['val']} "
            f"(calibration, fine-tuning epoch and keep choice), training {n['train']}; "
            f"{d['steps']} steps; chip = emulated, float = snnTorch's own forward (measured; "
            f"commit {d['commit']}). Regenerate: `benchmarks/quant_digits.py`, then "
            "`readme_numbers.py readme`.")


def snn_mlir_section(d: dict) -> str:
    """benchmarks/snn_mlir_referee.py: each case's output-layer mismatches against snn-mlir's
    CPU reference, under the graph's convention and under NIR's reading."""
    lines = ["| graph | convention | steps | referee output spikes | spinnq (convention) "
             "differs | spinnq (NIR reading) differs |", "| --- | --- | --- | --- | --- | --- |"]
    for r in d["cases"]:
        def cell(c: dict) -> str:
            return f"{c['mismatches']} of {c['entries']}" + (
                f" (from step {c['first_step']})" if c["first_step"] is not None else "")
        lines.append(f"| `{r['case']}` | {r['convention']} | {r['steps']} | "
                     f"{r['output_spikes_referee']} | {cell(r['vs_own'])} | "
                     f"{cell(r['vs_nir'])} |")
    lines.append(f"\n(emulated on CPU by both; seed {d['cases'][0]['seed']}, snn-opt built from "
                 f"snn-mlir's source against MLIR {d['mlir']}, commit {d['commit']}; "
                 "`benchmarks/snn_mlir_referee.py`)")
    return "\n".join(lines)


def _bench(name: str) -> Path:
    return ROOT / "benchmarks" / "results" / f"{name}.json"


SECTIONS = {"cartpole": ((results("cartpole"),), cartpole_section),
            "acrobot": ((results("acrobot"),), acrobot_section),
            "gesture": ((results("gesture"),), gesture_section),
            "gesture_seed": (tuple(_bench(f"gesture_seed_preset/{n}") for n in (
                "summary", "report", "measured", "reprice")) + (_bench("energy_calibration"),),
                gesture_seed_section),
            "gesture_4bit": ((_bench("gesture_4bit"),), gesture_4bit_section),
            "emulator": ((_bench("emulator_speed"), _bench("emulator_threads_quiet"),
                          _bench("engine_before_after")), emulator_section),
            "brian2": ((_bench("brian2_contender"),), brian2_section),
            "scaling": ((_bench("scaling_1m_dense"), _bench("scaling_10m"), _bench("scaling")),
                        scaling_section),
            "rl_vs_sb3": ((_bench("rl_vs_sb3"), _bench("rl_vs_sb3_seeds12")),
                          rl_vs_sb3_section),
            "rl_vs_sb3_envs": ((_bench("rl_vs_sb3_envs"),), rl_vs_sb3_envs_section),
            "rl_vs_sb3_more_seeds": ((_bench("rl_vs_sb3_envs"), _bench("rl_vs_sb3_more_seeds")),
                                     rl_more_seeds_section),
            "command_speed": ((_bench("command_speed"),), command_speed_section),
            "qat_recovery": ((_bench("qat_recovery"),), qat_recovery_section),
            "quant_digits": ((_bench("quant_digits"),), quant_digits_section),
            "snn_mlir": ((_bench("snn_mlir_referee"),), snn_mlir_section)}


def render(readme: str) -> str:
    """`readme` with every marked section rewritten from its JSON."""
    for name, (paths, fn) in SECTIONS.items():
        if not all(p.exists() for p in paths):
            continue
        body = fn(*(json.loads(p.read_text()) for p in paths))
        pat = re.compile(rf"(<!-- readme:{name} -->)(.*?)(<!-- /readme:{name} -->)", re.S)
        if not pat.search(readme):
            raise SystemExit(f"README.md has no <!-- readme:{name} --> section")
        readme = pat.sub(lambda m, b=body: f"{m.group(1)}\n{b}\n{m.group(3)}", readme)
    return readme


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="run the demo for these seeds, update the JSON")
    m.add_argument("--seeds", type=int, nargs="+", default=[0])
    m.add_argument("--task", choices=TASKS, default="cartpole")
    r = sub.add_parser("readme", help="rewrite the README's marked sections from the JSON")
    r.add_argument("--check", action="store_true", help="exit 1 if the README is stale")
    a = ap.parse_args(argv)
    if a.cmd == "measure":
        measure(a.seeds, a.task)
        return 0
    old = README.read_text()
    new = render(old)
    if a.check:
        if new != old:
            print("README.md is stale: run benchmarks/readme_numbers.py readme", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
