"""The full seed preset (`spinnq run gesture --preset seed`: 600 frames of 1 ms on the seed's
147 PEs) into benchmarks/results/gesture_seed_preset/: the run's files, its wall and CPU time
as measured, and its chip energy priced again by `spinnq energy` / `spinnq evaluate` from the
QAT graph the chip stage ran (stored beside the results, so any later energy model can price
it again).

    # 1. the run, in a logs folder L (one torch thread; CPU time from GNU time; the 1-minute
    #    load average sampled every 60 s while it runs: the box is shared)
    git rev-parse HEAD > L/commit.txt; (date -u +%FT%TZ; cat /proc/loadavg) > L/start.txt
    while :; do echo "$(date -u +%FT%TZ) $(cat /proc/loadavg)" >> L/load.txt; sleep 60; done &
    PYTHONPATH=src nice -n 10 /usr/bin/time -v spinnq run gesture --preset seed \\
        --set threads=1 --out L/gesture-seed --quiet > L/log.txt 2>&1
    (date -u +%FT%TZ; cat /proc/loadavg) > L/end.txt
    # 2. copy its results here and write measured.json from L's logs
    PYTHONPATH=src .venv/bin/python benchmarks/gesture_seed_preset.py collect L
    # 3. price the stored graph again on the run's own test split (rebuilt from the run's
    #    frame cache), through the commands a user runs; writes reprice.json here
    PYTHONPATH=src .venv/bin/python benchmarks/gesture_seed_preset.py reprice L

Times are measured (GNU time of the one process; CPU seconds = user + system, the figure
comparable across loads), accuracies measured (torch) or emulated (chip), energy modelled.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "gesture_seed_preset"
sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import spinnq_cli  # noqa: E402

# what is copied from the run folder: small files only (the QAT graph is ~0.1 MB)
FILES = ("summary.json", "report.json", "report.md", "config.json", "float.csv", "qat.csv",
         "qsnn_qat.nir")
GRAPH = "qsnn_qat.nir"  # the graph the QAT chip stage ran (and priced)
MAX_GRAPH_BYTES = 4 << 20
def gnu_time(text: str) -> dict:
    """The figures `/usr/bin/time -v` printed (at the end of `text`, the run's log): wall,
    user and system seconds, peak RSS, exit status."""
    def field(name: str) -> str:
        m = re.findall(rf"^\s*{re.escape(name)}: (.+)$", text, re.M)
        if not m:
            raise SystemExit(f"no '{name}' line from /usr/bin/time -v in the log")
        return m[-1].strip()
    wall = 0.0
    for part in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":"):
        wall = 60 * wall + float(part)
    user, system = float(field("User time (seconds)")), float(field("System time (seconds)"))
    return {"wall_s": wall, "cpu_s": user + system, "user_s": user, "system_s": system,
            "max_rss_mb": int(field("Maximum resident set size (kbytes)")) / 1024,
            "exit_status": int(field("Exit status")),
            "command": field("Command being timed").strip('"')}


def _stamp(path: Path) -> dict:
    """A `date; cat /proc/loadavg` file: its time and 1/5/15-minute load averages."""
    when, load = path.read_text().splitlines()[:2]
    return {"utc": when.strip(), "load_average": [float(v) for v in load.split()[:3]]}


def load_samples(path: Path) -> dict:
    """The 1-minute load averages sampled while the run ran (`date loadavg` lines)."""
    ones = [float(line.split()[1]) for line in path.read_text().splitlines() if line.strip()]
    if not ones:
        raise SystemExit(f"{path}: no load samples")
    return {"samples": len(ones), "min": min(ones), "mean": sum(ones) / len(ones),
            "max": max(ones), "every_s": 60}


def measured(logs: Path) -> dict:
    """measured.json: the run's command, commit, wall / CPU time and the machine's load."""
    t = gnu_time((logs / "log.txt").read_text())
    if t["exit_status"] != 0:
        raise SystemExit(f"the run exited with {t['exit_status']}: see {logs / 'log.txt'}")
    cmd = re.sub(r"^\S*/(spinnq) ", r"\1 ", t.pop("command"))
    return {"benchmark": "gesture_seed_preset", "command": cmd.replace(str(logs) + "/", "L/"),
            "commit": (logs / "commit.txt").read_text().strip()[:7], **t,
            "start": _stamp(logs / "start.txt"), "end": _stamp(logs / "end.txt"),
            "load_average_1min": load_samples(logs / "load.txt"),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "shared": "other jobs ran beside it (see the load average)"},
            "nice": 10, "torch_threads": 1,
            "kinds": {"wall_s, cpu_s, max_rss_mb": "measured (GNU time of the one process)"}}


def previous(out: Path, new: dict) -> dict | None:
    """The run these files replace: a collected run's wall and CPU time (its measured.json),
    or before any was collected its wall time (summary.json's `timings`, the runner's own
    clock) and date. The same run collected again keeps the previous it had."""
    if (out / "measured.json").exists():
        old = json.loads((out / "measured.json").read_text())
        if old.get("start") == new["start"]:
            return old.get("previous")
        return {"wall_s": old["wall_s"], "cpu_s": old["cpu_s"], "commit": old["commit"],
                "created": old["start"]["utc"], "load_average_1min": old["load_average_1min"],
                "note": "the previous collected run (GNU time of its one process)"}
    if not (out / "summary.json").exists():
        return None
    s = json.loads((out / "summary.json").read_text())
    def find(name: str, pattern: str) -> str | None:
        f = out / name
        m = re.search(pattern, f.read_text(), re.M) if f.exists() else None
        return m and m.group(1)
    return {"wall_s": s["timings"]["total_s"], "timings": s["timings"],
            "created": find("report.md", r"^Created (\S+)\.$"),
            "commit": find("README.md", r"code at commit\s+(\w+)"), "cpu_s": None,
            "note": "the runner's wall clock; CPU time and load not recorded"}


def collect(logs: Path, out: Path = OUT) -> dict:
    """The run's small files into `out` (replacing the previous run's) and measured.json."""
    run = logs / "gesture-seed"
    if not (run / "summary.json").exists():
        raise SystemExit(f"{run}: no summary.json (the run has not finished)")
    if (run / GRAPH).stat().st_size > MAX_GRAPH_BYTES:
        raise SystemExit(f"{run / GRAPH} is over {MAX_GRAPH_BYTES >> 20} MB: not copied")
    info = measured(logs)
    info["previous"] = previous(out, info)
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(run / name, out / name)
    shutil.rmtree(out / "plots", ignore_errors=True)
    shutil.copytree(run / "plots", out / "plots")
    (out / "measured.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def test_split(run: Path, work: Path) -> tuple[Path, Path]:
    """The run's test split as test.npz (x, y) and x.npy, rebuilt from its config.json and
    frame cache (the same frames the run evaluated: the cache is keyed by every setting)."""
    from spinnq import settings
    from spinnq.files import save_npz
    from spinnq.tasks.gesture.config import GestureConfig
    from spinnq.tasks.gesture.data import synthetic_frames

    saved = json.loads((run / "config.json").read_text())
    saved.pop("task", None)  # the run folder's tag, not a setting
    cfg = settings.from_json(GestureConfig, saved)
    if cfg.data_dir:
        raise SystemExit("reprice rebuilds synthetic splits only; this run read a dataset")
    f = synthetic_frames("test", cfg.n_test, cfg.seed, cfg.frames, cfg.synth,
                         Path(cfg.cache_dir) if cfg.cache_dir else None)
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "x.npy", f.x)
    return save_npz(work / "test.npz", {"x": f.x, "y": f.y}), work / "x.npy"


def _flags(summary: dict) -> list[str]:
    from spinnq.resolver import RunSettings
    return RunSettings(**summary["settings"]["qat_chip"]).flags(pricing=True)


def reprice(logs: Path, out: Path = OUT) -> dict:
    """`spinnq energy` and `spinnq evaluate` on the stored QAT graph (`out`/qsnn_qat.nir) with
    the settings the run recorded, against the run's report (same basis: total with the
    unused PEs off, and dynamic; each with its range)."""
    run, work = logs / "gesture-seed", logs / "reprice"
    summary = json.loads((out / "summary.json").read_text())
    chip = json.loads((out / "report.json").read_text())["chip"]
    npz, xnpy = test_split(run, work)
    flags, graph = _flags(summary), str(out / GRAPH)
    e_run = spinnq_cli("energy", graph, "--input", str(xnpy), *flags, "--json",
                   str(work / "energy.json"))
    ev_run = spinnq_cli("evaluate", graph, "--data", str(npz), *flags, "--json",
                    str(work / "evaluate.json"))
    e = json.loads((work / "energy.json").read_text())
    ev = json.loads((work / "evaluate.json").read_text())["chip"]
    keys = ("energy_j", "energy_low_j", "energy_high_j", "dynamic_j", "dynamic_low_j",
            "dynamic_high_j", "base_j")
    evaluated = {"energy_j": ev["energy_j"], "energy_low_j": ev["energy_range_j"][0],
                 "energy_high_j": ev["energy_range_j"][1], "dynamic_j": ev["dynamic_j"]}
    res = {"graph": f"benchmarks/results/gesture_seed_preset/{GRAPH}",
           "data": f"the run's test split ({ev['samples']} recordings, rebuilt from its "
                   "frame cache)",
           "energy_command": " ".join(["spinnq energy", GRAPH, "--input", "x.npy", *flags]),
           "evaluate_command": " ".join(["spinnq evaluate", GRAPH, "--data", "test.npz",
                                         *flags]),
           "report": {k: chip[k] for k in keys}, "energy": {k: e[k] for k in keys},
           "evaluate": evaluated, "evaluate_accuracy": ev["accuracy"],
           "run_accuracy": summary["accuracy"]["qat_chip"],
           "max_rel_diff_energy": max(abs(e[k] / chip[k] - 1) for k in keys),
           "max_rel_diff_evaluate": max(abs(v / chip[k] - 1) for k, v in evaluated.items()),
           "timings": {"energy": e_run, "evaluate": ev_run},
           "kinds": {"energy": "modelled", "accuracy": "emulated", "timings": "measured"}}
    (out / "reprice.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=("collect", "reprice"))
    ap.add_argument("logs", type=Path, help="the logs folder L (L/gesture-seed: the run)")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    res = (collect if a.step == "collect" else reprice)(a.logs, a.out)
    print(json.dumps(res, indent=2, default=float))


if __name__ == "__main__":
    main()
